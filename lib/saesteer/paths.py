"""Where the study's files live, wherever a notebook or test is run from."""

from __future__ import annotations

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


def results_dir(setting: str, chapter: str) -> Path:
    """``data/results/<setting>/<chapter>/``, created if missing."""
    folder = repo_root() / "data" / "results" / setting / chapter
    folder.mkdir(parents=True, exist_ok=True)
    return folder
