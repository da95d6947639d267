"""Chapter D: the logit lens, the scores (batched = one feature at a time), the filter curve, and the notebook on tiny
Gemma-2 and Gemma 3 models with the real-model parameter files."""

import json
from pathlib import Path

import numpy as np
import papermill
import pytest
import torch
import yaml

from conftest import run_results
from saesteer.analyses import scores as io
from saesteer.chapters import input_output_scores as chapter
from saesteer.core.generation import perplexity
from saesteer.core.hooks import Site
from saesteer.core.interventions import forward_with_edits
from saesteer.core.models import torch_model
from saesteer.core.saes import check_release
from saesteer.core.tiny import random_sae
from saesteer.study.params import ParameterError

ROOT = Path(__file__).resolve().parents[1]
PARAM_DIR = ROOT / "notebooks" / "params" / "input_output_scores"
PROMPT = "w3 w4 w5 w6"


@pytest.fixture(autouse=True)
def results_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("SAESTEER_RESULTS", str(tmp_path / "results"))


def test_unembed_applies_the_models_own_final_norm_and_softcap(tiny_models):
    """Unembedding the last layer's output with ``unembed`` gives the model's own logits (Gemma-2 soft-capping included)."""
    model = tiny_models["gemma2"]
    torch_model(model).config.final_logit_softcapping = 3.0  # small, so the cap visibly bends the logits
    try:
        logits, acts = forward_with_edits(model, [PROMPT], read=[Site(1)])
        assert torch.allclose(io.unembed(model, acts[Site(1)][0]), logits[0], atol=1e-5)
        assert logits.abs().max() < 3.0
    finally:
        torch_model(model).config.final_logit_softcapping = 30.0


def test_logit_lens_leaves_out_special_tokens(tiny_models, sae):
    lens = io.logit_lens(tiny_models["gemma2"], sae, 20)
    assert lens.shape == (64, 20)
    assert not set(lens.flatten().tolist()) & set(tiny_models["gemma2"].tokenizer.all_special_ids)


def test_batched_output_scores_equal_one_feature_at_a_time(tiny_models, sae):
    model, site = tiny_models["gemma2"], Site(1)
    feats = list(range(0, 64, 3))
    lens = io.logit_lens(model, sae, 10, feats)
    batched = io.output_scores(model, sae, site, feats, lens, PROMPT, 10.0, batch_size=64)
    alone = io.output_scores(model, sae, site, feats, lens, PROMPT, 10.0, batch_size=1, prefix_cache=False)
    full = io.output_scores(model, sae, site, feats, lens, PROMPT, 10.0, batch_size=64, prefix_cache=False)
    assert np.allclose(batched["score"], alone["score"], atol=1e-5) and batched["token"] == alone["token"]
    assert np.allclose(full["score"], alone["score"], atol=1e-6)
    assert np.ptp(batched["score"]) > 0  # the features move the distribution differently


def test_lens_probability_rank_and_product():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.2]]))
    out = io.lens_probability(logits, torch.tensor([[2, 1]]))
    assert out["token"].item() == 1 and out["rank"].item() == 1
    assert out["P"].item() == pytest.approx((1 - 1 / 3) * 0.3)


def test_input_scores_count_peak_tokens_in_the_lens():
    # 4 documents, 2 features; feature 0 peaks on token 7 in its 3 active docs, 2 of them in its lens
    peak = torch.tensor([[3.0, 0.0], [2.0, 1.0], [1.0, 0.0], [0.0, 0.0]])
    token = torch.tensor([[7, 1], [7, 4], [8, 1], [9, 1]])
    lens = torch.tensor([[7, 5], [4, 6]])
    out = io.input_scores(peak, token, lens, min_examples=2, max_examples=4)
    assert out["score"][0] == pytest.approx(2 / 3) and out["examples"] == [3, 1]
    assert np.isnan(out["score"][1])  # one active document: fewer than min_examples
    assert out["peak_tokens"][0][0] == 7


