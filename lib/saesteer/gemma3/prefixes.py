"""GenSuccess prefixes for chapter D on Gemma 3 270M, drawn from the held-out corpus by a fixed rule.

The paper continues 50 prefixes of real text. The rule, written before any steering: equal shares of the
three sources of the held-out corpus (quotations, dictionary glosses, Python documentation), the
documents of each source in the order of a stable hash of their text, each cut to its first
``WORDS`` words (a prefix ends mid-sentence, so the continuation is the model's). The 50 lines are
committed (``data/gemma3/prefixes.txt``), so every run reads the same prefixes.
``python -m saesteer.gemma3.prefixes`` rewrites the file from the corpus.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from saesteer.core.files import repo_root
from saesteer.core.splits import stable_hash
from saesteer.gemma3.corpus import corpus_dir

N_PREFIXES = 50
WORDS = 8


def prefixes(heldout: Path, n: int = N_PREFIXES, words: int = WORDS) -> list[str]:
    """``n`` prefixes, the sources taken in turn, each source's documents in stable-hash order."""
    by_source: dict[str, list[str]] = {}
    for line in heldout.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if len(row["text"].split()) > words:  # long enough to be cut mid-text
            by_source.setdefault(row["source"], []).append(row["text"])
    ordered = [sorted(docs, key=lambda d: stable_hash(d, "gemma3-prefixes")) for _, docs in sorted(by_source.items())]
    turns = [doc for group in zip(*ordered) for doc in group]
    return [" ".join(doc.split()[:words]) for doc in turns[:n]]


def path() -> Path:
    """``data/gemma3/prefixes.txt``."""
    return repo_root() / "data" / "gemma3" / "prefixes.txt"


def main(argv: list[str] | None = None) -> int:
    """``python -m saesteer.gemma3.prefixes``: write the prefixes from the held-out corpus."""
    argparse.ArgumentParser(description=main.__doc__).parse_args(argv)
    lines = prefixes(corpus_dir() / "heldout.jsonl")
    path().write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {len(lines)} prefixes to {path()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
