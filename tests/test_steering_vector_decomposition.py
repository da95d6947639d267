"""Chapter B: CAA vectors, batched steering, the negative-projection and OMP machinery, the claims rules, and
the notebook on tiny Gemma-2 and Gemma 3 models with the real-model parameter files."""

import json
from pathlib import Path

import numpy as np
import papermill
import pytest
import torch
import yaml

from conftest import run_results
from saesteer.analyses import decomposition as svd
from saesteer.chapters import steering_vector_decomposition as chapter
from saesteer.core.hooks import Site
from saesteer.core.interventions import forward_with_edits
from saesteer.core.saes import check_release, unit_decoder
from saesteer.core.tiny import random_sae
from saesteer.study.params import ParameterError

ROOT = Path(__file__).resolve().parents[1]
PARAM_DIR = ROOT / "notebooks" / "params" / "steering_vector_decomposition"
TINY_PAIRS = [svd.Pair(f"w{i} w{i + 1} w{i + 2}" + " w3" * (i % 3), " w40", " w41", split)
              for split in ("selection", "eval") for i in range(8)]


@pytest.fixture(autouse=True)
def results_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("SAESTEER_RESULTS", str(tmp_path / "results"))


def test_organism_pairs_round_trip_through_the_pair_file(tmp_path):
    path = svd.export_pairs(tmp_path / "pairs.jsonl", n_selection=5, n_eval=4)
    pairs = svd.load_pairs(path)
    sel, held = svd.split_pairs(pairs, 10, 10)
    assert len(sel) == 5 and len(held) == 4 and not {p.prompt for p in sel} & {p.prompt for p in held}
    assert all(p.prompt.endswith("assistant :") and {p.positive, p.negative} == {" a", " b"} for p in pairs)
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


def test_a_negative_projection_is_lost_and_its_mirror_fires():
    sae = _mirrored_sae()
    d0 = sae.W_dec[0].detach() / sae.W_dec[0].detach().norm()
    v = -5.0 * d0
    pos, neg = torch.zeros(4, 32), (2.0 * d0).expand(4, 32)
    row = svd.negative_projections(sae, v, pos, neg, n=1)[0]
    assert row["feature"] == 0 and row["projection"] == pytest.approx(-5.0, abs=1e-4) and row["code on v"] == 0
    assert row["mirror"] == 1 and row["mirror cosine"] == pytest.approx(-1.0, abs=1e-5)
    assert row["mirror code on v"] > row["mirror code on 0"] and row["mean on negative"] > row["mean on positive"]
    assert chapter._claim_negative([row])["verdict"] == "reproduced"


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


def test_reconstructions_are_rescaled_to_the_norm_of_v():
    sae = random_sae(32, d_sae=64, k=8, seed=1)
    v = torch.randn(32, generator=torch.Generator().manual_seed(2))
    weights = svd.decompositions(sae, v, torch.randn(5, 32), torch.randn(5, 32), k=4)
    vecs = svd.reconstruction_vectors(sae, v, weights, k=4, seed=0)
    assert set(vecs) >= {"v", "SAE reconstruction", "OMP top-4", "random direction"}
    assert all(x.norm() == pytest.approx(float(v.norm()), rel=1e-4) for x in vecs.values())


def test_claims_rules_follow_the_numbers():
    table = {"v": [{"feature": f, "value": 1.0} for f in (1, 2, 3, 4, 5)],
             "zero": [{"feature": f, "value": 0.9} for f in (1, 2, 3, 4, 9)],
             "scales": [{"scale": 1.0, "norm_over_median": 0.1, "overlap_with_zero": 4},
                        {"scale": 32.0, "norm_over_median": 1.5, "overlap_with_zero": 0}]}
    assert chapter._claim_bias(table, 5)["verdict"] == "reproduced"
    assert chapter._claim_scaling(table, 5)["verdict"] == "not reproduced"
    row = lambda name, s, lo, hi: {"vector": name, "p_shift": s, "p_lo": lo, "p_hi": hi}  # noqa: E731
    weaker = [row("v", 0.3, 0.25, 0.35), row("SAE reconstruction", 0.05, 0.0, 0.1), row("OMP top-8", 0.28, 0.2, 0.3),
              row("random direction", 0.0, -0.01, 0.01)]
    assert chapter._claim_steering(weaker)["verdict"] == "reproduced" and "OMP top-8" in chapter._claim_steering(weaker)["evidence"]
    weaker[1] = row("SAE reconstruction", 0.4, 0.35, 0.45)
    assert chapter._claim_steering(weaker)["verdict"] == "not reproduced"


def test_bad_parameters_stop_with_one_sentence():
    good = {"headline_multiplier": 4.0, "multipliers": [0.0, 4.0], "pairs": "organism"}
    chapter.check_params(good)
    with pytest.raises(ParameterError, match="headline_multiplier"):
        chapter.check_params(good | {"headline_multiplier": 3.0})
    with pytest.raises(ParameterError, match="0.0"):
        chapter.check_params(good | {"multipliers": [4.0], "headline_multiplier": 4.0})
    with pytest.raises(ParameterError, match="pairs"):
        chapter.check_params(good | {"pairs": "no/such/file.jsonl"})


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
                 "layers": [0, 1], "n_pairs": 8, "n_eval": 8, "n_layer_eval": 4, "n_norm_tokens": 100, "recon_k": 4,
                 "batch_size": 16, "setting": f"pytest-{family}"}
    papermill.execute_notebook(str(ROOT / "notebooks" / "steering_vector_decomposition.ipynb"), str(tmp_path / "out.ipynb"),
                               parameters={**values, **overrides}, cwd=str(ROOT / "book"), kernel_name="python3",
                               progress_bar=False)
    return json.loads(run_results(tmp_path / "results", "steering_vector_decomposition").read_text())


@pytest.mark.notebook
def test_gemma_parameter_file_names_a_real_release_and_runs_on_tiny_gemma2(tmp_path):
    saved = _tiny_run(PARAM_DIR / "gemma2-2b.yaml", "gemma2", tmp_path)
    assert saved["results"]["layer"] in (0, 1) and len(saved["results"]["claims"]) == 6
    assert {r["vector"] for r in saved["results"]["steering"]} >= {"v", "SAE reconstruction", "random direction"}


@pytest.mark.notebook
def test_gemma3_scope2_parameter_file_names_a_real_release_and_runs_on_tiny_gemma3(tmp_path):
    saved = _tiny_run(PARAM_DIR / "gemma3-270m-scope2.yaml", "gemma3", tmp_path)
    assert saved["results"]["layer"] in (0, 1) and len(saved["results"]["claims"]) == 6
    assert {r["vector"] for r in saved["results"]["steering"]} >= {"v", "SAE reconstruction", "random direction"}