def test_threshold_curve_keeps_high_output_features_and_random_control_matches_size():
    gen = np.array([0.0, 0.0, 0.0, 2.0, 2.0])
    s_out = np.array([-0.1, 0.0, 0.1, 0.8, 0.9])
    curve = io.threshold_curve(gen, s_out, [0.0, 0.5], draws=200, seed=0)
    assert [c["threshold"] for c in curve] == ["none", 0.0, 0.5] and [c["kept"] for c in curve] == [5, 4, 2]
    assert curve[0]["mean"] == pytest.approx(0.8) and curve[2]["mean"] == 2.0
    assert curve[2]["random mean"] < 2.0 and curve[0]["random mean"] == pytest.approx(0.8)


def test_threshold_rule_and_filter_effect_on_planted_gains():
    """Features with a high output score gain 2, the rest 0.5: the rule picks the threshold that keeps the
    high ones, the ratio's interval lies well above 1 and the filter beats random subsets of the same size."""
    rng = np.random.default_rng(0)
    s_out = rng.uniform(0, 1, 200)
    gain = np.where(s_out >= 0.7, 2.0, 0.5) + rng.normal(0, 0.1, 200)
    assert io.pick_threshold(gain, s_out, [0.0, 0.5, 0.7, 0.9], min_share=0.1) == 0.7
    assert io.pick_threshold(gain, s_out, [0.0, 0.5, 0.7, 0.9], min_share=0.6) == 0.0  # only 0.0 keeps 60%
    effect = io.filter_effect(gain, s_out, 0.7, draws=300, seed=0)
    assert effect["ratio"][1] > 1.5 and effect["over random"][1] > 0.5
    flat = io.filter_effect(rng.normal(0, 0.1, 200), s_out, 0.7, draws=300, seed=0)  # no gain: ratio undefined
    assert np.isnan(flat["ratio"][1]) and flat["over random"][1] < 0 < flat["over random"][2]


def test_selection_and_evaluation_features_never_overlap():
    rows = [{"layer": layer, "feature": f} for layer in (0, 1) for f in range(100)]
    params = {"seed": 0, "selection_share": 0.5, "select_features": 10, "gen_features": 20}
    parts = io.split_features(rows, params)
    assert len(parts["selection"]) == 20 and len(parts["evaluation"]) == 40
    assert not set(parts["selection"]) & set(parts["evaluation"])
    assert io.split_features(rows, params) == parts  # stable


def test_worked_examples_follow_the_score_rule_and_skip_missing_input_scores():
    nan = float("nan")
    rows = [{"layer": 0, "feature": 0, "S_in": 0.9, "S_out": 0.1}, {"layer": 0, "feature": 1, "S_in": 0.2, "S_out": 0.9},
            {"layer": 0, "feature": 2, "S_in": nan, "S_out": 1.0}, {"layer": 0, "feature": 3, "S_in": 0.8, "S_out": 0.2}]
    gen = [{"layer": 0, "feature": f, "gen_success": 1.0, "baseline": 0.5, "gain": 0.5, "factor": 1.0, "perplexity": 2.0}
           for f in range(4)]
    ex = io.worked_examples(rows, gen, cut=0.5, n=2)
    assert [e["feature"] for e in ex["input features"]] == [0, 3] and [e["feature"] for e in ex["output features"]] == [1]


def test_hybrid_ratio_and_trend_difference():
    rng = np.random.default_rng(0)
    hug = ([{"S_in": a, "S_out": 0.0} for a in rng.uniform(0.6, 1, 100)]
           + [{"S_in": 0.0, "S_out": b} for b in rng.uniform(0.6, 1, 100)] + [{"S_in": 0.9, "S_out": 0.9}])
    h = io.hybrid_ratio(hug, 0.5, draws=200, seed=0)
    assert h["hybrids"] == 1 and h["ratio"] < 0.1 and h["hi"] < 0.5
    rows = [{"depth": d, "S_in": 1.0 - d + e, "S_out": d + e} for d in (0.25, 0.5, 0.75, 1.0) for e in rng.normal(0, 0.05, 50)]
    s_in, s_out = io.trend_difference(rows, "S_in", 200, 0), io.trend_difference(rows, "S_out", 200, 0)
    assert s_in[1] > 0 and s_out[2] < 0


