"""Chapter C: chunked matching, categories and groups, per-row deactivation, flow graphs, schedules, claims rules,
and the notebook through papermill on tiny Gemma-2 and Gemma 3 models with the real-model parameter files."""

import json
from pathlib import Path

import numpy as np
import papermill
import pytest
import torch
import yaml

from conftest import run_results
from saesteer.analyses import flow as ff
from saesteer.chapters import feature_flow as chapter
from saesteer.core.hooks import Site
from saesteer.core.interventions import forward_with_edits
from saesteer.core.saes import check_release, unit_rows
from saesteer.core.tiny import random_sae
from saesteer.study.params import ParameterError
from saesteer.study.subjects import export_prompts

ROOT = Path(__file__).resolve().parents[1]
PARAM_DIR = ROOT / "notebooks" / "params" / "feature_flow"


@pytest.fixture(autouse=True)
def results_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("SAESTEER_RESULTS", str(tmp_path / "results"))


def test_chunked_top_matches_equal_the_full_similarity_matrix():
    torch.manual_seed(0)
    target, source = unit_rows(torch.randn(50, 16)), unit_rows(torch.randn(70, 16))
    full_v, full_i = (target @ source.T).topk(4, dim=1)
    for chunk in (1, 7, 50, 1000):
        v, i = ff.top_matches(target, source, 4, chunk)
        assert torch.allclose(v, full_v, atol=1e-6) and torch.equal(i, full_i)


def _match(s_r, s_a, s_m):
    """A one-candidate match table with the given top-1 similarities (s_r None = layer 0)."""
    row = lambda sims: {"sim": [[s] for s in sims], "idx": [[j] for j in range(len(sims))]}  # noqa: E731
    return {"resid_prev": None if s_r is None else row(s_r), "attn_out": row(s_a), "mlp_out": row(s_m)}


def test_categories_follow_the_thresholds_and_layer_zero_has_no_residual_match():
    match = _match([0.9, 0.9, 0.1, 0.1], [0.1, 0.6, 0.6, 0.1], [0.1, 0.1, 0.1, 0.2])
    assert [ff.CATEGORIES[c] for c in ff.categories(match, 0.5, 0.3)] == ["translated", "processed", "newborn", "unexplained"]
    layer0 = _match(None, [0.6, 0.1], [0.1, 0.1])
    assert [ff.CATEGORIES[c] for c in ff.categories(layer0, 0.5, 0.3)] == ["newborn", "unexplained"]


def test_group_counts_sort_active_pairs_by_coactive_predecessors():
    match = _match([0.9, 0.9], [0.9, 0.9], [0.9, 0.9])  # feature j's predecessors are feature j everywhere
    codes = {Site(1): torch.tensor([[1.0, 1.0], [1.0, 0.0]]), Site(0): torch.tensor([[1.0, 0.0], [0.0, 0.0]]),
             Site(1, "mlp_out"): torch.tensor([[1.0, 1.0], [0.0, 0.0]]), Site(1, "attn_out"): torch.tensor([[0.0, 0.0], [0.0, 0.0]])}
    counts = ff.group_counts(codes, match, 1, np.zeros(2, int))["groups"]
    assert counts["From RES&MLP"] == 1 and counts["From MLP"] == 1 and counts["From nowhere"] == 1 and sum(counts.values()) == 3


def test_scale_rows_removes_one_feature_per_row_and_leaves_other_rows_bit_identical(tiny_models):
    model, site = tiny_models["gemma2"], Site(0)
    sae = random_sae(32, d_sae=64, k=8, seed=3)
    ids = torch.randint(3, 60, (3, 6))
    _, clean = forward_with_edits(model, ids, read=[site])
    z = sae.encode(clean[site])
    feature = int(z[0].sum(0).argmax())
    edits = ff.scale_edits(lambda s: sae, [[(site, feature)], [], [(site, feature)]], 0.0)
    _, edited = forward_with_edits(model, ids, edits, read=[site])
    assert torch.equal(edited[site][1], clean[site][1])
    expected = clean[site][0] - z[0, :, feature, None] * sae.W_dec[feature]
    assert torch.allclose(edited[site][0], expected, atol=1e-5)


