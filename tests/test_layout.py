"""The library's layers import only downwards: core <- the two subjects (organism, gemma3) <- study <- analyses
<- chapters; the subjects do not import each other, and nothing imports a chapter (the scorecard and the
synthesis read results files, not chapter internals)."""

import ast
from pathlib import Path

import pytest

from saesteer.study import sources

LIB = Path(__file__).resolve().parents[1] / "lib" / "saesteer"
RANK = {"core": 0, "organism": 1, "gemma3": 1, "study": 2, "analyses": 3, "chapters": 4}  # a layer imports lower ranks


def _modules() -> list[Path]:
    return sorted(p for p in LIB.rglob("*.py") if p.parent != LIB)


def _layer_of(path: Path) -> str:
    """The layer a module file lives in: its top folder under ``lib/saesteer`` (a package inside a layer,
    like ``analyses/flow/``, belongs to that layer)."""
    return path.relative_to(LIB).parts[0]


def _imports(path: Path):
    """(module imported, names imported) for every saesteer import in ``path``, at any depth."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("saesteer"):
            yield node.module, [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            yield from ((a.name, []) for a in node.names if a.name.startswith("saesteer"))


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def test_every_module_lives_in_a_layer():
    assert {_layer_of(p) for p in _modules()} == set(RANK)


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(LIB)))
def test_imports_run_downwards_and_never_reach_a_chapter_or_a_private_name(path):
    own = _layer_of(path)
    for module, names in _imports(path):
        targets = [module] + [f"{module}.{n}" for n in names if sources.module_file(f"{module}.{n}")]
        for target in targets:
            layer = _layer(target)
            assert layer is None or layer == own or RANK[layer] < RANK[own], f"{path.name} ({own}) imports {target}"
            assert layer != "chapters" or target == "saesteer.chapters", f"{path.name} imports chapter {target}"
        private = [n for n in names if n.startswith("_")]
        assert not private, f"{path.name} imports private {private} from {module}"


def test_the_organism_loads_without_its_training_stack():
    imported = set(sources._closure("saesteer.organism.artifacts"))
    assert not imported & {"saesteer.organism.training", "saesteer.organism.build", "saesteer.core.sae_training"}


def test_a_chapter_depends_only_on_the_modules_it_imports():
    notebooks = LIB.parents[1] / "notebooks"
    methods = sources.notebook_modules(notebooks / "methods.ipynb")
    flow = sources.notebook_modules(notebooks / "feature_flow.ipynb")
    assert "saesteer.study.flow_plots" in flow and "saesteer.analyses.flow" in flow
    assert not {"saesteer.study.flow_plots", "saesteer.analyses.flow", "saesteer.organism.training"} & set(methods)
