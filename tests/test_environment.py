"""The conda environment and the pip package declare the same dependencies."""

import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_environment_yml_lists_the_pyproject_dependencies():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert sorted(pip_section) == sorted(project["dependencies"])
    assert f"python={project['requires-python'].lstrip('>=')}" in env["dependencies"]


def test_torch_and_jupyter_book_pins():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert "torch==2.13.0" in deps  # the local CPU wheel; a looser pin pulls CUDA packages
    assert any(d.startswith("jupyter-book==1.") for d in deps)  # 2.x cannot build offline
