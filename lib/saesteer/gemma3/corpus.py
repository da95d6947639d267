"""Real English text for Gemma 3 270M, assembled from Debian packages (no network beyond the package registry).

Three registers of English, each with its licence recorded:

- ``fortunes``: quotations, jokes and aphorisms (``/usr/share/games/fortunes/``, entries between ``%`` lines);
- ``dict-wn``: WordNet 3.0 glosses and usage examples (``wn.dict.dz``, one entry per headword);
- ``python3.11-doc``: the Python tutorial and library reference (the reST sources of the HTML pages),
  prose paragraphs only (code, directives and tables dropped).

``python -m saesteer.gemma3.corpus`` downloads the packages with ``apt-get download``, extracts them
with ``dpkg-deb``, cleans and deduplicates the documents, splits them into train and held-out by a hash
of the text (stable under reordering), writes ``train.jsonl`` and ``heldout.jsonl`` under
``$SAESTEER_CACHE/gemma3/corpus/`` atomically, and the manifest (sources, licences, sizes, file hashes)
to ``data/gemma3/corpus.json``. An existing corpus that matches the manifest is kept.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from saesteer.core.files import repo_root, write_json
from saesteer.core.packaged import model_cache, sha256_file

HELDOUT_SHARE = 0.05  # documents whose text hash falls in the last 5% of the range are held out
MIN_CHARS = 40  # shorter documents carry too little context


@dataclass(frozen=True)
class Source:
    """One Debian package of English text and how its documents are read."""

    package: str
    register: str  # what kind of English it is
    licence: str  # in one line; the package's copyright file is recorded by hash


SOURCES = {
    "fortunes": Source("fortunes", "quotations, jokes and aphorisms", "BSD-style (fortune-mod), see the package's copyright file"),
    "wordnet": Source("dict-wn", "dictionary glosses and usage examples", "WordNet 3.0 licence (Princeton University)"),
    "python-docs": Source("python3.11-doc", "technical documentation (tutorial, library reference)",
                          "Python Software Foundation License"),
}


def corpus_dir() -> Path:
    """Where the corpus files live (outside the repository): ``$SAESTEER_CACHE/gemma3/corpus``."""
    return model_cache().parent / "gemma3" / "corpus"


def manifest_path() -> Path:
    return repo_root() / "data" / "gemma3" / "corpus.json"


def normalise(text: str) -> str:
    """One line of text: whitespace runs collapsed, ends stripped."""
    return re.sub(r"\s+", " ", text).strip()


def fortune_documents(folder: Path) -> list[str]:
    """Every fortune of the plain-text files in ``folder`` (not the ``.dat`` indexes or ``.u8`` links)."""
    docs = []
    for path in sorted(p for p in folder.iterdir() if p.is_file() and not p.suffix):
        docs += [normalise(entry) for entry in re.split(r"^%$", path.read_text(errors="replace"), flags=re.M)]
    return docs


def wordnet_documents(dict_dz: Path) -> list[str]:
    """One document per WordNet headword: ``headword: gloss; "example" ...``, cross references dropped."""
    text = gzip.open(dict_dz, "rt", errors="replace").read()
    docs = []
    for entry in re.split(r"\n(?=\S)", text):
        head, _, body = entry.partition("\n")
        if not body.strip() or head.startswith("00-database"):  # the licence and database header entries
            continue
        body = re.sub(r"\[(syn|ant|also|see also): [^\]]*\]", "", body, flags=re.S)
        body = re.sub(r"\b(n|v|adj|adv)\s+\d*:?\s*", "", body.replace("{", "").replace("}", ""))
        docs.append(normalise(f"{head.strip()}: {body}"))
    return docs


ROLE = re.compile(r":[\w:.-]+:`!?~?([^`<]*?)(?:\s*<[^>]*>)?`")


def rst_paragraphs(text: str) -> list[str]:
    """The prose paragraphs of a reST page: roles reduced to their text; directives, indented blocks (code,
    options), tables, section rules and short lines dropped."""
    out = []
    for para in re.split(r"\n\s*\n", text):
        lines = para.splitlines()
        if not lines or lines[0].startswith((" ", "\t", "..", ">>>", "+", "|", "=", "*", "-", "#")):
            continue
        if any(set(line.strip()) <= set("=-*^~#+") for line in lines if line.strip()):
            continue  # a heading with its underline
        prose = normalise(ROLE.sub(r"\1", " ".join(lines)).replace("``", "").replace("::", ":"))
        if sum(c.isalpha() for c in prose) >= 0.6 * len(prose):
            out.append(prose)
    return out


def python_doc_documents(sources: Path) -> list[str]:
    """One document per prose paragraph of the tutorial, library reference, how-tos, FAQ and glossary."""
    docs = []
    for path in sorted(sources.rglob("*.rst.txt")):
        if path.relative_to(sources).parts[0] in ("c-api", "extending", "distutils", "whatsnew"):
            continue  # C interfaces and change logs: mostly identifiers, not prose
        docs += rst_paragraphs(path.read_text(errors="replace"))
    return docs


def clean(docs: list[str], source: str) -> list[dict]:
    """Documents of at least ``MIN_CHARS``, exact duplicates (after normalising) dropped, in order."""
    seen, out = set(), []
    for text in docs:
        key = text.lower()
        if len(text) >= MIN_CHARS and key not in seen:
            seen.add(key)
            out.append({"source": source, "text": text})
    return out


def is_heldout(text: str) -> bool:
    """The split: a document is held out when its text's hash falls in the last ``HELDOUT_SHARE`` of the range."""
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) / 16**8 >= 1 - HELDOUT_SHARE


