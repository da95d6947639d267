"""Run the chapter notebooks through papermill into ``book/`` (the first half of ``make book``).

``notebooks/chapters.yaml`` names each chapter and the parameter file the book
is built with. A chapter is re-executed only when its notebook, its parameter
file or the library changed since its executed copy was written (a stamp in the
executed notebook's metadata), so an interrupted ``make book`` resumes where it
stopped. Each notebook is executed into ``book/.partial/`` and moved into place
only when it finished, so a failed run never replaces a good page.

Usage: ``python -m saesteer.pipeline [--only CHAPTER] [--force]``.
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

from saesteer.params import ParameterError, read_param_file
from saesteer.paths import repo_root
from saesteer.results import source_digest

STAMP_KEY = "saesteer_stamp"


def chapters(root: Path) -> dict[str, Path]:
    """Chapter name -> the parameter file the book is built with."""
    listing = read_param_file(root / "notebooks" / "chapters.yaml")
    return {name: root / "notebooks" / "params" / name / f"{setting}.yaml" for name, setting in listing.items()}


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


def stamp(root: Path, notebook: Path, param_file: Path) -> str:
    """A hash of everything an executed chapter depends on: notebook, parameters, library code and
    the organism's manifest (which changes whenever the organism is rebuilt)."""
    digest = source_digest(root)
    for path in [notebook, param_file]:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def is_current(executed: Path, expected: str) -> bool:
    """Whether the executed notebook carries the expected stamp."""
    if not executed.is_file():
        return False
    return nbformat.read(executed, as_version=4).metadata.get(STAMP_KEY) == expected


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
    papermill.execute_notebook(str(notebook), str(partial), parameters=values, cwd=str(root / "book"), kernel_name="python3")
    executed = nbformat.read(partial, as_version=4)
    executed.metadata[STAMP_KEY] = expected
    nbformat.write(executed, partial)
    shutil.move(partial, target)
    print(f"{name}: done in {time.time() - start:.0f} s", flush=True)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", help="run just this chapter")
    parser.add_argument("--force", action="store_true", help="re-execute even if up to date")
    args = parser.parse_args(argv)
    root = repo_root()
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
