"""Every command of the "Rerun this study" page (``book/rerun.md``, its ```bash blocks) is run here against what
this machine has (the datasets' fixtures, tiny models of the same architectures, the tests that run each
real-model parameter file on a tiny model), or is listed in ``NOT_RUN`` with the reason it cannot be; a command
added to the page without either fails ``test_every_command_on_the_page_is_run_or_listed``."""

import importlib
import re
import shlex
from dataclasses import replace
from pathlib import Path

import papermill
import pytest
import yaml

from saesteer.analyses import refusal as rs
from saesteer.core.files import fill
from saesteer.core.hooks import Site
from saesteer.core.models import load_model
from saesteer.core.saes import check_fits, load_sae
from saesteer.organism.evaluation import load_items
from saesteer.study import datasets as ds
from saesteer.study import train_saes
from saesteer.study.budget import real_model_files
from saesteer.study.params import check, read_param_file

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "book" / "rerun.md"
FIXTURES = ROOT / "tests" / "fixtures" / "datasets"
SOURCE = {"wildguard": "wildguardmix", "xstest": "xstest", "escalation": "safemtdata", "mmlu": "mmlu",
          "gsm8k": "gsm8k", "truthfulqa": "truthful_qa", "pairs": "model-written-evals", "corpus": "wikitext",
          "prefixes": "wikitext"}
FIXTURE_SIZES = {"prefixes": ["--skip", "10", "-n", "5"]}  # the fixture has 24 documents, not 20,050
FAMILY = {"microsoft/Phi-3-mini-4k-instruct": "phi3", "google/gemma-2-2b": "gemma2", "google/gemma-3-270m": "gemma3"}

NOT_RUN = {  # command on the page -> why no test runs it here
    "make test": "installs the environment and runs this suite: the CI job itself",
    "make book": "executes every chapter and builds the book: the CI's book job",
    "python3.11 -m venv .venv && . .venv/bin/activate": "creates an environment (needs the package index)",
    "pip install torch==2.13.0": "needs the package index",
    "pip install -e .": "needs the package index",
    "python -m saesteer.study.pipeline --only methods": "re-executes a book page (tests/test_pipeline.py covers the pipeline)",
    "hf auth login": "needs a Hugging Face account and the hub, which tests never reach",
    "export HF_HUB_OFFLINE=0": "lets the study reach the hub, which tests never do",
    "mkdir -p runs": "only makes the folder for executed copies",
    "make gemma3-model": "needs the Gemma 3 packages from the package index",
    "make gemma3-corpus": "needs Debian's packages (apt-get download)",
    "make gemma3": "needs Gemma 3 270M and its corpus (about an hour and a half on 2 cores)",
    "python -m saesteer.study.pipeline --only steering_vector_decomposition": "re-executes book sections on Gemma 3 270M (needs make gemma3)",
    "python -m saesteer.study.pipeline --only input_output_scores@gemma3-270m": "re-executes a book section on Gemma 3 270M (needs make gemma3)",
    "python -m saesteer.study.pipeline --only feature_flow@gemma3-270m": "re-executes a book section on Gemma 3 270M (needs make gemma3)",
    "pytest --nbval book/*.ipynb --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg":
        "re-executes every book notebook: tests/test_notebooks.py::test_book_notebooks_validate_with_nbval does (marked notebook)",
}
COVERED = {  # parameter file of a papermill command -> the test that runs it through papermill on a tiny model
    "methods/tiny.yaml": "test_notebooks.py::test_book_notebooks_validate_with_nbval",
    "refusal_steering/phi3-mini.yaml": "test_refusal_steering.py::test_phi3_parameter_file_trains_its_sae_with_sae_lens_and_runs_on_tiny_phi3",
    "refusal_steering/gemma2-2b-it.yaml": "test_refusal_steering.py::test_gemma_parameter_file_names_a_real_release_and_runs_on_tiny_gemma2",
    "refusal_steering/gemma3-270m-it-scope2.yaml":
        "test_refusal_steering.py::test_gemma3_scope2_parameter_file_names_an_instruct_release_and_runs_on_tiny_gemma3",
    "steering_vector_decomposition/gemma2-2b.yaml":
        "test_steering_vector_decomposition.py::test_gemma_parameter_file_names_a_real_release_and_runs_on_tiny_gemma2",
    "steering_vector_decomposition/gemma3-270m-scope2.yaml":
        "test_steering_vector_decomposition.py::test_gemma3_scope2_parameter_file_names_a_real_release_and_runs_on_tiny_gemma3",
    "steering_vector_decomposition/gemma3-270m-sentiment.yaml":
        "test_steering_vector_decomposition.py::test_the_books_gemma3_parameter_files_run_on_tiny_gemma3",
    "feature_flow/gemma2-2b.yaml": "test_feature_flow.py::test_gemma_parameter_file_names_real_releases_and_runs_on_tiny_gemma2",
    "feature_flow/gemma3-270m-scope2.yaml": "test_feature_flow.py::test_gemma3_scope2_parameter_file_names_real_releases_and_runs_on_tiny_gemma3",
    "feature_flow/gemma3-270m.yaml": "test_feature_flow.py::test_the_books_gemma3_parameter_file_runs_on_tiny_gemma3",
    "input_output_scores/gemma2-2b.yaml": "test_input_output_scores.py::test_gemma_parameter_file_names_real_saes_and_runs_on_tiny_gemma2",
    "input_output_scores/gemma3-270m-scope2.yaml":
        "test_input_output_scores.py::test_gemma3_scope2_parameter_file_names_real_saes_and_runs_on_tiny_gemma3",
    "input_output_scores/gemma3-270m.yaml": "test_input_output_scores.py::test_the_books_gemma3_parameter_file_runs_on_tiny_gemma3",
}


