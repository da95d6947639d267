"""Chapter B: pairs and their splits, CAA vectors, batched steering, resampled vectors, the negative-projection,
OMP and ground-truth machinery, JumpReLU training, the claims rules (verdicts from intervals), and the notebook on
tiny Gemma-2 and Gemma 3 models with the real-model parameter files."""

import json
from pathlib import Path

import numpy as np
import papermill
import pytest
import torch
import yaml
from sae_lens.saes.jumprelu_sae import JumpReLUSAE, JumpReLUSAEConfig

from conftest import run_results
from saesteer.analyses import decomposition as svd
from saesteer.chapters import steering_vector_decomposition as chapter
from saesteer.core.hooks import Site
from saesteer.core.interventions import forward_with_edits
from saesteer.core.sae_training import reconstruction_stats
from saesteer.core.saes import check_release, unit_decoder
from saesteer.core.splits import SplitError
from saesteer.core.tiny import random_sae
from saesteer.organism.jumprelu import JumpReLUConfig, train_jumprelu
from saesteer.study.params import ParameterError

ROOT = Path(__file__).resolve().parents[1]
PARAM_DIR = ROOT / "notebooks" / "params" / "steering_vector_decomposition"
TINY_PAIRS = [svd.Pair(f"w{i} w{i + 1} w{i + 2}" + " w3" * (i % 3) + (" w9" if split == "eval" else ""), " w40", " w41", split,
                       f"c{i % 4}") for split in ("selection", "eval") for i in range(8)]
PARAMS = {"far_below": 0.05, "dominance": 0.5, "mirror_cosine": -0.5, "top_k": 5, "headline_multiplier": 1.0,
          "gt_margin": 0.1, "pairs": "organism", "behaviour": "refusal"}
CHOICE = {"value": 1, "made on": "selection split", "rule": "largest slope"}


@pytest.fixture(autouse=True)
def results_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("SAESTEER_RESULTS", str(tmp_path / "results"))


def context(**extra) -> dict:
    return {"params": PARAMS, "layer": CHOICE, "n_build": 8, "n_eval": 8, "unit": "cluster"} | extra


def test_organism_pairs_round_trip_through_the_pair_file_and_the_splits_stay_apart(tmp_path):
    path = svd.export_pairs(tmp_path / "pairs.jsonl", n_selection=7, n_eval=4)
    pairs = svd.load_pairs(path)
    build, choose, held = svd.split_pairs(pairs, 5, 2, 10)
    assert len(build) == 5 and len(choose) == 2 and len(held) == 4
    assert not {p.prompt for p in build + choose} & {p.prompt for p in held}
    assert all(p.prompt.endswith("assistant :") and (p.positive, p.negative) == (" sorry", " sure") for p in pairs)
    assert not {p.unit for p in build} & {p.unit for p in held}  # held-out verb-object requests are never selected
    corrigible = svd.organism_pairs(3, 3, "corrigibility")
    assert all({p.positive, p.negative} == {" a", " b"} for p in corrigible)
    leaked = [svd.Pair("x", " a", " b", "selection"), svd.Pair("x", " a", " b", "eval")]
    with pytest.raises(SplitError, match="pair prompts"):
        svd.split_pairs(leaked, 1, 1, 1)
    (tmp_path / "bad.jsonl").write_text(json.dumps({"prompt": "x", "positive": "a"}) + "\n")
    with pytest.raises(ParameterError, match="line 1"):
        svd.load_pairs(tmp_path / "bad.jsonl")


def test_answers_must_differ_in_their_first_token(tiny_models):
    tokenizer = tiny_models["gemma2"].tokenizer
    assert svd.answer_tokens(tokenizer, TINY_PAIRS[:2]).shape == (2, 2)
    with pytest.raises(ParameterError, match="first token"):
        svd.answer_tokens(tokenizer, [svd.Pair("w1", " w5 w6", " w5 w7")])


