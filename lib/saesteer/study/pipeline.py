"""Run the chapter notebooks through papermill into ``book/`` (the first half of ``make book``).

``notebooks/chapters.yaml`` names each chapter and the parameter file(s) the book is built with: the
first setting of a chapter gives its page (``book/<chapter>.ipynb``), each further one, another subject,
a section under it (``book/<setting>/<chapter>.ipynb``). A run is re-executed only when its notebook, its
parameter file (and the repository files it names), the library modules it imports, the real model's
records (for a run on it) or the results it reads from other runs (``READS``, ``compare_with``) changed
since its executed copy was written (a stamp in the executed notebook's metadata), so an interrupted
``make book`` resumes where it stopped. Each notebook is executed into ``book/.partial/`` and moved into
place only when it finished, so a failed run never replaces a good page.

Usage: ``python -m saesteer.study.pipeline [--only CHAPTER[@SETTING]] [--force] [--check]``; ``--check``
executes nothing and fails when an executed chapter is missing or stale (``make html`` runs it first).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

import nbformat
import papermill

from saesteer.core.files import repo_root, resolve
from saesteer.core.models import BUILT
from saesteer.core.packaged import PACKAGED, is_installed
from saesteer.study.book import READS
from saesteer.study.comparison import run_label
from saesteer.study.params import ParameterError, read_param_file
from saesteer.study.paths import ChapterRun, book_results, chapter_param_files, chapter_runs, chapter_settings
from saesteer.study.sources import chapter_digest

STAMP_KEY = "saesteer_stamp"
SUBJECT_TAGS = {True: "organism-only", False: "real-model-only"}  # narrative cells about one kind of subject


def chapters(root: Path) -> dict[str, Path]:
    """Chapter name -> the parameter file of its page."""
    return chapter_param_files(root)


def check_param_file(notebook: Path, param_file: Path) -> dict:
    """The file's parameters, after checking each is declared in the notebook's parameters cell."""
    values = read_param_file(param_file)
    declared = set(papermill.inspect_notebook(str(notebook)))
    unknown = sorted(set(values) - declared)
    if unknown:
        raise ParameterError(
            f"{param_file.name}: unknown parameter {unknown[0]!r} for {notebook.name}; it takes {', '.join(sorted(declared))}."
        )
    return values


def upstream_results(root: Path, run: ChapterRun) -> list[Path]:
    """The results files a run reads (under ``results_root()``): every setting of the chapters it ``READS``,
    and its own chapter's results for the settings its ``compare_with`` parameter names."""
    settings = chapter_settings(root)
    compared = read_param_file(run.param_file).get("compare_with") or []
    return ([book_results(setting, up) for up in READS.get(run.chapter, []) for setting in settings[up]]
            + [book_results(setting, run.chapter) for setting in compared])


def input_files(root: Path, values: dict) -> list[Path]:
    """The repository files a parameter file names (pair files, prompt files, the files of a prompt folder),
    which a run depends on."""
    named = [resolve(v) for v in values.values() if isinstance(v, str) and "{" not in v and "/" in v]
    files = [f for p in named for f in (sorted(p.rglob("*")) if p.is_dir() else [p])]
    return sorted(f for f in files if f.is_file() and f.resolve().is_relative_to(root.resolve()))


def stamp(root: Path, run: ChapterRun) -> str:
    """A hash of everything an executed run depends on: its notebook, the library modules it imports
    (transitively), the organism's manifests (``sources.chapter_digest``), its parameter file and the files
    it names, the real model's records when the run is on it, and the results files it reads."""
    digest = chapter_digest(root, run.chapter)
    values = read_param_file(run.param_file)
    digest.update(run.param_file.read_bytes())
    for path in input_files(root, values):
        digest.update(path.read_bytes())
    for record in model_records(root, values.get("model")):  # its SAEs and corpus, by the records of their build
        digest.update(record.name.encode() + record.read_bytes())
    for path in upstream_results(root, run):
        digest.update(path.read_bytes() if path.is_file() else b"missing " + str(path).encode())
    return digest.hexdigest()[:16]


def model_records(root: Path, model: str | None) -> list[Path]:
    """The build records of the real model a run is on: Gemma 3's (corpus, SAEs, quality), and for the chat
    model the chat build's too (fine-tune, behaviour, its SAEs)."""
    if model not in PACKAGED and model not in BUILT:
        return []
    folders = [root / "data" / "gemma3"] + ([root / "data" / "gemma3" / "chat"] if model in BUILT else [])
    return [record for folder in folders for record in sorted(folder.glob("*.json"))]


def stale_chapters(root: Path) -> list[str]:
    """The runs (``ChapterRun.name``) whose executed copy in ``book/`` is missing or not current."""
    return [run.name for run in chapter_runs(root) if not is_current(run.executed, stamp(root, run))]


def is_current(executed: Path, expected: str) -> bool:
    """Whether the executed notebook carries the expected stamp."""
    if not executed.is_file():
        return False
    return nbformat.read(executed, as_version=4).metadata.get(STAMP_KEY) == expected


def unavailable(run: ChapterRun) -> str | None:
    """Why a run cannot execute on this machine (its packaged model is not installed, or files it names in
    the study's cache are not built), or None. nbval skips such runs and says so."""
    values = read_param_file(run.param_file)
    for name in ("model", "coherence_model"):
        model = values.get(name)
        if model in PACKAGED and not is_installed(model):
            return f"model {model!r} is not installed (`{PACKAGED[model].make}`)"
    for name, value in values.items():
        if isinstance(value, str) and value.startswith("{cache}"):
            field = value.find("{", 1)  # a {layer} or {position} field: check the folder above the first one
            fixed_part = value if field < 0 else value[: value.rfind("/", 0, field)]
            if not resolve(fixed_part).exists():
                build = "make gemma3-chat-saes" if "/chat/" in value else "make gemma3"
                return f"parameter {name!r} names {value!r}, which is not built on this machine (`{build}`)"
    return None


