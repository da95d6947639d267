"""What a chapter's results depend on: its notebook, the library modules it imports (transitively), the
organism's manifest, and the real model's records (``data/gemma3/*.json``) for pages that read them. A
digest of exactly these makes a chapter stale when, and only when, one of them changes: a docstring edit
in chapter C's figures re-executes chapter C, not all eight pages.
"""

from __future__ import annotations

import ast
import hashlib
import json
from functools import cache
from pathlib import Path

PACKAGE = "saesteer"


def package_dir() -> Path:
    """``lib/saesteer/`` of the installed (editable) library."""
    return Path(__file__).resolve().parents[1]


def module_file(name: str) -> Path | None:
    """The file of a ``saesteer`` module or package, or None when ``name`` is not one (e.g. a class)."""
    parts = name.split(".")[1:]
    base = package_dir().joinpath(*parts)
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if parts and path.is_file():
            return path
    return package_dir() / "__init__.py" if not parts else None


def imported_modules(source: str, package: str | None = None) -> set[str]:
    """The ``saesteer`` modules that ``source`` imports (``from saesteer.x import y`` counts ``saesteer.x``
    and, when ``y`` is a module, ``saesteer.x.y``)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == PACKAGE}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == PACKAGE:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names if module_file(f"{node.module}.{a.name}")}
    return {name for name in found if module_file(name)}


@cache
def _closure(name: str) -> frozenset[str]:
    """``name`` and every ``saesteer`` module it imports, directly or not (parent packages included)."""
    seen, todo = set(), [name]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        parts = current.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]
        todo += sorted(imported_modules(module_file(current).read_text()))
    return frozenset(seen)


def notebook_code(notebook: Path) -> str:
    """The Python of a notebook's code cells (IPython magics and shell lines dropped)."""
    cells = json.loads(Path(notebook).read_text())["cells"]
    lines = [line for c in cells if c["cell_type"] == "code" for line in "".join(c["source"]).splitlines()]
    return "\n".join(line for line in lines if not line.lstrip().startswith(("%", "!")))


def notebook_modules(notebook: Path) -> list[str]:
    """Every library module a notebook depends on, sorted."""
    names = set()
    for name in imported_modules(notebook_code(notebook)):
        names |= _closure(name)
    return sorted(names)


def chapter_digest(root: Path, chapter: str) -> hashlib._Hash:
    """A running hash of a chapter's notebook, the library modules it depends on and the organism's manifests."""
    notebook = root / "notebooks" / f"{chapter}.ipynb"
    digest = hashlib.sha256(notebook.read_bytes())
    for name in notebook_modules(notebook):
        digest.update(name.encode() + module_file(name).read_bytes())
    organism = root / "data" / "organism"  # the organism, its JumpReLU SAEs and the second organism (coherence)
    for manifest in (organism / "manifest.json", organism / "saes_jumprelu" / "quality.json", organism / "second" / "manifest.json"):
        if manifest.exists():
            digest.update(manifest.read_bytes())
    if any(name.startswith(f"{PACKAGE}.gemma3") for name in notebook_modules(notebook)):
        for record in sorted((root / "data" / "gemma3").glob("*.json")):  # the real model's manifests and quality
            digest.update(record.name.encode() + record.read_bytes())
    return digest