def test_caa_vector_is_the_mean_answer_token_difference(tiny_models):
    """Batched, left-padded activations at the answer token equal each text run alone."""
    lm, pairs = tiny_models["gemma2"], TINY_PAIRS[:6]
    vecs = svd.caa_vectors(lm, pairs, [0, 1], batch_size=4)
    alone = []
    for p in pairs:
        acts = [forward_with_edits(lm, [t], read=[Site(1)])[1][Site(1)][0, -1] for t in p.texts]
        alone.append(acts[0] - acts[1])
    assert torch.allclose(vecs[1]["v"], torch.stack(alone).mean(0), atol=1e-5)
    assert vecs[0]["pos"].shape == (6, 32)


def test_steering_grid_batched_equals_one_row_at_a_time_and_zero_is_unsteered(tiny_models):
    lm, pairs = tiny_models["gemma2"], TINY_PAIRS[8:12]
    answers = svd.answer_tokens(lm.tokenizer, pairs)
    vectors = torch.randn(2, 32, generator=torch.Generator().manual_seed(0))
    batched = svd.steer_grid(lm, pairs, answers, Site(0), vectors, [0.0, 3.0], batch_size=16)
    alone = svd.steer_grid(lm, pairs, answers, Site(0), vectors, [0.0, 3.0], batch_size=1)
    assert np.allclose(batched, alone, atol=1e-4)
    logits, _ = forward_with_edits(lm, [p.prompt for p in pairs])
    clean = (logits[:, -1, answers[0, 0]] - logits[:, -1, answers[0, 1]]).numpy()
    assert np.allclose(batched[0, 0], clean, atol=1e-4) and not np.allclose(batched[0, 1], clean, atol=1e-3)


def test_shift_intervals_resample_clusters_and_paired_differences_use_the_same_pairs():
    base = np.zeros(8)
    steered = np.array([1.0, 1.0, -1.0, -1.0, 1.0, 1.0, -1.0, -1.0]) * 2
    stats = svd.shift_stats(steered, base, [f"c{i // 2}" for i in range(8)])
    assert stats["clusters"] == 4 and stats["p_shift"] == pytest.approx(0.0, abs=1e-9)
    assert stats["p_lo"] < -0.3 and stats["p_hi"] > 0.3  # clusters up and down: a wide interval
    rows = [{"vector": "v", "shifts": [0.5] * 8}, {"vector": "SAE reconstruction", "shifts": [0.3] * 8}]
    assert svd.paired(rows, "v", "SAE reconstruction", list("aabbccdd")) == pytest.approx((0.2, 0.2, 0.2))


def _mirrored_sae():
    """A TopK SAE where feature 1's decoder direction is minus feature 0's, and feature 0 reads its own direction."""
    sae = random_sae(32, d_sae=64, k=8, seed=3)
    with torch.no_grad():
        sae.W_dec[1] = -sae.W_dec[0]
        sae.W_enc[:, 0] = sae.W_dec[0] / sae.W_dec[0].norm()
        sae.W_enc[:, 1] = sae.W_dec[1] / sae.W_dec[1].norm()
        sae.b_enc.zero_()
        sae.b_dec.zero_()
    return sae


def test_a_negative_projection_is_lost_its_mirror_fires_and_held_out_pairs_decide():
    sae = _mirrored_sae()
    d0 = sae.W_dec[0].detach() / sae.W_dec[0].detach().norm()
    v = -5.0 * d0
    pos = torch.zeros(8, 32)
    neg = 2.0 * d0 + 0.1 * torch.randn(8, 32, generator=torch.Generator().manual_seed(0))
    result = svd.negative_test(sae, v, pos, neg, [f"c{i % 4}" for i in range(8)], n=1)
    row = result["rows"][0]
    assert row["feature"] == 0 and row["projection"] == pytest.approx(-5.0, abs=1e-4) and row["code on v"] == 0
    assert row["mirror"] == 1 and row["mirror cosine"] == pytest.approx(-1.0, abs=1e-5)
    assert row["mirror code on v"] > row["mirror code on 0"] and result["neg_minus_pos"]["lo"] > 0
    assert chapter.claim_negative({"negative": result}, context())["verdict"] == "reproduced"
    flat = svd.negative_test(sae, v, pos, pos, ["c0"] * 8, n=1)  # no difference on held-out pairs
    assert chapter.claim_negative({"negative": flat}, context())["verdict"] == "not reproduced"