def hide_injected_parameters(executed: nbformat.NotebookNode) -> None:
    """Give papermill's injected-parameters cell the notebook's own parameters cell's way of hiding:
    ``remove-cell`` (the front page shows no parameters) or ``hide-cell`` (a chapter's, collapsed)."""
    tags = [cell.metadata.get("tags", []) for cell in executed.cells]
    hiding = next((h for t in tags if "parameters" in t for h in ("remove-cell", "hide-cell") if h in t), None)
    if hiding:
        for cell, t in zip(executed.cells, tags):
            if "injected-parameters" in t and hiding not in t:
                cell.metadata["tags"] = [*t, hiding]


def keep_subject_cells(executed: nbformat.NotebookNode, organism: bool) -> None:
    """Remove the narrative written for the other kind of subject: a cell tagged ``real-model-only`` from an
    organism run's page, one tagged ``organism-only`` from a real model's."""
    other = SUBJECT_TAGS[not organism]
    executed.cells = [cell for cell in executed.cells if other not in cell.metadata.get("tags", [])]


def retitle(executed: nbformat.NotebookNode, label: str) -> None:
    """Name the run in the page title of a further subject's section ("# B. ... (Gemma 3 270M, sentiment)")."""
    for cell in executed.cells:
        if cell.cell_type == "markdown" and cell.source.startswith("# "):
            title, _, rest = cell.source.partition("\n")
            if not title.endswith(f"({label})"):
                cell.source = f"{title} ({label})\n{rest}"
            return


def name_figures(executed: nbformat.NotebookNode, setting: str) -> None:
    """Give each figure label of a further subject's section its setting (``fig-x`` -> ``fig-x-<setting>``),
    in the figure's cell and in the page's references to it: labels are global to the book, and the same
    notebook runs once per subject."""
    renamed = {}
    for cell in executed.cells:
        figure = cell.metadata.get("mystnb", {}).get("figure", {})
        if figure.get("name") and not figure["name"].endswith(f"-{setting}"):
            renamed[figure["name"]] = figure["name"] = f"{figure['name']}-{setting}"
    for cell in executed.cells:
        if cell.cell_type == "markdown":
            for old, new in renamed.items():
                cell.source = cell.source.replace(f"`{old}`", f"`{new}`")


def finish(executed: nbformat.NotebookNode, run: ChapterRun, values: dict) -> None:
    """What an executed run gets before it goes into ``book/``: the parameters cell hidden where the notebook
    hides its own, the other kind of subject's narrative removed, and for a further subject, its name in the
    title and in every figure label."""
    hide_injected_parameters(executed)
    keep_subject_cells(executed, values.get("model", "organism") == "organism")
    if not run.main:
        retitle(executed, run_label(run.setting, values.get("model", run.setting)))
        name_figures(executed, run.setting)


def run_chapter(root: Path, run: ChapterRun, force: bool = False) -> bool:
    """Execute one run into its place in ``book/``; returns False when it was already current."""
    notebook = root / "notebooks" / f"{run.chapter}.ipynb"
    values = check_param_file(notebook, run.param_file)
    expected = stamp(root, run)
    if not force and is_current(run.executed, expected):
        print(f"{run.name}: up to date ({run.param_file.name})")
        return False
    partial = root / "book" / ".partial" / f"{run.setting}-{run.chapter}.ipynb"
    partial.parent.mkdir(exist_ok=True)
    start = time.time()
    print(f"{run.name}: executing with {run.param_file.relative_to(root)}", flush=True)
    os.environ.setdefault("TQDM_DISABLE", "1")
    os.environ["SAESTEER_BOOK"] = "1"  # this run writes the book's results (paths.run_dir)
    papermill.execute_notebook(str(notebook), str(partial), parameters=values, cwd=str(root / "book"), kernel_name="python3")
    executed = nbformat.read(partial, as_version=4)
    finish(executed, run, values)
    executed.metadata[STAMP_KEY] = expected
    nbformat.write(executed, partial)
    run.executed.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(partial, run.executed)
    print(f"{run.name}: done in {time.time() - start:.0f} s", flush=True)
    return True


def selected(root: Path, only: str | None) -> list[ChapterRun]:
    """The runs ``--only`` names: a chapter (all its runs) or one ``chapter@setting``; all when None."""
    runs = chapter_runs(root)
    if only is None:
        return runs
    chosen = [run for run in runs if only in (run.chapter, f"{run.chapter}@{run.setting}")]
    if not chosen:
        raise ParameterError(f"--only {only!r} is not one of {', '.join(r.name for r in runs)}.")
    return chosen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", help="run just this chapter (all its subjects) or chapter@setting")
    parser.add_argument("--force", action="store_true", help="re-execute even if up to date")
    parser.add_argument("--check", action="store_true", help="execute nothing; fail if a chapter is stale")
    args = parser.parse_args(argv)
    root = repo_root()
    if args.check:
        stale = stale_chapters(root)
        for name in stale:
            print(f"the executed copy of {name} is missing or stale: run `python -m saesteer.study.pipeline --only {name}`",
                  file=sys.stderr)
        return 1 if stale else 0
    try:
        todo = selected(root, args.only)
    except ParameterError as err:
        parser.error(str(err))
    for run in todo:
        run_chapter(root, run, force=args.force)
    return 0


if __name__ == "__main__":
    sys.exit(main())
