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


def _report(hits: dict[str, list[bool]], degenerate: float = 0.0) -> dict:
    """A report per kind as ``evaluation.sweep`` gives it: per-item hits and clusters (two items per cluster)."""
    out = {}
    for kind, h in hits.items():
        rate = sum(h) / len(h)
        out[kind] = {"rate": rate, "lo": rate, "hi": rate, "n": len(h), "clusters": len(h) // 2, "degenerate": degenerate,
                     "hits": list(h), "cluster": [f"c{i // 2}" for i in range(len(h))]}
    return out


def _items(share: float, n: int = 40) -> list[bool]:
    """``n`` item judgements of which the first ``share`` are hits (spread over clusters)."""
    return [i < round(share * n) for i in range(n)]


def _sweep(refusal: float, capability: float, control_capability: float, cond_refusal: float, cond_capability: float):
    """A constructed held-out sweep (baseline refusal 0.3 / capability 0.9, clamps 1x and 4x) for the claims rules."""
    def rates(unsafe, safe, cap):
        return _report({**{k: _items(unsafe) for k in rs.UNSAFE}, **{k: _items(safe) for k in rs.SAFE},
                        **{k: _items(cap) for k in rs.CAPABILITY}})

    rows = [{"name": "baseline", "multiple": None, "report": rates(0.3, 0.0, 0.9)}]
    rows += [{"name": "refusal feature", "multiple": m, "report": rates(0.3 + (refusal - 0.3) * m / 4, 0.5 * m / 4,
                                                                        0.9 - (0.9 - capability) * m / 4)} for m in (1.0, 4.0)]
    rows += [{"name": f"control {c}", "multiple": 4.0, "report": rates(0.3, 0.0, control_capability)} for c in (3, 5)]
    rows += [{"name": "conditional", "multiple": 4.0, "report": rates(cond_refusal, 0.0, cond_capability)}]
    return rows


POINTS = {"balance": {"value": 1.0, "rule": "r"}, "max refusal": {"value": 4.0, "rule": "r"}}
HOW = {"feature": 1, "layer": 0, "passed": True, "rule": "top passing candidate"}
SHARES = {"control_share": 0.5, "most_share": 0.5}


def test_claims_verdicts_follow_paired_clustered_differences():
    claims = chapter.claims(_sweep(0.95, 0.3, 0.5, 0.9, 0.85), POINTS, SHARES, HOW)
    assert {c["claim"]: c["verdict"] for c in claims} == {i: "reproduced" for i in range(1, 6)}
    assert all(c["n"] and c["unit"] and c["preregistered"] and "{" not in c["evidence"] for c in claims)
    claims = {c["claim"]: c["verdict"] for c in chapter.claims(_sweep(0.3, 0.9, 0.9, 0.3, 0.9), POINTS, SHARES, HOW)}
    assert claims[1] == "not reproduced" and claims[3] == "not reproduced" and claims[5] == "not testable"
    # controls that lose a little, not half of the feature's loss: claim 4 fails, and the sensitivity rows say so too
    sweep = _sweep(0.95, 0.1, 0.85, 0.9, 0.85)
    assert {c["claim"]: c["verdict"] for c in chapter.claims(sweep, POINTS, SHARES, HOW)}[4] == "not reproduced"
    shares = chapter.share_sensitivity(sweep, 4.0, [0.0, 0.5])
    assert [r["verdict"] for r in shares] == ["reproduced", "not reproduced"]


def test_operating_points_follow_the_selection_rules():
    rows = [{"multiple": m, "unsafe refusal": u, "capability loss": c, "degenerate": d}
            for m, u, c, d in [(1.0, 0.5, 0.0, 0.0), (2.0, 0.7, 0.05, 0.01), (3.0, 0.9, 0.3, 0.02), (4.0, 0.9, 0.8, 0.9)]]
    points = rs.operating_points(rows, max_capability_loss=0.1, max_degenerate=0.05)
    assert points["balance"]["value"] == 2.0 and points["max refusal"]["value"] == 3.0  # ties: the smaller clamp
    assert points["balance"]["made on"] == "selection split" and points["balance"]["alternatives"] == [1.0, 2.0, 3.0, 4.0]
    assert rs.operating_points(rows, 0.0, 0.0)["balance"]["value"] == 1.0  # within the limits: the largest clamp


def test_controls_are_matched_on_frequency_and_leave_out_the_candidates():
    frequency = [0.0] + [0.01 * i for i in range(1, 40)]
    found = rs.LayerSearch(0, 1, [{"feature": 21}], [1.0] * 40, None, [0.0] * 40, None, frequency)
    controls = rs.choose_controls(found, 20, 4, seed=0)
    assert len(controls) == 4 and 20 not in controls and 21 not in controls and 0 not in controls
    assert all(abs(frequency[c] - frequency[20]) <= 0.11 for c in controls)  # from the 20 nearest in frequency
    assert controls == rs.choose_controls(found, 20, 4, seed=0)


def test_role_reads_the_planted_concepts_and_the_unembedding():
    match = [{"concept": "harmful_request", "chosen feature AUROC": 0.9}, {"concept": "refusal", "chosen feature AUROC": 0.57}]
    silent = {"top tokens": [":"], "writes a refusal token": False}
    assert rs.role(match, silent, 0.8)["role"] == "refusal detector"
    assert rs.role(match[1:], {"top tokens": ["sorry"], "writes a refusal token": True}, 0.8)["role"] == "refusal writer"
    assert rs.role(match[1:], silent, 0.8)["role"] == "neither"
    assert rs.role(None, silent, 0.8)["role"].startswith("not known")