def test_omp_recovers_a_signed_sparse_combination_and_the_ground_truth_scores_it():
    sae = random_sae(32, d_sae=64, k=8, seed=5)
    dirs = unit_decoder(sae)
    v = 2.0 * dirs[3] - 1.5 * dirs[7]
    coef = svd.omp(sae, v, k=2)
    assert set(torch.nonzero(coef).flatten().tolist()) == {3, 7}
    assert coef[3] == pytest.approx(2.0, abs=1e-4) and coef[7] == pytest.approx(-1.5, abs=1e-4)
    truth = np.full(64, 0.5)
    truth[3], truth[7] = 0.9, 0.1
    row = svd.score_methods({"OMP": coef}, truth, k=2, margin=0.2)[0]
    assert row["ground truth hits"] == 2 and row["precision"] == 1.0
    flipped = svd.score_methods({"OMP": -coef}, truth, k=2, margin=0.2)[0]
    assert flipped["ground truth hits"] == 0  # the sign must match the side of 0.5
    noise = torch.randn(64, generator=torch.Generator().manual_seed(1)) * 0.01
    rec = svd.recovery_auroc({"encode(v)": noise, "OMP": coef}, truth, margin=0.2, draws=200)
    assert rec["n_truth"] == 2 and rec["methods"]["OMP"]["auroc"] == 1.0
    assert rec["methods"]["encode(v)"]["minus_naive"] == 0.0 and rec["methods"]["OMP"]["minus_naive_lo"] > -0.5


def _bias_sae(d_in: int = 16, d_sae: int = 32) -> JumpReLUSAE:
    """A JumpReLU SAE whose features 0-4 have a bias above their threshold: encode(0) fires them."""
    torch.manual_seed(0)
    sae = JumpReLUSAE(JumpReLUSAEConfig(d_in=d_in, d_sae=d_sae)).eval()
    with torch.no_grad():
        sae.W_enc.copy_(torch.randn(d_in, d_sae) * 0.1)
        sae.W_dec.copy_(torch.randn(d_sae, d_in))
        sae.threshold.fill_(1.0)
        sae.b_enc.zero_()
        sae.b_enc[:5] = torch.arange(5, 0, -1).float() + 1.5
    return sae


def test_a_jumprelu_bias_dominates_a_short_vector_and_a_topk_sae_is_not_testable():
    sae = _bias_sae()
    v = torch.randn(16, generator=torch.Generator().manual_seed(1)) * 0.1
    zero = svd.zero_code(sae, torch.randn(50, 16) * 5)
    assert zero["architecture"] == "jumprelu" and zero["zero_l0"] == 5
    table = svd.top_latents(sae, v, [1.0, 100.0], k=5, median_norm=float(v.norm()) * 10)
    assert table["scales"][0]["share_with_zero"] == 1.0 and [r["feature"] for r in table["zero"]] == [0, 1, 2, 3, 4]
    draws = svd.resampled_vectors(v + 0.01 * torch.randn(8, 16), [f"c{i}" for i in range(8)], draws=200)
    boot = svd.overlap_bootstrap(sae, draws, [1.0], k=5)
    assert boot["1.0"] == {"lo": 1.0, "hi": 1.0}
    analysis = {"saes": {"jumprelu": {"zero": zero, "table1": table, "overlap_intervals": boot | {"100.0": {"lo": 0.0, "hi": 0.2}}},
                         "topk": {"zero": svd.zero_code(random_sae(16, 32, k=4), torch.randn(50, 16))}}}
    assert chapter.claim_bias(analysis, "jumprelu", context())["verdict"] == "reproduced"
    assert chapter.claim_scaling(analysis, "jumprelu", context())["verdict"] == "not reproduced"
    topk = chapter.comparison_claims(analysis, context())
    assert [c["verdict"] for c in topk] == ["not testable"] * 2 and "largest code" in topk[0]["caveat"]


