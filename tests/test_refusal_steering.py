"""Chapter A: the batched sweep, the search's pieces, the claims rules, and the notebook on tiny real architectures."""

import json
from pathlib import Path

import papermill
import pytest
import torch
import yaml
from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory

from conftest import run_results
from saesteer.analyses import refusal as rs
from saesteer.chapters import refusal_steering as chapter
from saesteer.core.hooks import Site
from saesteer.core.interventions import Clamp
from saesteer.core.saes import check_release
from saesteer.core.tiny import random_sae
from saesteer.organism import evaluation
from saesteer.organism.evaluation import Item
from saesteer.study.params import ParameterError
from saesteer.study.results import Cache
from saesteer.study.subjects import export_prompts

ROOT = Path(__file__).resolve().parents[1]
PARAM_DIR = ROOT / "notebooks" / "params" / "refusal_steering"


@pytest.fixture(autouse=True)
def results_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("SAESTEER_RESULTS", str(tmp_path / "results"))


@pytest.fixture(scope="module")
def prompt_folder(tmp_path_factory):
    return export_prompts(tmp_path_factory.mktemp("prompts"), rs.KINDS, 6, rs.SELECTION_KINDS)


def test_batched_sweep_gives_the_answers_of_one_row_at_a_time(tiny_models, sae):
    """Rows of different prompts and clamp values in one generate call = each row alone (left padding included)."""
    model, site = tiny_models["llama"], Site(1)
    sets = {"harmful": [Item("harmful", p, {}) for p in ["w1 w2 w3", "w4", "w5 w6 w7 w8 w9", "w10 w11"]]}
    values = torch.tensor([[float("nan")], [3.0], [12.0]])

    def edits_for(rows, _items):
        return [Clamp(site=site, sae=sae, features=[7], value=values[rows])]

    batched = evaluation.sweep(model, sets, 3, edits_for, batch_size=12, new_tokens={"harmful": 5}, progress=False)
    alone = evaluation.sweep(model, sets, 3, edits_for, batch_size=1, new_tokens={"harmful": 5}, progress=False)
    assert [r["harmful"]["answers"] for r in batched] == [r["harmful"]["answers"] for r in alone]
    assert batched[0]["harmful"]["answers"] != batched[2]["harmful"]["answers"]  # the clamp changes generations


def test_judge_refusal_markers_and_expected_answers():
    item = Item("jailbreak", "p", {})
    assert evaluation.judge(item, "sorry , i can not help with that .")
    assert not evaluation.judge(item, "sure . first you get the parts .")
    assert evaluation.judge(item, "I cannot help with that.", refusal_markers=["i cannot", "I'm sorry"])
    assert evaluation.judge(Item("mc", "p", {"answer": "b", "expect": "(B)"}), "The answer is (B).")
    assert not evaluation.judge(Item("mc", "p", {"answer": "b"}), "the answer is c .")
    assert evaluation.judge(Item("mc", "p", {"expect": "is tin"}), "the metal of opal is tin b .")
    assert not evaluation.judge(Item("mc", "p", {"expect": "is tin"}), "the metal of opal is tinsel b .")  # whole words only
    assert not evaluation.judge(Item("arith", "p", {"answer": "1"}), "the answer is 12 .")


def test_threshold_separates_detector_scores():
    cut = rs.threshold([3.0, 4.0, 5.0, 0.05], [0.0, 0.1, 1.0, 0.0])
    assert cut["threshold"] == 3.0 and cut["true_positive_rate"] == 0.75 and cut["false_positive_rate"] == 0.0


def _report(rates: dict[str, float], n: int = 100) -> dict:
    return {k: {"rate": r, "n": n, "lo": r, "hi": r} for k, r in rates.items()}


def _sweep(refusal: float, capability: float, control_capability: float, cond_refusal: float, cond_capability: float):
    """A constructed sweep (baseline refusal 0.4 / capability 0.9) for the claims rules."""
    def rates(unsafe, safe, cap):
        return _report({**{k: unsafe for k in rs.UNSAFE}, **{k: safe for k in rs.SAFE}, **{k: cap for k in rs.CAPABILITY}})

    multiples = [1.0, 4.0]
    rows = [{"name": "baseline", "multiple": None, "report": rates(0.4, 0.0, 0.9)}]
    rows += [{"name": "refusal feature", "multiple": m, "report": rates(0.4 + (refusal - 0.4) * m / 4, 0.5 * m / 4,
                                                                        0.9 - (0.9 - capability) * m / 4)} for m in multiples]
    rows += [{"name": "control 3", "multiple": m, "report": rates(0.4, 0.0, control_capability)} for m in multiples]
    rows += [{"name": "conditional", "multiple": m, "report": rates(cond_refusal, 0.0, cond_capability)} for m in multiples]
    return rows


def test_claims_verdicts_follow_the_numbers():
    claims = {c["claim"]: c["verdict"] for c in chapter.claims(_sweep(0.95, 0.3, 0.5, 0.9, 0.85), headline=4.0)}
    assert claims == {1: "reproduced", 2: "reproduced", 3: "reproduced", 4: "reproduced", 5: "reproduced"}
    claims = {c["claim"]: c["verdict"] for c in chapter.claims(_sweep(0.4, 0.9, 0.9, 0.4, 0.9), headline=4.0)}
    assert claims[1] == "not reproduced" and claims[3] == "not reproduced" and claims[4] == "not reproduced"


def test_headline_must_be_a_swept_clamp():
    with pytest.raises(ParameterError, match="headline_multiple"):
        chapter.check_params({"headline_multiple": 3.0, "clamp_multiples": [1.0, 2.0]})


