"""Results files: JSON written atomically, with the parameters that produced them."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt


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


def save_results(folder: Path, params: dict, results: dict) -> Path:
    """``results.json`` in ``folder``: the parameters and the results side by side."""
    return write_json(Path(folder) / "results.json", {"params": params, "results": results})


def save_figure(fig: plt.Figure, folder: Path, name: str) -> Path:
    """Save ``fig`` as ``<folder>/figures/<name>.png`` (the one path every chapter's figures take)."""
    path = Path(folder) / "figures" / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    return path
