"""Files every layer reads and writes: the repository root, and JSON written atomically."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path


def repo_root() -> Path:
    """The repository root: the nearest folder above the working directory with ``_config.yml`` and ``lib/``.

    Falls back to the folder above this package (an editable install), so that
    notebooks run by papermill from ``book/`` or by nbval find the same data.
    """
    for folder in (Path.cwd(), *Path.cwd().parents):
        if (folder / "_config.yml").is_file() and (folder / "lib").is_dir():
            return folder
    return Path(__file__).resolve().parents[2]


def cache_root() -> Path:
    """The study's cache outside the repository: ``$SAESTEER_CACHE``, default ``~/.cache/saesteer`` (the
    de-quantised real model, its corpus and SAEs)."""
    return Path(os.environ.get("SAESTEER_CACHE") or Path.home() / ".cache" / "saesteer")


def resolve(path: str | Path) -> Path:
    """A path as written in a parameter file, made usable: ``{cache}`` becomes ``cache_root()``, a leading
    ``~`` the home folder, and a relative path that does not exist from the working folder is read from the
    repository root (notebooks run from ``book/``). Parameter files keep the short form, so results files
    name no machine's folders."""
    full = Path(str(path).replace("{cache}", str(cache_root()))).expanduser()
    if full.is_absolute():
        return full
    return Path.cwd() / full if full.exists() else repo_root() / full


def fill(template: str, **fields) -> Path:
    """A path template from a parameter file (``{layer}``, ``{position}`` ...) filled in, then ``resolve``d."""
    return resolve(template.format(cache="{cache}", **fields))


def read_documents(path: str | Path) -> list[str]:
    """The documents of a text file: one per non-empty line, or for ``.jsonl`` the ``"text"`` of each
    object (the real model's corpus format)."""
    path = resolve(path)
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [json.loads(line)["text"] for line in lines] if path.suffix == ".jsonl" else lines


def documents_by_source(path: str | Path) -> dict[str | None, list[str]]:
    """The documents of a text or JSONL file grouped by their ``"source"`` (None for a plain text file, or a
    JSONL object without one), each group in file order."""
    path = resolve(path)
    groups: dict[str | None, list[str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line) if path.suffix == ".jsonl" else {"text": line.strip()}
            groups.setdefault(row.get("source"), []).append(row["text"])
    return groups


def write_json(path: str | Path, data) -> Path:
    """Write ``data`` as JSON through a temporary file and a rename, so an interrupted run leaves no torn file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle, indent=2, sort_keys=True)
        handle.write("\n")
    os.replace(tmp, path)
    return path


def read_json(path: str | Path):
    """Read a JSON results file."""
    return json.loads(Path(path).read_text())