def test_resampled_vectors_rebuild_v_from_whole_clusters():
    diffs = torch.tensor([[1.0, 0.0], [1.0, 0.0], [3.0, 0.0], [3.0, 0.0]])
    draws = svd.resampled_vectors(diffs, ["a", "a", "b", "b"], draws=500)
    assert set(draws[:, 0].tolist()) == {1.0, 2.0, 3.0} and torch.all(draws[:, 1] == 0)
    real = torch.tensor([[0.5, 0.0], [1.5, 0.0], [2.5, 0.0], [10.0, 0.0]])
    share = svd.norm_bootstrap(draws, real)["share_below_v"]
    assert share == {"lo": 0.25, "hi": 0.75}


def test_jumprelu_training_folds_the_normalisation_back_into_raw_activations():
    gen = torch.Generator().manual_seed(0)
    basis = torch.randn(24, 16, generator=gen)
    codes = torch.relu(torch.randn(6000, 24, generator=gen) - 1.0)
    acts = codes @ basis + 20.0  # a large mean offset, as real residual streams carry
    sae = train_jumprelu(acts, JumpReLUConfig(expansion=4, target_l0=4.0, samples=60_000, batch=512, lr=3e-3), seed=0)
    stats = reconstruction_stats(sae, acts)
    assert sae.cfg.architecture() == "jumprelu" and stats["fvu"] < 0.5 and 0 < stats["l0"] < 40


def test_reconstructions_are_rescaled_to_the_norm_of_v():
    sae = random_sae(32, d_sae=64, k=8, seed=1)
    v = torch.randn(32, generator=torch.Generator().manual_seed(2))
    weights = svd.decompositions(sae, v, torch.randn(5, 32), torch.randn(5, 32), k=4)
    vecs = svd.reconstruction_vectors(sae, v, weights, k=4, seed=0, others={"other": random_sae(32, 64, k=8, seed=2)})
    assert set(vecs) >= {"v", "SAE reconstruction", "other reconstruction", "OMP top-4", "random direction"}
    assert all(x.norm() == pytest.approx(float(v.norm()), rel=1e-4) for x in vecs.values())


def test_steering_claim_is_read_from_the_paired_interval():
    row = lambda name, shifts: {"vector": name, "multiplier": 1.0, "shifts": shifts,  # noqa: E731
                                "p_shift": float(np.mean(shifts)), "p_lo": 0.0, "p_hi": 1.0}
    clusters = [f"c{i % 4}" for i in range(8)]
    weaker = [row("v", [0.5] * 8), row("SAE reconstruction", [0.3, 0.32] * 4)]
    assert chapter.claim_steering(weaker, context(clusters=clusters))["verdict"] == "reproduced"
    mixed = [row("v", [0.5] * 8), row("SAE reconstruction", [0.3, 0.3, 0.7, 0.7] * 2)]  # overlapping: inconclusive
    assert chapter.claim_steering(mixed, context(clusters=[f"c{i % 4}" for i in range(8)]))["verdict"] == "inconclusive"
    stronger = [row("v", [0.3] * 8), row("SAE reconstruction", [0.5] * 8)]
    assert chapter.claim_steering(stronger, context(clusters=clusters))["verdict"] == "not reproduced"


