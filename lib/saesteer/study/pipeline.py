"""Run the chapter notebooks through papermill into ``book/`` (the first half of ``make book``).

``notebooks/chapters.yaml`` names each chapter and the parameter file the book
is built with. A chapter is re-executed only when its notebook, its parameter
file, the library modules it imports or the results it reads from other chapters
(``READS``) changed since its executed copy was written (a stamp in the executed notebook's
metadata), so an interrupted ``make book`` resumes where it stopped. Each notebook is executed into ``book/.partial/`` and moved into place
only when it finished, so a failed run never replaces a good page.

Usage: ``python -m saesteer.study.pipeline [--only CHAPTER] [--force] [--check]``; ``--check`` executes
nothing and fails when an executed chapter is missing or stale (``make html`` runs it first).
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

from saesteer.core.files import repo_root
from saesteer.study.book import READS
from saesteer.study.params import ParameterError, read_param_file
from saesteer.study.paths import book_results, chapter_param_files
from saesteer.study.sources import chapter_digest

STAMP_KEY = "saesteer_stamp"


def chapters(root: Path) -> dict[str, Path]:
    """Chapter name -> the parameter file the book is built with."""
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


def upstream_results(root: Path, name: str) -> list[Path]:
    """The results files of the chapters ``name`` reads, where the book's parameter files put them
    (under ``results_root()``)."""
    listing = chapters(root)
    return [book_results(read_param_file(listing[up])["setting"], up) for up in READS.get(name, [])]


def stamp(root: Path, notebook: Path, param_file: Path) -> str:
    """A hash of everything an executed chapter depends on: its notebook, the library modules it imports
    (transitively), the organism's manifest (``sources.chapter_digest``), its parameter file and the
    results files it reads."""
    digest = chapter_digest(root, notebook.stem)
    digest.update(param_file.read_bytes())
    for path in upstream_results(root, notebook.stem):
        digest.update(path.read_bytes() if path.is_file() else b"missing " + str(path).encode())
    return digest.hexdigest()[:16]


def stale_chapters(root: Path) -> list[str]:
    """The chapters whose executed copy in ``book/`` is missing or not current with its sources."""
    return [name for name, param_file in chapters(root).items()
            if not is_current(root / "book" / f"{name}.ipynb", stamp(root, root / "notebooks" / f"{name}.ipynb", param_file))]


def is_current(executed: Path, expected: str) -> bool:
    """Whether the executed notebook carries the expected stamp."""
    if not executed.is_file():
        return False
    return nbformat.read(executed, as_version=4).metadata.get(STAMP_KEY) == expected


def hide_injected_parameters(executed: nbformat.NotebookNode) -> None:
    """Give papermill's injected-parameters cell the ``remove-cell`` tag when the notebook's own
    parameters cell carries it (the front page shows no parameters; the chapters show theirs)."""
    tags = [cell.metadata.get("tags", []) for cell in executed.cells]
    if any("parameters" in t and "remove-cell" in t for t in tags):
        for cell, t in zip(executed.cells, tags):
            if "injected-parameters" in t and "remove-cell" not in t:
                cell.metadata["tags"] = [*t, "remove-cell"]


def run_chapter(root: Path, name: str, param_file: Path, force: bool = False) -> bool:
    """Execute one chapter into ``book/<name>.ipynb``; returns False when it was already current."""
    notebook = root / "notebooks" / f"{name}.ipynb"
    target = root / "book" / f"{name}.ipynb"
    values = check_param_file(notebook, param_file)
    expected = stamp(root, notebook, param_file)
    if not force and is_current(target, expected):
        print(f"{name}: up to date ({param_file.name})")
        return False
    partial = root / "book" / ".partial" / target.name
    partial.parent.mkdir(exist_ok=True)
    start = time.time()
    print(f"{name}: executing with {param_file.relative_to(root)}", flush=True)
    os.environ.setdefault("TQDM_DISABLE", "1")
    os.environ["SAESTEER_BOOK"] = "1"  # this run writes the book's results (paths.run_dir)
    papermill.execute_notebook(str(notebook), str(partial), parameters=values, cwd=str(root / "book"), kernel_name="python3")
    executed = nbformat.read(partial, as_version=4)
    hide_injected_parameters(executed)
    executed.metadata[STAMP_KEY] = expected
    nbformat.write(executed, partial)
    shutil.move(partial, target)
    print(f"{name}: done in {time.time() - start:.0f} s", flush=True)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", help="run just this chapter")
    parser.add_argument("--force", action="store_true", help="re-execute even if up to date")
    parser.add_argument("--check", action="store_true", help="execute nothing; fail if a chapter is stale")
    args = parser.parse_args(argv)
    root = repo_root()
    if args.check:
        stale = stale_chapters(root)
        for name in stale:
            print(f"book/{name}.ipynb is missing or stale: run `python -m saesteer.study.pipeline --only {name}`", file=sys.stderr)
        return 1 if stale else 0
    todo = chapters(root)
    if args.only:
        if args.only not in todo:
            parser.error(f"--only {args.only!r} is not one of {', '.join(todo)}")
        todo = {args.only: todo[args.only]}
    for name, param_file in todo.items():
        run_chapter(root, name, param_file, force=args.force)
    return 0


if __name__ == "__main__":
    sys.exit(main())
