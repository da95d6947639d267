"""Where the study's files live, wherever a notebook or test is run from."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from saesteer.core.files import repo_root


@dataclass(frozen=True)
class ChapterRun:
    """One execution of a chapter notebook for the book: the chapter, its setting and parameter file, and
    where the executed copy goes (``book/<chapter>.ipynb`` for the chapter's first setting, its page;
    ``book/<setting>/<chapter>.ipynb`` for each further subject, a section under that page)."""

    chapter: str
    setting: str
    param_file: Path
    executed: Path
    main: bool

    @property
    def name(self) -> str:
        """``chapter`` for the page, ``chapter@setting`` for a further subject (``pipeline --only`` takes both)."""
        return self.chapter if self.main else f"{self.chapter}@{self.setting}"


def chapter_runs(root: Path | None = None, listing: str | Path = "notebooks/chapters.yaml") -> list[ChapterRun]:
    """Every run of the book, from a listing of ``chapter: setting`` or ``chapter: [setting, ...]`` lines (the
    book's is ``notebooks/chapters.yaml``; a relative ``listing`` is read from the repository), in book order,
    each chapter's further subjects before its page (the page shows them beside its own)."""
    root = root or repo_root()
    runs = []
    for name, settings in yaml.safe_load((root / listing).read_text()).items():
        first, *others = settings if isinstance(settings, list) else [settings]
        for setting in [*others, first]:
            executed = root / "book" / (f"{name}.ipynb" if setting == first else f"{setting}/{name}.ipynb")
            runs.append(ChapterRun(name, setting, root / "notebooks" / "params" / name / f"{setting}.yaml", executed,
                                   setting == first))
    return runs


def chapter_param_files(root: Path | None = None, listing: str | Path = "notebooks/chapters.yaml") -> dict[str, Path]:
    """Chapter name -> the parameter file of its page (its first setting in the listing)."""
    return {run.chapter: run.param_file for run in chapter_runs(root, listing) if run.main}


def chapter_run_lists(root: Path | None = None, listing: str | Path = "notebooks/chapters.yaml") -> dict[str, list[ChapterRun]]:
    """Chapter name -> its runs in listing order (the page's first)."""
    out: dict[str, list[ChapterRun]] = {}
    for run in chapter_runs(root, listing):
        runs = out.setdefault(run.chapter, [])
        if run.main:
            runs.insert(0, run)
        else:
            runs.append(run)
    return out


def chapter_param_lists(root: Path | None = None, listing: str | Path = "notebooks/chapters.yaml") -> dict[str, list[Path]]:
    """Chapter name -> the parameter files of its runs, the page's first (the scorecard reads them all)."""
    return {name: [run.param_file for run in runs] for name, runs in chapter_run_lists(root, listing).items()}


def chapter_settings(root: Path | None = None) -> dict[str, list[str]]:
    """Chapter name -> every setting the book runs it with, the page's first."""
    return {name: [run.setting for run in runs] for name, runs in chapter_run_lists(root).items()}


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