def test_claims_1_and_5_follow_their_intervals():
    norms = {"v_norm": 1.0, "ratio_to_median": 0.1, "share_below_v": 0.01, "norms": [1.0] * 100}
    far = {"norms": norms, "norm_intervals": {"share_below_v": {"lo": 0.0, "hi": 0.02}}}
    assert chapter.claim_norm(far, context())["verdict"] == "reproduced"
    near = far | {"norm_intervals": {"share_below_v": {"lo": 0.01, "hi": 0.2}}}
    assert chapter.claim_norm(near, context())["verdict"] == "inconclusive"
    methods = {m: {"auroc": 0.6, "minus_naive": 0.1, "minus_naive_lo": 0.05, "minus_naive_hi": 0.2} for m in svd.METHODS}
    sae = {"recovery": {"n_truth": 5, "n_features": 64, "methods": methods},
           "methods": [{"method": m, "precision": 0.4} for m in svd.METHODS]}
    assert chapter.claim_alternatives(sae, context())["verdict"] == "reproduced"
    methods["signed projection"] |= {"minus_naive_lo": -0.1}
    assert chapter.claim_alternatives(sae, context())["verdict"] == "inconclusive"
    assert chapter.claim_alternatives({}, context())["verdict"] == "not testable"


def test_bad_parameters_stop_with_one_sentence():
    good = {"headline_multiplier": 4.0, "multipliers": [0.0, 4.0], "pairs": "organism", "scales": [1.0, 4.0],
            "behaviour": "refusal", "sae_families": ["jumprelu", "topk"]}
    chapter.check_params(good)
    with pytest.raises(ParameterError, match="headline_multiplier"):
        chapter.check_params(good | {"headline_multiplier": 3.0})
    with pytest.raises(ParameterError, match="0.0"):
        chapter.check_params(good | {"multipliers": [4.0], "headline_multiplier": 4.0})
    with pytest.raises(ParameterError, match="pairs"):
        chapter.check_params(good | {"pairs": "no/such/file.jsonl"})
    with pytest.raises(ParameterError, match="scales"):
        chapter.check_params(good | {"scales": [2.0]})
    with pytest.raises(ParameterError, match="behaviour"):
        chapter.check_params(good | {"behaviour": "kindness"})
    with pytest.raises(ParameterError, match="sae_families"):
        chapter.check_params(good | {"sae_families": ["relu"]})


def _tiny_run(param_file: Path, family: str, tmp_path: Path) -> dict:
    """The chapter notebook with a real-model parameter file's values (its release named at every layer it uses), on a
    tiny ``family`` model with random local SAEs."""
    values = yaml.safe_load(param_file.read_text())
    for layer in {values["layer"], *values["layers"]}:
        check_release(values["sae_release"], values["sae_id"].format(layer=layer))
    for layer in (0, 1):
        random_sae(32, d_sae=64, k=8, seed=layer).save_model(str(tmp_path / "saes" / f"resid_post_{layer}"))
    pair_file = tmp_path / "pairs.jsonl"
    pair_file.write_text("\n".join(json.dumps(p.__dict__) for p in TINY_PAIRS) + "\n")
    overrides = {"model": f"tiny:{family}", "device": "cpu", "dtype": "float32", "sae_release": None, "sae_id": None,
                 "sae_path": str(tmp_path / "saes" / "{position}_{layer}"), "pairs": str(pair_file), "layer": None,
                 "layers": [0, 1], "n_pairs": 5, "n_choose": 3, "n_eval": 8, "n_norm_tokens": 100, "recon_k": 4,
                 "draws": 100, "batch_size": 16, "setting": f"pytest-{family}"}
    papermill.execute_notebook(str(ROOT / "notebooks" / "steering_vector_decomposition.ipynb"), str(tmp_path / "out.ipynb"),
                               parameters={**values, **overrides}, cwd=str(ROOT / "book"), kernel_name="python3",
                               progress_bar=False)
    return json.loads(run_results(tmp_path / "results", "steering_vector_decomposition").read_text())


