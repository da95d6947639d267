"""Every bad parameter value stops a notebook before any heavy work with one sentence (one row each).

Each row starts from the values a notebook runs with in the book (its parameters cell overridden by the
book's parameter file), changes what a user might get wrong, and runs the checks the notebook's setup
cell runs (``notebook.check``; ``check_layers`` against the organism's depth where layers are involved).
"""

import shlex
from pathlib import Path

import papermill
import pytest
import torch
import yaml
from papermill.cli import _resolve_type

from saesteer.chapters import feature_flow, input_output_scores, intro, methods, refusal_steering, synthesis
from saesteer.chapters import steering_vector_decomposition as decomposition
from saesteer.core.hooks import Site
from saesteer.study import notebook, subjects
from saesteer.study.params import ParameterError, read_param_file
from saesteer.study.paths import chapter_param_files

ROOT = Path(__file__).resolve().parents[1]
ORGANISM_LAYERS = 6


def book_values(chapter) -> dict:
    """A chapter's parameters as the book runs it: notebook defaults, then the book's parameter file."""
    name = chapter.__name__.rsplit(".", 1)[1]
    defaults = {k: v["default"] for k, v in papermill.inspect_notebook(str(ROOT / "notebooks" / f"{name}.ipynb")).items()}
    values = {k: _python(v) for k, v in defaults.items()}
    return values | read_param_file(chapter_param_files(ROOT)[name])


def _python(text: str):
    """A default as the notebook's parameters cell writes it (a Python literal)."""
    import ast
    return ast.literal_eval(text)


def checked(chapter, overrides: dict, n_layers: int | None = ORGANISM_LAYERS) -> dict:
    config = notebook.check(chapter, book_values(chapter) | overrides)
    if n_layers is not None and hasattr(chapter, "check_layers"):
        chapter.check_layers(config, n_layers)
    return config


CASES = [  # (chapter, overrides, the one sentence)
    (refusal_steering, {"lyaer": 3}, "Unknown parameter 'lyaer'; did you mean 'layer'?"),
    (methods, {"k": 100}, "Parameter 'k' must be at most d_sae (64); got 100."),
    (methods, {"families": []}, "Parameter 'families' must be a non-empty list of values from 'gemma2', 'gemma3', 'phi3', 'llama', 'gpt2'; got []."),
    (methods, {"clamp_values": []}, "Parameter 'clamp_values' must be a non-empty list of numbers; got []."),
    (decomposition, {"scales": []}, "Parameter 'scales' must be a non-empty list of numbers of at least 0.0; got []."),
    (input_output_scores, {"thresholds": []}, "Parameter 'thresholds' must be a non-empty list of numbers; got []."),
    (refusal_steering, {"refusal_markers": []}, "Parameter 'refusal_markers' must be a non-empty list of strings; got []."),
    (refusal_steering, {"search_layers": [99]}, "Parameter 'search_layers' must be an integer from 0 to 5; got 99."),
    (feature_flow, {"steer_coefficients": []}, "Parameter 'steer_coefficients' must be a non-empty list of numbers of at least 0.0; got []."),
    (feature_flow, {"layers": [1, 2]}, "Parameter 'seed_layer' puts a seed at layer 3, which is not among the matched layers [1, 2]; add it to 'layers' or move the seed."),
    (refusal_steering, {"setting": "organsim"}, "Parameter 'setting' is 'organsim', which is not a parameter file of this chapter; did you mean 'organism'?"),
    (refusal_steering, {"model": "organsim"}, "Parameter 'model' is 'organsim', which is not a model; did you mean 'organism'?"),
    (synthesis, {"sources": "organsim"}, "Parameter 'sources' is 'organsim', which has no results under data/results; did you mean 'organism'?"),
    (intro, {"chapters_file": "notebooks/chapter.yaml"}, "Parameter 'chapters_file' must name a chapter listing in the repository, like notebooks/chapters.yaml; 'notebooks/chapter.yaml' does not exist."),
]
if not torch.cuda.is_available():  # a machine with a GPU accepts device: cuda
    CASES.append((refusal_steering, {"device": "cuda"}, "Parameter 'device' is 'cuda' but this machine has no CUDA GPU; use 'auto' or 'cpu'."))


@pytest.mark.parametrize("chapter, overrides, message", CASES, ids=[f"{c.__name__.rsplit('.', 1)[1]}-{next(iter(o))}" for c, o, _ in CASES])
def test_a_bad_value_stops_with_one_sentence(chapter, overrides, message, monkeypatch):
    monkeypatch.delenv("SAESTEER_RESULTS", raising=False)  # the sources check reads the book's results
    with pytest.raises(ParameterError) as err:
        checked(chapter, overrides)
    assert str(err.value) == message


def test_the_book_values_pass_every_check():
    for chapter in (methods, refusal_steering, decomposition, feature_flow, input_output_scores, synthesis, intro):
        checked(chapter, {})


def test_a_missing_local_sae_is_one_sentence_and_loading_never_trains(tmp_path):
    values = book_values(refusal_steering) | {"model": "tiny:gemma2", "sae_path": str(tmp_path / "sae_{layer}")}
    subject = subjects.load_subject(notebook.check(refusal_steering, values))
    with pytest.raises(ParameterError) as err:
        subject.sae(Site(1))
    assert str(err.value) == (f"Parameter 'sae_path' names '{tmp_path}/sae_1' for resid_post@1, which holds no SAE "
                              "(cfg.json); fix the path, or give 'sae_train_text' to train the missing SAEs.")
    assert not (tmp_path / "sae_1").exists()


def readme_commands() -> list[list[str]]:
    """Every ``papermill`` command line of the README, split as a shell would."""
    lines = (ROOT / "README.md").read_text().splitlines()
    return [shlex.split(line.split("#")[0]) for line in lines if line.startswith("papermill notebooks/")]


def cli_values(argv: list[str]) -> tuple[str, dict]:
    """The chapter and the parameters papermill's command line delivers (``-f`` file, ``-y`` YAML, ``-p`` typed)."""
    values, args = {}, iter(argv[3:])
    for flag in args:
        if flag == "-f":
            values |= yaml.safe_load((ROOT / next(args)).read_text())
        elif flag == "-y":
            values |= yaml.safe_load(next(args))
        elif flag == "-p":
            name = next(args)
            values[name] = _resolve_type(next(args))
    return Path(argv[1]).stem, values


@pytest.mark.parametrize("argv", readme_commands(), ids=lambda a: Path(a[1]).stem)
def test_the_readme_commands_pass_the_checks_as_written(argv):
    import importlib
    name, values = cli_values(argv)
    chapter = importlib.import_module(f"saesteer.chapters.{name}")
    notebook_values = {k: _python(v["default"]) for k, v in papermill.inspect_notebook(str(ROOT / argv[1])).items()}
    n_layers = 2 if name == "methods" else ORGANISM_LAYERS
    config = notebook.check(chapter, notebook_values | values)
    if hasattr(chapter, "check_layers"):
        chapter.check_layers(config, n_layers)
    assert all(not isinstance(config[k], str) or notebook_values.get(k) is None or isinstance(notebook_values[k], str)
               for k in config), "a -p value reached the notebook as a string"


def test_the_readme_has_the_commands_it_promises():
    names = {Path(a[1]).stem for a in readme_commands()}
    assert {"methods", "refusal_steering", "input_output_scores"} <= names