def page_commands() -> list[str]:
    """Each line of the page's ```bash blocks, its trailing comment and comment lines left out."""
    blocks = re.findall(r"```bash\n(.*?)```", PAGE.read_text(), re.S)
    lines = [re.split(r"\s+#", line)[0].strip() for block in blocks for line in block.splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def of_kind(prefix: str) -> list[list[str]]:
    return [shlex.split(c) for c in page_commands() if c.startswith(prefix)]


def data_args(tokens: list[str], root: Path) -> list[str]:
    """A page's data command made to run here: its output under ``root``, its dataset read from the fixture."""
    name, rest = tokens[3], tokens[4:]
    out = rest.pop(0) if rest and not rest[0].startswith("-") else ds.COMMANDS[name].default_out
    local = [] if name == "topics" else ["--source", str(FIXTURES / SOURCE[name]), "--cache-dir", str(root / "cache")]
    skip = ["--skip", "0"] if name == "corpus" and "--skip" in rest else []
    return [name, str(root / out), *rest, *skip, *FIXTURE_SIZES.get(name, []), *local]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    """Every data command of the page, run on the fixtures into one folder (the repository's layout)."""
    root = tmp_path_factory.mktemp("repo")
    for tokens in of_kind("python -m saesteer.study.datasets"):
        assert ds.main(data_args(tokens, root)) == 0, shlex.join(tokens)
    return root


def tiny_text(path: Path) -> Path:
    path.write_text("\n".join(" ".join(f"w{(i * 7 + j) % 60}" for j in range(30)) for i in range(400)))
    return path


def test_every_command_on_the_page_is_run_or_listed():
    commands = page_commands()
    runnable = ("python -m saesteer.study.datasets", "python -m saesteer.study.train_saes", "papermill ")
    assert {c for c in commands if not c.startswith(runnable)} == set(NOT_RUN), (
        "book/rerun.md's commands and this module's NOT_RUN differ: run a new command in a test, or list it with the reason")


def test_the_data_commands_write_every_file_the_parameter_files_read(data_root):
    for param_file in real_model_files(ROOT):
        values = read_param_file(param_file)
        for key in ("prompts", "pairs", "corpus_text", "prefixes_text"):
            if values.get(key) not in (None, "organism"):
                assert (data_root / values[key]).exists(), f"no page command writes {values[key]} ({param_file.name})"
        if param_file.parent.name == "refusal_steering":
            folder = data_root / values["prompts"]
            capability = tuple(values["capability_kinds"])
            assert all(load_items(folder, rs.UNSAFE + rs.SAFE + capability, 5).values())
            assert all(load_items(folder / "selection", rs.SEARCH_KINDS + capability, 5).values())
    assert (data_root / "data" / "text" / "sae_train.txt").is_file()


def _target(args) -> tuple[Path, str]:
    """The real-model parameter file whose SAE template the command's ``--out`` fills, and that template's key."""
    for param_file in real_model_files(ROOT):
        values = read_param_file(param_file)
        for key in ("sae_path", "attn_sae_path"):
            template = values.get(key)
            if template and values["model"] == args.model and all(
                    args.out.format(position=args.hook, layer=layer) == template.format(position=args.hook, layer=layer)
                    for layer in args.layers):
                return param_file, key
    raise AssertionError(f"no real-model parameter file loads SAEs from {args.out} for {args.model}")


def test_the_sae_commands_train_what_the_parameter_files_load(tmp_path):
    text, covered = tiny_text(tmp_path / "text.txt"), {}
    for tokens in of_kind("python -m saesteer.study.train_saes"):
        args = train_saes.parser().parse_args(tokens[3:])
        param_file, key = _target(args)
        covered.setdefault((param_file, key), set()).update(args.layers)
        family, out = FAMILY[args.model], str(tmp_path / args.out)
        train_saes.train(f"tiny:{family}", args.hook, [0, 1], text, out, args.architecture, k=min(args.k, 4),
                         width=64, tokens=2048, batch=256, context=16, target_l0=8.0, device="cpu")
        lm = load_model(f"tiny:{family}")
        for layer in (0, 1):
            sae = load_sae(path=str(fill(out, position=args.hook, layer=layer)))
            check_fits(sae, lm, Site(layer, args.hook))
            assert sae.cfg.d_sae == 64
    for (param_file, key), layers in covered.items():  # the commands train every layer the file loads
        values = read_param_file(param_file)
        needed = values.get("search_layers") or range(26 if "gemma-2" in values["model"] else 18)
        assert set(needed) <= layers, f"{param_file.name}'s {key} needs layers {sorted(set(needed) - layers)}"


def test_papermill_commands_name_real_parameters_and_a_test_runs_each_file(data_root):
    """Each papermill command's parameters (file and overrides) pass the chapter's checks, with the data files
    from the page's data commands in place (files in the study's cache, ``{cache}/...``, need ``make gemma3``:
    their existence is not checked); and a named test runs its parameter file through papermill."""
    for tokens in of_kind("papermill "):
        notebook, param_file = Path(tokens[1]), Path(tokens[tokens.index("-f") + 1])
        assert notebook.parent.name == "notebooks" and notebook.stem == param_file.parent.name
        declared = set(papermill.inspect_notebook(str(ROOT / notebook)))
        specs = importlib.import_module(f"saesteer.chapters.{notebook.stem}").PARAMS
        overrides = {}
        for i, flag in enumerate(tokens):
            if flag == "-p":
                overrides[tokens[i + 1]] = yaml.safe_load(tokens[i + 2])
            if flag == "-y":
                overrides.update(yaml.safe_load(tokens[i + 1]))
        values = {**read_param_file(ROOT / param_file), **overrides}
        assert set(values) <= declared, f"{shlex.join(tokens)} names parameters its notebook lacks"
        for name, value in values.items():
            check(name, value, replace(specs[name], exists=False))
            if specs[name].exists and value is not None and not value.startswith("{cache}"):
                assert (data_root / value).exists() or (ROOT / value).exists(), f"{param_file}: {name} {value} is missing"
        test_file, test_name = COVERED[str(param_file.relative_to("notebooks/params"))].split("::")
        assert f"def {test_name}(" in (ROOT / "tests" / test_file).read_text(), f"{test_file} has no {test_name}"


@pytest.mark.notebook
def test_chapter_a_runs_on_the_converted_prompts_and_trained_saes(data_root, tmp_path, monkeypatch):
    """The page's chain for Phi-3 Mini on a tiny Phi-3: the data commands' prompt folder, the SAE command's SAEs
    (trained at the tiny model's two layers), then the chapter through papermill with the real-model file."""
    from test_refusal_steering import PARAM_DIR, _tiny_run

    monkeypatch.setenv("SAESTEER_RESULTS", str(tmp_path / "results"))  # where _tiny_run reads the results
    tokens = next(t for t in of_kind("python -m saesteer.study.train_saes") if "microsoft/Phi-3-mini-4k-instruct" in t)
    args = train_saes.parser().parse_args(tokens[3:])
    out = str(tmp_path / args.out)
    train_saes.train("tiny:phi3", args.hook, [0, 1], tiny_text(tmp_path / "text.txt"), out, args.architecture, k=4,
                     width=64, tokens=2048, batch=256, context=16, device="cpu")
    values = read_param_file(PARAM_DIR / "phi3-mini.yaml")
    saved = _tiny_run(PARAM_DIR / "phi3-mini.yaml", "phi3", tmp_path, data_root / values["prompts"], sae_path=out)
    assert len(saved["results"]["claims"]) == 5
    assert set(saved["results"]["sweep"][0]["report"]) == {*rs.UNSAFE, *rs.SAFE, *values["capability_kinds"]}