def _check_tiny(saved: dict) -> None:
    results = saved["results"]
    assert results["layer"] in (0, 1) and [c["claim"] for c in results["claims"]] == [1, 2, 3, 4, 5, 6]
    verdicts = {c["claim"]: c["verdict"] for c in results["claims"]}
    assert verdicts[2] == verdicts[3] == verdicts[5] == "not testable"  # random TopK SAEs, no planted concept
    assert all(c["n"] is not None and c["unit"] and c["preregistered"] for c in results["claims"])
    assert {r["vector"] for r in results["steering"]} >= {"v", "SAE reconstruction", "random direction"}
    assert "shifts" not in results["steering"][0]


@pytest.mark.notebook
def test_gemma_parameter_file_names_a_real_release_and_runs_on_tiny_gemma2(tmp_path):
    _check_tiny(_tiny_run(PARAM_DIR / "gemma2-2b.yaml", "gemma2", tmp_path))


@pytest.mark.notebook
def test_gemma3_scope2_parameter_file_names_a_real_release_and_runs_on_tiny_gemma3(tmp_path):
    _check_tiny(_tiny_run(PARAM_DIR / "gemma3-270m-scope2.yaml", "gemma3", tmp_path))


@pytest.mark.notebook
@pytest.mark.parametrize("setting", ["gemma3-270m-sentiment", "gemma3-270m-wedding"])
def test_the_books_gemma3_parameter_files_run_on_tiny_gemma3(tmp_path, setting):
    """The book's Gemma 3 runs of chapter B, on a tiny Gemma 3: the sae_path template's {architecture} gives the
    claims' JumpReLU SAE and a TopK SAE only where one exists (layer 1 here), norm_text reads a JSONL corpus,
    and the pair file the book uses is well formed (its answers differ in their first Gemma 3 token)."""
    values = yaml.safe_load((PARAM_DIR / f"{setting}.yaml").read_text())
    pairs = svd.load_pairs(values["pairs"])
    assert {p.split for p in pairs} == {"selection", "eval"} and len(pairs) >= values["n_pairs"] + values["n_choose"]
    for layer in (0, 1):
        torch.manual_seed(layer)
        jump = JumpReLUSAE(JumpReLUSAEConfig(d_in=32, d_sae=64))
        torch.nn.init.normal_(jump.W_enc, std=0.3)
        torch.nn.init.normal_(jump.W_dec, std=0.3)
        jump.save_model(str(tmp_path / "saes" / f"jumprelu_resid_post_{layer}"))
    random_sae(32, d_sae=64, k=8).save_model(str(tmp_path / "saes" / "topk_resid_post_1"))
    corpus = tmp_path / "heldout.jsonl"
    corpus.write_text("".join(json.dumps({"source": "s", "text": f"w{i} w{i + 1} w{i + 2} w{i + 3}"}) + "\n" for i in range(3, 50)))
    pair_file = tmp_path / "pairs.jsonl"
    pair_file.write_text("\n".join(json.dumps(p.__dict__) for p in TINY_PAIRS) + "\n")
    overrides = {"model": "tiny:gemma3", "sae_path": str(tmp_path / "saes" / "{architecture}_{position}_{layer}"),
                 "pairs": str(pair_file), "norm_text": str(corpus), "layers": [0, 1], "layer": 1, "n_pairs": 5,
                 "n_choose": 3, "n_eval": 8, "n_norm_tokens": 100, "recon_k": 4, "draws": 100, "batch_size": 16}
    papermill.execute_notebook(str(ROOT / "notebooks" / "steering_vector_decomposition.ipynb"), str(tmp_path / "out.ipynb"),
                               parameters={**values, **overrides}, cwd=str(ROOT / "book"), kernel_name="python3",
                               progress_bar=False)
    results = json.loads(run_results(tmp_path / "results", "steering_vector_decomposition").read_text())["results"]
    assert list(results["saes"]) == ["jumprelu", "topk"] and [c["claim"] for c in results["claims"]] == [1, 2, 3, 4, 5, 6]
    assert {c["claim"]: c["verdict"] for c in results["claims"]}[5] == "not testable"  # no planted concept
    assert "held-out text (norm_text)" in results["claims"][0]["caveat"]