def test_classify_and_claims_rules():
    assert io.classify(0.9, 0.1, 0.5) == "input" and io.classify(float("nan"), 0.9, 0.5) == "output"
    assert io.classify(0.6, 0.7, 0.5) == "hybrid"
    both = {"S_in early-late": (0.3, 0.2, 0.4), "S_out early-late": (-0.1, -0.2, -0.05),
            "halves": {"early": [2, 5, 8], "late": [11, 14, 17]}}
    assert chapter._claim_trend(both, 100)["verdict"] == "reproduced"
    assert "early 2, 5, 8, late 11, 14, 17" in chapter._claim_trend(both, 100)["caveat"]
    assert chapter._claim_trend(both | {"S_out early-late": (0.0, -0.1, 0.1)}, 100)["verdict"] == "inconclusive"
    assert chapter._claim_trend(both | {"S_out early-late": (0.1, 0.05, 0.2)}, 100)["verdict"] == "not reproduced"


def test_bad_parameters_stop_with_one_sentence():
    with pytest.raises(ParameterError, match="min_examples"):
        chapter.check_params({"min_examples": 50, "max_examples": 20, "factors": [1.0], "model": "organism",
                              "coherence_model": "organism-second"})
    with pytest.raises(ParameterError, match="coherence_model"):
        chapter.check_params({"min_examples": 5, "max_examples": 20, "model": "tiny:gemma2", "coherence_model": "tiny:gemma2"})


def _tiny_run(param_file: Path, family: str, tmp_path: Path) -> tuple[dict, dict]:
    """The file's values with the run's overrides, and the saved results of the chapter notebook run with them on a tiny ``family`` model with
    random local SAEs, after checking the file's release names an SAE at each of its layers."""
    values = yaml.safe_load(param_file.read_text())
    for layer in values["layers"]:
        check_release(values["sae_release"], values["sae_id"].format(layer=layer))
    for layer in (0, 1):
        random_sae(32, d_sae=64, k=8, seed=layer).save_model(str(tmp_path / "saes" / f"resid_post_{layer}"))
    rng = np.random.default_rng(0)
    corpus, prefixes = tmp_path / "corpus.txt", tmp_path / "prefixes.txt"
    corpus.write_text("\n".join(" ".join(f"w{i}" for i in rng.integers(3, 60, 12)) for _ in range(40)))
    prefixes.write_text("\n".join(" ".join(f"w{i}" for i in rng.integers(3, 60, 5)) for _ in range(4)))
    overrides = {"model": f"tiny:{family}", "device": "cpu", "dtype": "float32", "sae_release": None, "sae_id": None,
                 "sae_path": str(tmp_path / "saes" / "{position}_{layer}"), "layers": [], "corpus_text": str(corpus),
                 "corpus_docs": 40, "prefixes_text": str(prefixes), "n_prefixes": 4, "neutral_prompt": "w1 w2 w3",
                 "gen_tokens": 4, "gen_features": 4, "select_features": 3, "factors": [1.0, 10.0], "lens_k": 5,
                 "coherence_model": "tiny:llama", "random_draws": 200,
                 "min_examples": 5, "batch_size": 64, "setting": f"pytest-{family}"}
    out = tmp_path / "chapter.ipynb"
    papermill.execute_notebook(str(ROOT / "notebooks" / "input_output_scores.ipynb"), str(out),
                               parameters={**values, **overrides}, cwd=str(ROOT / "book"), kernel_name="python3",
                               progress_bar=False)
    return {**values, **overrides}, json.loads(run_results(tmp_path / "results", "input_output_scores").read_text())


@pytest.mark.notebook
def test_gemma_parameter_file_names_real_saes_and_runs_on_tiny_gemma2(tmp_path):
    values, saved = _tiny_run(PARAM_DIR / "gemma2-2b.yaml", "gemma2", tmp_path)
    assert len(saved["results"]["scores"]) == 2 * 64  # every feature of both layers
    assert len(saved["results"]["claims"]) == 6
    assert len(saved["results"]["curve"]) == 1 + len(values["thresholds"])
    parts = saved["results"]["parts"]
    assert not {tuple(k) for k in parts["selection"]} & {tuple(k) for k in parts["evaluation"]}
    assert saved["results"]["preregistered"]["factor"]["value"] in values["factors"]