def test_search_criterion_rejects_candidates_that_only_raise_degenerate_answers():
    ranking = rs.Ranking({"feature": None, "unsafe_refusal": 0.5, "safe_refusal": 0.0, "degenerate": 0.0, "gain": 0.0},
                         [{"feature": 3, "unsafe_refusal": 0.6, "safe_refusal": 0.0, "gain": 0.1, "passes": False}])
    assert ranking.best is None and ranking.top["feature"] == 3


def _tiny_run(param_file: Path, family: str, tmp_path: Path, prompt_folder: Path, **sae) -> dict:
    """The chapter notebook through papermill with a real-model parameter file, on a tiny model of the same
    architecture. Every response counts as a refusal (empty marker): a random model refuses nothing."""
    values = yaml.safe_load(param_file.read_text())
    overrides = {"model": f"tiny:{family}", "device": "cpu", "dtype": "float32", "prompts": str(prompt_folder),
                 "chat_template": False, "refusal_markers": [""], "sae_release": None, "sae_id": None, **sae,
                 "layer": None, "search_layers": [0, 1], "n_archetypal": 2, "max_candidates": 4, "n_selection": 4,
                 "clamp_multiples": [1.0, 4.0], "control_features": [], "n_controls": 2, "search_min_gain": 0.0,
                 "search_max_degenerate_rise": 1.0, "eval_items": 4, "batch_size": 16, "setting": f"pytest-{family}"}
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
    assert set(saved["results"]["preregistered"]) >= {"feature", "balance", "max refusal", "controls"}


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
    # baseline; the refusal feature at both clamps; conditional at each distinct operating point; two controls
    points = set(saved["results"]["operating_points"].values())
    assert len(saved["results"]["sweep"]) == 1 + 2 + len(points) + 2


@pytest.mark.notebook
def test_chat_model_parameter_file_runs_on_tiny_gemma3_with_the_chat_dataset(tmp_path):
    """The chat model's file on the committed chat prompts, with facts and sums as its capability kinds."""
    for layer in (0, 1):
        random_sae(32, d_sae=64, k=8, seed=layer).save_model(str(tmp_path / "saes" / f"resid_post_{layer}"))
    saved = _tiny_run(PARAM_DIR / "gemma3-270m-chat.yaml", "gemma3", tmp_path, ROOT / "data" / "gemma3" / "chat" / "prompts",
                      sae_path=str(tmp_path / "saes" / "{position}_{layer}"))
    assert set(saved["results"]["sweep"][0]["report"]) == {"harmful", "jailbreak", "escalation", "scary", "benign",
                                                            "facts", "arith"}
    assert len(saved["results"]["claims"]) == 5


def test_capability_kinds_must_be_benchmarks_the_judge_scores():
    chapter.check_params({"capability_kinds": ["facts", "arith"]})
    with pytest.raises(ParameterError, match="capability_kinds"):
        chapter.check_params({"capability_kinds": ["facts", "scary"]})
    assert rs.capability_of({"harmful": 1, "scary": 1, "facts": 1, "arith": 1}) == ("facts", "arith")


def _search(layer: int, gains: list[float]) -> rs.LayerSearch:
    ranked = [{"feature": 10 + i, "unsafe_refusal": 0.5 + g, "safe_refusal": 0.1, "gain": g, "passes": True}
              for i, g in enumerate(gains)]
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
    rates = {k: {"rate": 0.5, "degenerate": 0.0} for k in rs.KINDS}
    results = [{"name": "refusal feature", "multiple": 1.0, "value": 2.0, "report": rates},
               {"name": "baseline", "multiple": None, "value": None, "report": rates}]
    assert rs.baseline_of(results) is results[1]
    assert [r["setting"] for r in rs.tradeoff_rows(results)] == ["refusal feature"]


def test_monotonicity_fails_only_where_refusal_surely_falls_between_neighbouring_clamps():
    def setting(multiple, rate):
        hits = [i < round(rate * 40) for i in range(40)]
        kind = {"hits": hits, "cluster": [f"pair {i % 10}" for i in range(40)], "rate": rate, "n": 40}
        return {"name": "refusal feature", "multiple": multiple, "report": {"harmful": kind, "jailbreak": kind}}

    rising = [setting(1.0, 0.50), setting(2.0, 0.55), setting(3.0, 0.53), setting(4.0, 0.60)]
    assert chapter.falls_between_clamps(rising, ("harmful", "jailbreak")) == []  # a 2-point dip is noise
    collapsing = rising + [setting(8.0, 0.03)]  # degenerate answers at the largest clamp
    assert chapter.falls_between_clamps(collapsing, ("harmful", "jailbreak")) == [8.0]


def test_the_role_finding_reads_as_a_sentence():
    lens = {"top tokens": ["a"], "writes a refusal token": False}
    assert "is neither a harmful-request detector nor a refusal writer" in chapter.finding_role(7, {"role": "neither", **lens})
    assert "is a refusal writer" in chapter.finding_role(7, {"role": "refusal writer", **lens})
    assert "is of unknown role" in chapter.finding_role(7, {"role": "not known (no planted ground truth)", **lens})
