"""Where the study's files live, wherever a notebook or test is run from."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import yaml

from saesteer.core.files import repo_root


def chapter_param_files(root: Path | None = None, listing: str | Path = "notebooks/chapters.yaml") -> dict[str, Path]:
    """Chapter name -> the parameter file it is built with, from a listing of ``chapter: setting`` lines
    (the book's is ``notebooks/chapters.yaml``; a relative ``listing`` is read from the repository)."""
    root = root or repo_root()
    settings = yaml.safe_load((root / listing).read_text())
    return {name: root / "notebooks" / "params" / name / f"{setting}.yaml" for name, setting in settings.items()}


def results_root(root: Path | None = None) -> Path:
    """``data/results/``, or ``SAESTEER_RESULTS`` when set (tests use it to keep ``data/`` clean)."""
    return Path(os.environ.get("SAESTEER_RESULTS") or (root or repo_root()) / "data" / "results")


def results_dir(setting: str, chapter: str) -> Path:
    """The book's results of a chapter: ``<setting>/<chapter>/`` under ``results_root()``, created if missing."""
    folder = results_root() / setting / chapter
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def book_run() -> bool:
    """Whether this run updates the book's results (the pipeline sets ``SAESTEER_BOOK=1``); any other run
    (a researcher's papermill command) writes to its own folder and never over the book's."""
    return os.environ.get("SAESTEER_BOOK") == "1"


def run_dir(setting: str, chapter: str, params: dict) -> Path:
    """Where a run writes: the book's folder (``results_dir``) for the pipeline, else
    ``runs/<chapter>/<setting>-<hash of the parameters>/`` under ``results_root()``, created if missing."""
    if book_run():
        return results_dir(setting, chapter)
    key = hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:8]
    folder = results_root() / "runs" / chapter / f"{setting}-{key}"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def book_results(setting: str, chapter: str) -> Path:
    """The results file of another chapter that a chapter reads (its book results under ``results_root()``)."""
    return results_root() / setting / chapter / "results.json"


def shown(path: Path) -> str:
    """A path as a reader should see it: relative to the repository when inside it."""
    path = Path(path).resolve()
    root = repo_root().resolve()
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)