@pytest.mark.notebook
def test_gemma3_scope2_parameter_file_names_real_saes_and_runs_on_tiny_gemma3(tmp_path):
    values, saved = _tiny_run(PARAM_DIR / "gemma3-270m-scope2.yaml", "gemma3", tmp_path)
    assert len(saved["results"]["scores"]) == 2 * 64 and len(saved["results"]["claims"]) == 6
    assert len(saved["results"]["curve"]) == 1 + len(values["thresholds"])


@pytest.mark.notebook
def test_the_books_gemma3_parameter_file_runs_on_tiny_gemma3(tmp_path):
    """The book's Gemma 3 run of chapter D on a tiny Gemma 3, with its committed prefixes, a JSONL corpus and
    the held-out features steered at the rule's factor only (sweep_evaluation false)."""
    values = yaml.safe_load((PARAM_DIR / "gemma3-270m.yaml").read_text())
    assert len((ROOT / values["prefixes_text"]).read_text().splitlines()) == values["n_prefixes"] == 50
    for layer in (0, 1):
        random_sae(32, d_sae=64, k=8, seed=layer).save_model(str(tmp_path / "saes" / f"jumprelu_resid_post_{layer}"))
    rng = np.random.default_rng(0)
    corpus = tmp_path / "heldout.jsonl"
    corpus.write_text("".join(json.dumps({"source": "s", "text": " ".join(f"w{i}" for i in rng.integers(3, 60, 12))}) + "\n"
                              for _ in range(40)))
    overrides = {"model": "tiny:gemma3", "sae_path": str(tmp_path / "saes" / "jumprelu_{position}_{layer}"), "layers": [],
                 "corpus_text": str(corpus), "corpus_docs": 40, "n_prefixes": 4, "neutral_prompt": "w1 w2 w3", "gen_tokens": 4,
                 "gen_features": 4, "lens_k": 5, "coherence_model": "tiny:llama", "random_draws": 200, "min_examples": 5,
                 "batch_size": 64}
    papermill.execute_notebook(str(ROOT / "notebooks" / "input_output_scores.ipynb"), str(tmp_path / "out.ipynb"),
                               parameters={**values, **overrides}, cwd=str(ROOT / "book"), kernel_name="python3",
                               progress_bar=False)
    results = json.loads(run_results(tmp_path / "results", "input_output_scores").read_text())["results"]
    factor = results["factor"]["factor"]
    assert {g["factor"] for g in results["gen"] if g["part"] == "evaluation"} == {factor}
    assert {g["factor"] for g in results["gen"] if g["part"] == "selection"} == set(values["factors"])
    assert {c["claim"]: c["verdict"] for c in results["claims"]}[6] == "not testable"


def test_running_top_examples_do_not_depend_on_the_batching(tiny_models, sae):
    """The activation cache keeps a running top-n per feature: batches of 3 documents give the top of one batch of all."""
    from saesteer.study.subjects import Subject

    subject = Subject(tiny_models["gemma2"], {"model": "tiny:gemma2"})
    subject._saes[Site(1), None] = sae  # the SAE cache is keyed by (site, architecture)
    rng = np.random.default_rng(1)
    docs = [" ".join(f"w{i}" for i in rng.integers(3, 60, rng.integers(3, 9))) for _ in range(12)]
    small = io.activation_stats(subject, docs, [1], n_top=5, batch_size=3)
    whole = io.activation_stats(subject, docs, [1], n_top=12, batch_size=64)
    assert small.peak[1].shape == (5, 64)
    assert torch.allclose(small.peak[1], whole.peak[1][:5], atol=1e-5)
    assert (small.peak[1][0] > 0).any()


def test_perplexity_of_a_row_does_not_depend_on_its_batch(tiny_models):
    model = tiny_models["gemma2"]
    prompts = ["w3 w4", "w5 w6 w7 w8 w9 w10", "w11"]
    continuations = torch.tensor([[5, 6, 7], [8, 9, 0], [10, 11, 12]])  # 0 = padding after the end
    together = perplexity(model, prompts, continuations)
    alone = torch.cat([perplexity(model, [p], c[None]) for p, c in zip(prompts, continuations)])
    assert torch.allclose(together, alone, atol=1e-4) and (together > 1).all()
