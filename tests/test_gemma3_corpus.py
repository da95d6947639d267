"""The real-English corpus on a miniature copy of its three package layouts: reading, cleaning, the split."""

import gzip
import json

from saesteer.gemma3 import corpus

FORTUNE = "A journey of a thousand miles begins with a single step.\n%\nShort.\n%\nA journey of a thousand miles  begins with a single step.\n%\n"
WORDNET = """00-database-info
     This file was converted from the original database on the licence terms below.
barefoot
    adj 1: without shoes on; "he chased her barefoot across the meadow" [syn: {barefoot}, {barefooted}]
siltstone
    n 1: a fine-grained sandstone of consolidated silt
"""
RST = """.. _tut-if:

:keyword:`!if` Statements
=========================

Perhaps the most well-known statement type is the :keyword:`if` statement.  For
example::

   >>> x = int(input("Please enter an integer: "))

There can be zero or more :keyword:`elif` parts, and the :keyword:`else` part is optional.

.. note::

   A directive's body is indented and dropped.
"""


def _tree(root):
    share = root / "x" / "usr" / "share"
    (share / "games" / "fortunes").mkdir(parents=True)
    (share / "games" / "fortunes" / "wisdom").write_text(FORTUNE)
    (share / "games" / "fortunes" / "wisdom.dat").write_bytes(b"\x00\x01index")
    (share / "dictd").mkdir(parents=True)
    with gzip.open(share / "dictd" / "wn.dict.dz", "wt") as handle:
        handle.write(WORDNET)
    sources = share / "doc" / "python3.11" / "html" / "_sources" / "tutorial"
    sources.mkdir(parents=True)
    (sources / "controlflow.rst.txt").write_text(RST)
    return root


def test_each_register_is_read_cleaned_and_deduplicated(tmp_path):
    docs = corpus.read_documents(_tree(tmp_path))
    assert [d["text"] for d in docs["fortunes"]] == ["A journey of a thousand miles begins with a single step."]
    assert [d["text"] for d in docs["wordnet"]] == [
        'barefoot: without shoes on; "he chased her barefoot across the meadow"',
        "siltstone: a fine-grained sandstone of consolidated silt"]
    assert [d["text"] for d in docs["python-docs"]] == [
        "Perhaps the most well-known statement type is the if statement. For example:",
        "There can be zero or more elif parts, and the else part is optional."]


def test_the_split_is_a_stable_hash_rule_and_the_files_match_their_manifest(tmp_path):
    docs = [{"source": "s", "text": f"document number {i} with enough characters to count"} for i in range(400)]
    held = [d for d in docs if corpus.is_heldout(d["text"])]
    assert 5 <= len(held) <= 40 and held == [d for d in reversed(docs) if corpus.is_heldout(d["text"])][::-1]
    splits = corpus.write_split(docs, tmp_path / "corpus")
    assert splits["train"]["documents"] + splits["heldout"]["documents"] == 400
    manifest = tmp_path / "corpus.json"
    manifest.write_text(json.dumps({"splits": splits}))
    assert corpus.is_current(tmp_path / "corpus", manifest)
    (tmp_path / "corpus" / "train.jsonl").write_text("changed\n")
    assert not corpus.is_current(tmp_path / "corpus", manifest)
    assert not list((tmp_path / "corpus").glob(".*"))  # no temporary file left behind
