"""Notebooks through papermill with parameter files, then nbval; the pipeline's checks; the book's notebooks."""

import importlib
import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import nbformat
import papermill
import pytest
import yaml

from conftest import run_results
from saesteer.study import paths, pipeline
from saesteer.study.params import ParameterError

ROOT = Path(__file__).resolve().parents[1]
SANITIZE = ROOT / "tests" / "nbval_sanitize.cfg"


@pytest.fixture(autouse=True)
def results_in_tmp(tmp_path, monkeypatch):
    """Notebooks run by tests write their results under tmp, not into data/."""
    monkeypatch.setenv("SAESTEER_RESULTS", str(tmp_path / "results"))


def nbval(*notebooks: Path, book: bool = False) -> subprocess.CompletedProcess:
    """Re-execute notebooks with nbval and compare every output with the stored one (``book``: as the
    pipeline runs them, writing the book's results, here under the test's results root)."""
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval", "--nbval-current-env",
           "--nbval-sanitize-with", str(SANITIZE), *map(str, notebooks)]
    env = {**os.environ, "TQDM_DISABLE": "1"} | ({"SAESTEER_BOOK": "1"} if book else {})
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env)


@pytest.mark.notebook
def test_methods_notebook_runs_with_a_parameter_file_and_validates(tmp_path):
    param_file = tmp_path / "two.yaml"
    param_file.write_text(yaml.safe_dump({"setting": "pytest", "families": ["gemma2", "gpt2"], "layer": 0,
                                          "clamp_values": [0.0, 4.0], "n_new_tokens": 4}))
    out = tmp_path / "methods.ipynb"
    papermill.execute_notebook(str(ROOT / "notebooks" / "methods.ipynb"), str(out),
                               parameters=yaml.safe_load(param_file.read_text()), cwd=str(ROOT / "book"),
                               kernel_name="python3", progress_bar=False)
    saved = json.loads(run_results(tmp_path / "results", "methods").read_text())
    assert saved["params"]["families"] == ["gemma2", "gpt2"] and saved["params"]["layer"] == 0
    assert not (tmp_path / "results" / "pytest").exists()  # a papermill run never writes the book's folder
    assert saved["results"]["splice_max_logit_error"] == {"gemma2": 0.0, "gpt2": 0.0}
    assert saved["results"]["generation_edited_steps"] == {"gemma2": 4, "gpt2": 4}
    run = nbval(out)
    assert run.returncode == 0, run.stdout[-3000:]


@pytest.mark.parametrize("override, message", [
    ({"layer": 5}, "Parameter 'layer' must be an integer from 0 to 1; got 5."),
    ({"position": "resid"}, "Parameter 'position' must be one of 'attn_out', 'mlp_out', 'resid_post'; got 'resid'."),
    ({"feature": 64}, "Parameter 'feature' must be an integer from 0 to 63; got 64."),
    ({"lyaer": 3}, "Unknown parameter 'lyaer'; did you mean 'layer'?"),
])
@pytest.mark.notebook
def test_bad_parameter_stops_the_notebook_with_one_sentence(tmp_path, override, message):
    with pytest.raises(papermill.PapermillExecutionError) as err:
        papermill.execute_notebook(str(ROOT / "notebooks" / "methods.ipynb"), str(tmp_path / "bad.ipynb"),
                                   parameters={"families": ["gpt2"], **override}, cwd=str(ROOT / "book"),
                                   kernel_name="python3", progress_bar=False)
    assert err.value.ename == "ParameterError" and err.value.evalue == message


@pytest.mark.parametrize("chapter", list(pipeline.chapters(ROOT)))
def test_notebook_parameters_match_their_declared_specs(chapter):
    """A chapter notebook's parameters cell declares exactly the PARAMS of its module (same name)."""
    declared = set(papermill.inspect_notebook(str(ROOT / "notebooks" / f"{chapter}.ipynb")))
    assert declared == set(importlib.import_module(f"saesteer.chapters.{chapter}").PARAMS)


def test_every_parameter_file_fits_its_notebook():
    files = sorted((ROOT / "notebooks" / "params").glob("*/*.yaml"))
    assert files
    for param_file in files:
        pipeline.check_param_file(ROOT / "notebooks" / f"{param_file.parent.name}.ipynb", param_file)