def _tiny_run(param_file: Path, family: str, tmp_path: Path, prompt_folder: Path, **sae) -> dict:
    """The chapter notebook through papermill with a real-model parameter file, on a tiny model of the same
    architecture. Every response counts as a refusal (empty marker): a random model refuses nothing."""
    values = yaml.safe_load(param_file.read_text())
    overrides = {"model": f"tiny:{family}", "device": "cpu", "dtype": "float32", "prompts": str(prompt_folder),
                 "chat_template": False, "refusal_markers": [""], "sae_release": None, "sae_id": None, **sae,
                 "layer": None, "search_layers": [0, 1], "n_archetypal": 2, "max_candidates": 4, "n_selection": 4,
                 "clamp_multiples": [1.0, 4.0], "headline_multiple": 4.0, "control_features": [],
                 "eval_items": 4, "layer_eval_items": 4, "batch_size": 16, "setting": f"pytest-{family}"}
    out = tmp_path / "chapter.ipynb"
    papermill.execute_notebook(str(ROOT / "notebooks" / "refusal_steering.ipynb"), str(out), parameters={**values, **overrides},
                               cwd=str(ROOT / "book"), kernel_name="python3", progress_bar=False)
    return json.loads(run_results(tmp_path / "results", "refusal_steering").read_text())


def _hub_file_runs_on_tiny(name: str, family: str, tmp_path, prompt_folder) -> None:
    """A hub parameter file names released SAEs at every searched layer and runs on the tiny ``family`` model
    with random local SAEs in their place."""
    values = yaml.safe_load((PARAM_DIR / name).read_text())
    for layer in values["search_layers"]:
        check_release(values["sae_release"], values["sae_id"].format(layer=layer))
    for layer in (0, 1):
        random_sae(32, d_sae=64, k=8, seed=layer).save_model(str(tmp_path / "saes" / f"resid_post_{layer}"))
    saved = _tiny_run(PARAM_DIR / name, family, tmp_path, prompt_folder, sae_path=str(tmp_path / "saes" / "{position}_{layer}"))
    assert saved["results"]["layer"] in (0, 1) and len(saved["results"]["claims"]) == 5
    assert {r["setting"] for r in saved["results"]["tradeoff"]} >= {"refusal feature", "conditional"}


@pytest.mark.notebook
def test_gemma_parameter_file_names_a_real_release_and_runs_on_tiny_gemma2(tmp_path, prompt_folder):
    _hub_file_runs_on_tiny("gemma2-2b-it.yaml", "gemma2", tmp_path, prompt_folder)


@pytest.mark.notebook
def test_gemma3_scope2_parameter_file_names_an_instruct_release_and_runs_on_tiny_gemma3(tmp_path, prompt_folder):
    """Gemma 3 270M-it with Gemma Scope 2's SAEs trained on that instruct model (sae-lens names it as their model)."""
    values = yaml.safe_load((PARAM_DIR / "gemma3-270m-it-scope2.yaml").read_text())
    assert get_pretrained_saes_directory()[values["sae_release"]].model == values["model"] == "google/gemma-3-270m-it"
    _hub_file_runs_on_tiny("gemma3-270m-it-scope2.yaml", "gemma3", tmp_path, prompt_folder)


@pytest.mark.notebook
def test_phi3_parameter_file_trains_its_sae_with_sae_lens_and_runs_on_tiny_phi3(tmp_path, prompt_folder):
    text = tmp_path / "text.txt"
    text.write_text("\n".join(" ".join(f"w{(i * 7 + j) % 60}" for j in range(30)) for i in range(200)))
    saved = _tiny_run(PARAM_DIR / "phi3-mini.yaml", "phi3", tmp_path, prompt_folder,
                      sae_path=str(tmp_path / "saes" / "layer_{layer}"), sae_train_text=str(text))
    assert (tmp_path / "saes" / "layer_0" / "cfg.json").is_file() and (tmp_path / "saes" / "layer_1" / "cfg.json").is_file()
    # baseline; refusal feature, one control at its own and at the same values, conditional: each at 2 clamps
    assert len(saved["results"]["sweep"]) == 1 + 4 * 2


def _search(layer: int, gains: list[float]) -> rs.LayerSearch:
    ranked = [{"feature": 10 + i, "unsafe_refusal": 0.5 + g, "safe_refusal": 0.1, "gain": g} for i, g in enumerate(gains)]
    ranking = rs.Ranking({"feature": None, "unsafe_refusal": 0.5, "safe_refusal": 0.1, "gain": 0.0}, ranked) if gains else None
    return rs.LayerSearch(layer, 3, [], [1.0] * 20, ranking, [0.0] * 20, None)


def test_a_layer_search_survives_the_stage_cache_and_names_its_best_candidate(tmp_path):
    found = _search(2, [0.3, 0.1])
    cache = Cache(tmp_path, {"case": 1}, "refusal_steering")
    stored = rs.LayerSearch.from_json(cache.get("search", found.to_json))
    assert stored == found and stored.best["feature"] == 10 and stored.ranking.baseline["gain"] == 0.0
    assert _search(1, []).best is None


def test_layer_pick_and_sweep_baseline_are_found_by_content_not_position():
    assert rs.pick_layer({0: _search(0, [0.1]), 1: _search(1, [0.3]), 2: _search(2, [])}) == 1
    rates = {k: {"rate": 0.5} for k in rs.KINDS}
    results = [{"name": "refusal feature", "multiple": 1.0, "value": 2.0, "report": rates},
               {"name": "baseline", "multiple": None, "value": None, "report": rates}]
    assert rs.baseline_of(results) is results[1]
    assert [r["setting"] for r in rs.tradeoff_rows(results)] == ["refusal feature"]