def _chain_matches():
    """Three layers of 3 features: 0 <- 0 <- 0 strongly; feature 1 at layer 2 matches 0 weakly."""
    def layer(prev_sims, prev_idx):
        return {"resid_prev": {"sim": [[s] for s in prev_sims], "idx": [[i] for i in prev_idx]},
                "attn_out": {"sim": [[0.2], [0.05], [0.05]], "idx": [[4], [0], [0]]},
                "mlp_out": {"sim": [[0.1], [0.05], [0.05]], "idx": [[5], [0], [0]]}}
    return {0: {"resid_prev": None, "attn_out": {"sim": [[0.1]] * 3, "idx": [[0]] * 3}, "mlp_out": {"sim": [[0.1]] * 3, "idx": [[0]] * 3}},
            1: layer([0.8, 0.1, 0.1], [0, 1, 2]), 2: layer([0.7, 0.4, 0.1], [0, 0, 2])}


def test_flow_graph_chains_both_ways_cuts_weak_links_and_attaches_modules():
    graph = ff.flow_graph(_chain_matches(), 1, 0, res_cut=0.5, module_cut=0.15)
    assert graph.chain == {0: 0, 1: 0, 2: 0}  # feature 1 at layer 2 (s=0.4) is cut
    assert "R2:1" not in graph.nodes and ("ATT1:4", "R1:0", 0.2) in graph.edges and "MLP1:5" not in graph.nodes
    assert ff.FlowGraph.from_json(json.loads(json.dumps(graph.to_json()))) == graph  # as the synthesis reads it back


def test_schedules_and_configs():
    assert ff.schedule("single", [1, 2, 3], 4.0, -0.05) == {3: 4.0}
    assert ff.schedule("linear", [1, 2], 4.0, -0.05) == {1: 2.0, 2: 4.0}
    assert ff.schedule("exponential", [0, 10], 1.0, -0.05)[10] == pytest.approx(np.exp(-0.5))
    graph = ff.FlowGraph({"topic": "sea", "layer": 2}, {}, [], {0: 5, 1: 6, 2: 7, 3: 8})
    configs = ff.steer_configs([graph], [1.0], ["constant"], -0.05)
    assert [c["schedule"] for c in configs] == ["none", "single", "constant"]
    assert configs[2]["coeffs"] == {0: (5, 1.0), 1: (6, 1.0), 2: (7, 1.0)}  # up to the seed layer only


def test_deactivation_table_and_cumulative_claim_follow_the_numbers():
    rows = [{"top-1 cosine": c, "Pearson": c, "random top-5": 0.1, "exhaustive": 0.9} for c in (0.8, 0.7, 0.9, 0.6)]
    table = {r["method"]: r for r in ff.deactivation_table(rows, 0.5)}
    assert table["top-1 cosine"]["success"] == 1.0 and table["random top-5"]["success"] == 0.0
    assert chapter.claim_deactivation(list(table.values()))["verdict"] == "reproduced"
    summary = [{"schedule": "none", "s": 0.0, "topic x coherence": 0.0, "lo": 0.0, "hi": 0.0, "topic share": 0.0, "coherence": 0.5},
               {"schedule": "single", "s": 1.0, "topic x coherence": 0.0, "lo": 0.0, "hi": 0.01, "topic share": 0.0, "coherence": 0.5},
               {"schedule": "constant", "s": 1.0, "topic x coherence": 0.1, "lo": 0.05, "hi": 0.15, "topic share": 0.3, "coherence": 0.4}]
    assert chapter.claim_cumulative(summary, [1.0])["verdict"] == "reproduced"


def test_bad_seeds_and_missing_topic_seed_are_clear_errors():
    with pytest.raises(ParameterError, match="seed_features"):
        ff.parse_seed("12:x")
    params = {"seed_topics": [], "seed_features": ["3:4"], "small_coefficients": 1, "steer_coefficients": [1.0],
              "mlp_sae_release": None, "mlp_sae_id": None, "model": "organism", "corpus_text": None}
    with pytest.raises(ParameterError, match="layer:feature:topic"):
        chapter.check_params(params)


def test_well_formed_reads_the_topic_grammar():
    assert ff.well_formed("the wave is salty near the shore . the oak is green near the fern .") == 1.0
    assert ff.well_formed("wave wave wave .") == 0.0