def test_pipeline_rejects_unknown_parameter_keys(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("layer: 1\nlayr: 2\n")
    with pytest.raises(ParameterError, match="bad.yaml: unknown parameter 'layr' for methods.ipynb"):
        pipeline.check_param_file(ROOT / "notebooks" / "methods.ipynb", bad)


def test_book_notebooks_are_current_with_their_sources(monkeypatch):
    """Each executed chapter in book/ was produced from today's notebook, parameter file, library modules
    and the book's results it reads (`make html` refuses to render otherwise)."""
    monkeypatch.delenv("SAESTEER_RESULTS")  # the book's own results, not this module's temporary root
    stale = pipeline.stale_chapters(ROOT)
    assert not stale, f"stale in book/: {stale}; run `python -m saesteer.study.pipeline`"


@pytest.mark.notebook
def test_book_notebooks_validate_with_nbval(tmp_path):
    """Re-executed as the pipeline runs them, in its order, each page gives the outputs stored in book/.
    The results root starts as a copy of the book's results files, which the chapters that read others'
    results (C, the synthesis, the front page, a page showing other subjects) read and the others overwrite
    with the same numbers. A run this machine cannot execute (the real model or its SAEs not built: CI) is
    skipped with a warning that says why; its executed copy is still checked current by its stamp. Where this
    machine has the runs' stage caches (not in CI), the re-executions reuse them, as the pipeline does."""
    runs = paths.chapter_runs(ROOT)
    skipped = {run.name: pipeline.unavailable(run) for run in runs if pipeline.unavailable(run)}
    for name, why in skipped.items():
        warnings.warn(f"nbval skips {name}: {why}", stacklevel=1)
    notebooks = [run.executed for run in runs if run.name not in skipped]
    assert all(nb.is_file() for nb in notebooks)
    assert all(nbformat.read(nb, as_version=4).cells for nb in notebooks)
    for source in (ROOT / "data" / "results").glob("*/*/results.json"):
        target = tmp_path / "results" / source.relative_to(ROOT / "data" / "results")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, target)
        if (source.parent / "cache").is_dir():  # this machine's stage caches (none in CI): reruns reuse them
            (target.parent / "cache").symlink_to(source.parent / "cache")
    run = nbval(*notebooks, book=True)
    assert run.returncode == 0, run.stdout[-3000:]


# ---------------------------------------------------------------- reader experience of the executed book

COLLAPSED = {"hide-output", "remove-output", "remove-cell", "output_scroll"}
SHOWN_IN_FULL = {"intro"}  # the front page's scorecard is the page's content, shown in full


def _output_size(cell) -> tuple[int, int, bool]:
    """(text lines, HTML table rows, has an image) of a code cell's outputs."""
    lines = rows = 0
    image = False
    for out in cell.get("outputs", []):
        data = out.get("data", {})
        lines += out.get("text", "").count("\n") + ("text/html" not in data) * data.get("text/plain", "").count("\n")
        rows += data.get("text/html", "").count("<tr")
        image |= "image/png" in data
    return lines, rows, image


def _book_code_cells():
    for run in paths.chapter_runs(ROOT):
        for index, cell in enumerate(nbformat.read(run.executed, as_version=4).cells):
            if cell.cell_type == "code":
                yield run.name, index, cell


def test_every_figure_in_the_book_has_a_caption():
    """Each image output is rendered as a numbered figure with a caption (myst-nb's figure metadata)."""
    uncaptioned = [f"{name} cell {i}" for name, i, cell in _book_code_cells()
                   if _output_size(cell)[2] and not cell.metadata.get("mystnb", {}).get("figure", {}).get("caption")]
    assert not uncaptioned, f"figures without a caption: {uncaptioned}"


def test_long_outputs_in_the_book_are_collapsed():
    """Outputs over 20 lines or 16 table rows carry a tag that hides or scrolls them."""
    long = [f"{name} cell {i}" for name, i, cell in _book_code_cells()
            if name not in SHOWN_IN_FULL and (_output_size(cell)[0] > 20 or _output_size(cell)[1] > 17)
            and not COLLAPSED & set(cell.metadata.get("tags", []))]
    assert not long, f"long outputs shown in full: {long}"
