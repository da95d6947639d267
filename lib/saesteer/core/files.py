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
