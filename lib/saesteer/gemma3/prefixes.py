"""Prefixes of held-out text for the chapters on Gemma 3 270M, drawn from the held-out corpus by a fixed rule.

The rule, written before any steering: equal shares of the three sources of the held-out corpus
(quotations, dictionary glosses, Python documentation), the documents of each source in the order of a
stable hash of their text (salted per use), each cut to its first ``WORDS`` words (a prefix ends
mid-sentence, so the continuation is the model's). Two files are committed, so every run reads the same:

- ``data/gemma3/prefixes.txt``: chapter D's 50 GenSuccess prefixes (the paper continues 50 prefixes of real text);
- ``data/gemma3/prompts/topic.jsonl``: chapter C's topic prompts, ``PER_SOURCE`` a source, each labelled
  with its source (``truth.topic``) and its own document as cluster; a topic graph steers on the other
  sources' prompts and is removed on its own source's.

``python -m saesteer.gemma3.prefixes`` rewrites both from the corpus.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from saesteer.core.files import repo_root
from saesteer.core.splits import stable_hash
from saesteer.gemma3.corpus import corpus_dir

N_PREFIXES = 50
PER_SOURCE = 40
WORDS = 8


def by_source(heldout: Path, words: int, salt: str) -> dict[str, list[str]]:
    """Each source's documents longer than ``words`` words (so a prefix is cut mid-text), in the stable-hash
    order of ``salt``."""
    groups: dict[str, list[str]] = {}
    for line in heldout.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if len(row["text"].split()) > words:
            groups.setdefault(row["source"], []).append(row["text"])
    return {s: sorted(docs, key=lambda d: stable_hash(d, salt)) for s, docs in sorted(groups.items())}


def prefixes(heldout: Path, n: int = N_PREFIXES, words: int = WORDS) -> list[str]:
    """``n`` prefixes, the sources taken in turn, each source's documents in stable-hash order."""
    turns = [doc for group in zip(*by_source(heldout, words, "gemma3-prefixes").values()) for doc in group]
    return [" ".join(doc.split()[:words]) for doc in turns[:n]]


def topic_items(heldout: Path, per_source: int = PER_SOURCE, words: int = WORDS) -> list[dict]:
    """Chapter C's topic prompts: ``per_source`` prefixes of each source, sources in turn, as prompt items
    (``truth``: the source as topic, the document as cluster)."""
    groups = {s: docs[:per_source] for s, docs in by_source(heldout, words, "gemma3-topic-prompts").items()}
    return [{"prompt": " ".join(doc.split()[:words]), "truth": {"topic": source, "cluster": f"{source}-{i}"}}
            for i in range(per_source) for source, docs in groups.items() if i < len(docs) for doc in [docs[i]]]


def path() -> Path:
    """``data/gemma3/prefixes.txt``."""
    return repo_root() / "data" / "gemma3" / "prefixes.txt"


def topic_path() -> Path:
    """``data/gemma3/prompts/topic.jsonl``."""
    return repo_root() / "data" / "gemma3" / "prompts" / "topic.jsonl"


def main(argv: list[str] | None = None) -> int:
    """``python -m saesteer.gemma3.prefixes``: write the prefixes and the topic prompts from the held-out corpus."""
    argparse.ArgumentParser(description=main.__doc__).parse_args(argv)
    heldout = corpus_dir() / "heldout.jsonl"
    lines = prefixes(heldout)
    path().write_text("\n".join(lines) + "\n", encoding="utf-8")
    items = topic_items(heldout)
    topic_path().parent.mkdir(parents=True, exist_ok=True)
    topic_path().write_text("".join(json.dumps(item) + "\n" for item in items), encoding="utf-8")
    print(f"wrote {len(lines)} prefixes to {path()} and {len(items)} topic prompts to {topic_path()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