def fetch_packages(root: Path) -> dict[str, dict]:
    """Download and extract each source package under ``root``; its version and copyright file's hash."""
    info = {}
    for name, source in SOURCES.items():
        subprocess.run(["apt-get", "download", "-q", source.package], cwd=root, check=True, capture_output=True)
        deb = next(root.glob(f"{source.package}_*.deb"))
        subprocess.run(["dpkg-deb", "-x", str(deb), str(root / "x")], check=True)
        version = subprocess.run(["dpkg-deb", "-f", str(deb), "Version"], capture_output=True, text=True, check=True).stdout.strip()
        copyright_file = root / "x" / "usr" / "share" / "doc" / source.package / "copyright"
        info[name] = {"package": source.package, "version": version, "register": source.register,
                      "licence": source.licence, "copyright_sha256": sha256_file(copyright_file)}
    return info


def read_documents(root: Path) -> dict[str, list[dict]]:
    """The cleaned documents of each source, from the packages extracted under ``root/x``."""
    x = root / "x" / "usr" / "share"
    raw = {"fortunes": fortune_documents(x / "games" / "fortunes"),
           "wordnet": wordnet_documents(x / "dictd" / "wn.dict.dz"),
           "python-docs": python_doc_documents(x / "doc" / "python3.11" / "html" / "_sources")}
    return {name: clean(docs, name) for name, docs in raw.items()}


def write_split(docs: list[dict], folder: Path) -> dict[str, dict]:
    """``train.jsonl`` and ``heldout.jsonl`` in ``folder`` (each written atomically); their sizes and hashes."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for split in ("train", "heldout"):
        rows = [d for d in docs if is_heldout(d["text"]) == (split == "heldout")]
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{split}-", suffix=".jsonl")
        with os.fdopen(fd, "w") as handle:
            handle.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
        os.chmod(tmp, 0o644)
        os.replace(tmp, folder / f"{split}.jsonl")
        out[split] = {"documents": len(rows), "characters": sum(len(r["text"]) for r in rows),
                      "sha256": sha256_file(folder / f"{split}.jsonl")}
    return out


def is_current(folder: Path, manifest: Path) -> bool:
    """Whether the corpus files exist and match the manifest's hashes."""
    if not manifest.is_file():
        return False
    recorded = json.loads(manifest.read_text())["splits"]
    return all((folder / f"{s}.jsonl").is_file() and sha256_file(folder / f"{s}.jsonl") == r["sha256"] for s, r in recorded.items())


def token_counts(docs: list[dict], tokenizer, batch: int = 2048) -> dict[str, int]:
    """Tokens per source under ``tokenizer`` (Gemma 3's), without special tokens."""
    counts: dict[str, int] = {}
    for start in range(0, len(docs), batch):
        chunk = docs[start:start + batch]
        for d, ids in zip(chunk, tokenizer([d["text"] for d in chunk], add_special_tokens=False)["input_ids"]):
            counts[d["source"]] = counts.get(d["source"], 0) + len(ids)
    return counts


def gemma3_tokenizer():
    """Gemma 3 270M's tokenizer from the de-quantised model cache, or None before ``make gemma3-model``."""
    folder = model_cache() / "gemma3-270m"
    if not (folder / "tokenizer.json").is_file():
        return None
    import transformers
    return transformers.AutoTokenizer.from_pretrained(folder)


def build(folder: Path | None = None, manifest: Path | None = None, force: bool = False, tokenizer=None) -> dict:
    """Assemble the corpus (or keep a current one) and write its manifest, with token counts per source
    when ``tokenizer`` is given; returns the manifest."""
    folder, manifest = folder or corpus_dir(), manifest or manifest_path()
    if not force and is_current(folder, manifest):
        print(f"corpus is current: {folder} (manifest {manifest})")
        return json.loads(manifest.read_text())
    with tempfile.TemporaryDirectory() as tmp:
        packages = fetch_packages(Path(tmp))
        sources = read_documents(Path(tmp))
    docs = [d for name in SOURCES for d in sources[name]]
    tokens = token_counts(docs, tokenizer) if tokenizer is not None else {}
    record = {"sources": {name: packages[name] | {"documents": len(sources[name]),
                                                   "characters": sum(len(d["text"]) for d in sources[name]),
                                                   "gemma3_tokens": tokens.get(name)}
                          for name in SOURCES},
              "split_rule": f"held out when sha256(text)[:8] / 16^8 >= {1 - HELDOUT_SHARE}", "min_chars": MIN_CHARS,
              "splits": write_split(docs, folder)}
    write_json(manifest, record)
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Assemble the real-English corpus for Gemma 3 270M from Debian packages.")
    parser.add_argument("--force", action="store_true", help="rebuild even when the corpus matches its manifest")
    args = parser.parse_args(argv)
    tokenizer = gemma3_tokenizer()
    if tokenizer is None:
        print("no token counts: Gemma 3's tokenizer is cached by `make gemma3-model`")
    record = build(force=args.force, tokenizer=tokenizer)
    for name, s in record["sources"].items():
        tokens = f", {s['gemma3_tokens']:,} Gemma 3 tokens" if s.get("gemma3_tokens") else ""
        print(f"{name}: {s['documents']:,} documents, {s['characters']:,} characters{tokens} ({s['package']} {s['version']})")
    print(", ".join(f"{k}: {v['documents']:,} documents" for k, v in record["splits"].items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