def _tiny_run(param_file: Path, family: str, n_layers: int, tmp_path: Path) -> dict:
    """A real-model parameter file's releases exist at each of the model's ``n_layers`` layers; then the chapter
    notebook runs with the file's values on a tiny ``family`` model, with random local SAEs at every position."""
    values = yaml.safe_load(param_file.read_text())
    for layer in range(n_layers):
        check_release(values["sae_release"], values["sae_id"].format(layer=layer))
        check_release(values["mlp_sae_release"], values["mlp_sae_id"].format(layer=layer))
    saes = tmp_path / "saes"
    for i, site in enumerate(Site(layer, p) for layer in (0, 1) for p in ("attn_out", "mlp_out", "resid_post")):
        random_sae(32, d_sae=48 if site.position == "attn_out" else 64, k=8, seed=i).save_model(str(saes / site.slug))
    text = tmp_path / "corpus.txt"
    text.write_text("\n".join(" ".join(f"w{(i * 7 + j) % 60}" for j in range(20)) for i in range(40)))
    prompts = export_prompts(tmp_path / "prompts", ["topic"], 40)  # every topic has held-out prompts
    overrides = {"model": f"tiny:{family}", "device": "cpu", "dtype": "float32", "prompts": str(prompts), "sae_release": None,
                 "sae_id": None, "sae_path": str(saes / "{position}_{layer}"), "mlp_sae_release": None, "mlp_sae_id": None,
                 "mlp_sae_path": str(saes / "mlp_out_{layer}"), "attn_sae_path": str(saes / "attn_out_{layer}"),
                 "corpus_text": str(text), "corpus_rows": 8, "context": 16, "n_deactivate": 3, "min_active_tokens": 1,
                 "seed_layer": 1, "seed_features": ["1:3:sea", "0:5"], "steer_coefficients": [1.0, 8.0], "small_coefficients": 1,
                 "steer_prompts": 2, "new_tokens": 4, "batch_size": 64, "deactivate_factors": [0.0, -2.0],
                 "setting": f"pytest-{family}"}
    out = tmp_path / "chapter.ipynb"
    papermill.execute_notebook(str(ROOT / "notebooks" / "feature_flow.ipynb"), str(out), parameters={**values, **overrides},
                               cwd=str(ROOT / "book"), kernel_name="python3", progress_bar=False)
    return json.loads(run_results(tmp_path / "results", "feature_flow").read_text())["results"]


@pytest.mark.notebook
def test_gemma_parameter_file_names_real_releases_and_runs_on_tiny_gemma2(tmp_path):
    saved = _tiny_run(PARAM_DIR / "gemma2-2b.yaml", "gemma2", 26, tmp_path)
    assert [r["layer"] for r in saved["categories"]] == [0, 1] and len(saved["deactivation"]) == 4
    assert [g["seed"]["name"] for g in saved["graphs"]] == ["seed 1:3:sea", "seed 0:5"]
    assert {r["schedule"] for r in saved["steering"]} == {"none", "single", "constant", "linear", "exponential"}
    assert {c["verdict"] for c in saved["claims"] if c["claim"] == 3} == {"not tested"}  # no ground truth on a real model


@pytest.mark.notebook
def test_gemma3_scope2_parameter_file_names_real_releases_and_runs_on_tiny_gemma3(tmp_path):
    """Gemma Scope 2 on Gemma 3 270M: residual and MLP releases at all 18 layers; attention SAEs are the reader's
    (attn_sae_path), as Gemma Scope 2's att SAEs read o_proj's 1024-d input, not the 640-d attention output."""
    values = yaml.safe_load((PARAM_DIR / "gemma3-270m-scope2.yaml").read_text())
    assert values["model"] == "google/gemma-3-270m" and values["attn_sae_path"]
    saved = _tiny_run(PARAM_DIR / "gemma3-270m-scope2.yaml", "gemma3", 18, tmp_path)
    assert [r["layer"] for r in saved["categories"]] == [0, 1] and len(saved["deactivation"]) == 4
    assert {r["schedule"] for r in saved["steering"]} == {"none", "single", "constant", "linear", "exponential"}


def test_coherence_is_one_over_the_shared_perplexity_independent_of_the_batch_and_zero_for_empty_answers(tiny_models):
    lm = tiny_models["gemma2"]
    prompts, answers = ["w1 w2 w3", "w4", "w5 w6"], ["w7 w8", "", "w9 w1 w2 w3"]
    together = ff.coherence(lm, prompts, answers, batch_size=3)
    alone = [c for p, a in zip(prompts, answers) for c in ff.coherence(lm, [p], [a], batch_size=1)]
    assert together == pytest.approx(alone, rel=1e-6)  # right padding: no real token sees another row's pads
    assert together[1] == 0.0 and ff.coherence(lm, ["w1"], [""], 4) == [0.0]
    ids = lm.tokenizer("w5 w6 w9 w1 w2 w3", return_tensors="pt")["input_ids"]
    logits, _ = forward_with_edits(lm, ids)
    n = len(lm.tokenizer("w9 w1 w2 w3", add_special_tokens=False)["input_ids"])
    logp = torch.log_softmax(logits[0, -n - 1 : -1].float().cpu(), -1).gather(1, ids[0, -n:, None])
    assert together[2] == pytest.approx(float(logp.mean().exp()), rel=1e-5)
