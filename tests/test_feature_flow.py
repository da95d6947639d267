"""Chapter C: chunked matching, categories and groups (with row-resampled intervals), per-row deactivation, flow
graphs, schedules at matched total norm, paired steering differences, the single-layer check, the claims' verdict
rules, and the notebook through papermill on tiny Gemma-2 and Gemma 3 models with the real-model parameter files."""

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
from saesteer.core.models import torch_model
from saesteer.core.saes import check_release, unit_rows
from saesteer.core.tiny import random_sae
from saesteer.organism.artifacts import load_organism
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


def _same_as_reference(target, source, k, chunk=64):
    """The certified matcher equals the float64 reference bit for bit; returns the share of screen-proven rows."""
    values, indices, proven = ff.matching.certified_top_matches(target, source, k, chunk)
    ref_values, ref_indices = ff.matching.exact_top_matches(target, source, k, chunk)
    assert values.dtype == torch.float32 and indices.dtype == torch.int64
    assert torch.equal(values, ref_values) and torch.equal(indices, ref_indices)
    assert torch.equal(ff.top_matches(target, source, k, chunk)[1], indices)
    return proven.float().mean().item()


@pytest.mark.parametrize("n, m, d, k", [(300, 500, 64, 5), (50, 70, 16, 4), (1, 200, 2304, 5), (3, 4, 8, 10),
                                        (7, 20, 8, 20)])
def test_certified_top_matches_equal_the_exact_reference_on_unit_rows(n, m, d, k):
    torch.manual_seed(n + m)
    target, source = unit_rows(torch.randn(n, d)), unit_rows(torch.randn(m, d))
    proven = _same_as_reference(target, source, k)
    assert proven == (1.0 if m > k + ff.matching.MARGIN else 0.0)  # tiny sources go to the reference directly


def test_certified_top_matches_agree_with_float32_products_up_to_their_rounding():
    torch.manual_seed(1)
    target, source = unit_rows(torch.randn(400, 128)), unit_rows(torch.randn(900, 128))
    values, indices = ff.top_matches(target, source, 5, 100)
    ref_values, ref_indices = (target @ source.T).topk(5, dim=1)
    assert (values - ref_values).abs().max() < 1e-6
    distinct = (ref_values[:, :-1] - ref_values[:, 1:]).min(dim=1).values > 1e-6
    assert distinct.float().mean() > 0.9 and torch.equal(indices[distinct], ref_indices[distinct])


def test_ties_take_the_lower_index_and_duplicated_zero_and_scaled_rows_stay_exact():
    torch.manual_seed(2)
    source = unit_rows(torch.randn(120, 32))
    source[60:90] = source[:30]  # exact duplicates tie: the lower index comes first
    source[100] = 0
    target = torch.cat([source[:10], torch.zeros(2, 32), unit_rows(torch.randn(30, 32))])
    target *= torch.logspace(-3, 3, len(target))[:, None]  # non-unit rows: the bound scales with the norms
    source *= torch.logspace(2, -2, len(source))[:, None]
    _same_as_reference(target, source, 6, 16)
    values, indices = ff.top_matches(torch.ones(1, 4), torch.ones(50, 4), 3)
    assert torch.equal(indices, torch.tensor([[0, 1, 2]])) and torch.equal(values, torch.full((1, 3), 4.0))
    unit = unit_rows(torch.randn(80, 24))
    values, indices = ff.top_matches(unit[:40], torch.cat([unit, unit]), 2)
    assert torch.equal(indices, torch.stack([torch.arange(40), torch.arange(40) + 80], 1))
    codes = torch.randn(300, 200)
    codes[:, :20] = 0  # dead features: zero rows of the standardized, transposed (non-contiguous) codes
    standard = ((codes - codes.mean(0)) / (codes - codes.mean(0)).norm(dim=0).clamp_min(1e-12)).T
    assert 0.5 < _same_as_reference(standard, standard, 5) < 1.0


def test_rows_the_first_screen_cannot_prove_get_a_wider_screen():
    torch.manual_seed(6)
    target, source = unit_rows(torch.randn(200, 64)), unit_rows(torch.randn(400, 64))
    first = ff.matching.Screen(source).top(target, 5, 6, 64)[2]  # one candidate beyond k: not every row proven
    values, indices, proven = ff.matching.certified_top_matches(target, source, 5, 64, margin=1)
    assert first.float().mean() < 0.95 and proven.all()
    assert torch.equal(indices, ff.matching.exact_top_matches(target, source, 5)[1])


def test_near_ties_beyond_the_bfloat16_bound_fall_back_to_the_exact_reference():
    torch.manual_seed(3)
    base = unit_rows(torch.randn(1, 256))
    crowd = unit_rows(base + 1e-3 * torch.randn(200, 256))  # cosines to base within 1e-4 of each other: inside the bound
    source = torch.cat([crowd, unit_rows(torch.randn(300, 256))])
    target = torch.cat([base, unit_rows(torch.randn(20, 256))])
    values, indices, proven = ff.matching.certified_top_matches(target, source, 5)
    assert not proven[0] and proven.any()
    assert _same_as_reference(target, source, 5) == proven.float().mean().item()


def test_bfloat16_products_stay_within_the_screen_bound():
    """The bound assumes float32 accumulation of the bf16 products: checked at Gemma 2 2B's width."""
    torch.manual_seed(4)
    a, b = unit_rows(torch.randn(128, 2304)), unit_rows(torch.randn(2048, 2304)) * 3
    screen = ff.matching.Screen(b)
    screened = (a.bfloat16() @ screen.low.T).double()
    error = (screened - a.double() @ b.double().T).abs()
    allowed = ff.matching.BF16_UNIT * screened.abs() / (1 - ff.matching.BF16_UNIT) + screen.bound(a, a.bfloat16())[:, None]
    assert (error <= allowed).all() and error.max() > 0.01 * allowed.max()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_certified_top_matches_on_cuda_equal_the_cpu_result():
    torch.manual_seed(5)
    target, source = unit_rows(torch.randn(200, 64)), unit_rows(torch.randn(300, 64))
    cpu = ff.top_matches(target, source, 5)
    cuda = ff.top_matches(target.cuda(), source.cuda(), 5)
    assert torch.equal(cuda[0].cpu(), cpu[0]) and torch.equal(cuda[1].cpu(), cpu[1])


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


def test_matched_schedules_add_the_same_total_norm():
    layers = [0, 1, 2, 3]
    for kind in ("single", *ff.SCHEDULES):
        assert sum(ff.matched_schedule(kind, layers, 12.0, -0.05).values()) == pytest.approx(12.0)
    assert ff.matched_schedule("single", layers, 12.0, -0.05) == {3: 12.0}
    assert ff.matched_schedule("constant", layers, 12.0, -0.05) == {layer: 3.0 for layer in layers}
    graph = ff.FlowGraph({"topic": "sea", "layer": 2}, {}, [], {0: 5, 1: 6, 2: 7, 3: 8})
    configs = ff.steer_configs([graph], [6.0], ["linear"], -0.05, matched=True)
    assert configs[1]["coeffs"] == {2: (7, 6.0)} and configs[2]["coeffs"] == {0: (5, 1.0), 1: (6, 2.0), 2: (7, 3.0)}


def _deactivation_rows(cosine, pearson, random_pick):
    return [{"layer": 1, "feature": i, "top-1 cosine": c, "Pearson": p, "random top-5": r, "exhaustive": max(c, p, r) + 0.1}
            for i, (c, p, r) in enumerate(zip(cosine, pearson, random_pick))]


def test_deactivation_claim_needs_cosine_above_random_and_within_the_margin_of_pearson():
    good = _deactivation_rows([0.8, 0.7, 0.9, 0.6] * 5, [0.8, 0.7, 0.9, 0.6] * 5, [0.1, 0.2, 0.1, 0.3] * 5)
    table = ff.deactivation_table(good, 0.5)
    assert {r["method"]: r["success"] for r in table}["random top-5"] == 0.0
    assert chapter.claim_deactivation(table, ff.method_gaps(good) + [ff.share_gap(good, 0.8)], 0.05, 0.8)["verdict"] == "reproduced"
    assert chapter.claim_deactivation(table, ff.method_gaps(good) + [ff.share_gap(good, 0.95)], 0.05, 0.95)["verdict"] \
        == "not reproduced"  # cosine 0.75 on average against 0.95 x exhaustive 0.85
    near_random = _deactivation_rows([0.2, 0.1, 0.3, 0.2] * 5, [0.2, 0.1, 0.3, 0.2] * 5, [0.3, 0.2, 0.4, 0.3] * 5)
    row = chapter.claim_deactivation(ff.deactivation_table(near_random, 0.5),
                                     ff.method_gaps(near_random) + [ff.share_gap(near_random, 0.8)], 0.05, 0.8)
    assert row["verdict"] == "not reproduced" and row["n"] == 20 and row["unit"] == "target feature"
    assert "{" not in row["evidence"] and {"pearson_margin", "exhaustive_share"} <= set(row["preregistered"])


def test_paired_differences_match_items_and_resample_their_clusters():
    rows = [{"schedule": k, "s": 4.0, "topic": "sea", "prompt": f"p{i}", "cluster": f"c{i // 2}", "topic share": v,
             "coherence": 1.0} for k, base in (("constant", 0.5), ("single", 0.2)) for i, v in enumerate([base] * 6)]
    gap = ff.paired(rows, lambda r: r["schedule"] == "constant", lambda r: r["schedule"] == "single", ff.product,
                    lambda r: (r["topic"], r["prompt"]))
    assert gap["diff"] == pytest.approx(0.3) and gap["lo"] == pytest.approx(0.3) and gap["n"] == 6 and gap["clusters"] == 3
    gaps = ff.cumulative_gaps(rows, ["constant"], [4.0])
    pooled = next(g for g in gaps if g["s"] == "pooled")
    assert pooled["diff"] == pytest.approx(0.3)
    assert chapter.claim_cumulative(gaps, "constant", [4.0])["verdict"] == "reproduced"
    flat = [dict(r, schedule="constant" if r["schedule"] == "constant" else "single", **{"topic share": 0.2}) for r in rows]
    assert chapter.claim_cumulative(ff.cumulative_gaps(flat, ["constant"], [4.0]), "constant", [4.0])["verdict"] == "not reproduced"
    one_layer = ff.FlowGraph({"topic": "sea", "layer": 3}, {}, [], {3: 7, 4: 2})  # one chain layer up to the seed
    row = chapter.claim_cumulative(ff.cumulative_gaps(flat, ["constant"], [4.0]), "constant", [4.0], [one_layer])
    assert row["verdict"] == "not testable" and row["caveat"].startswith("0 of 1 topic graphs have more than one chain layer")


def test_row_bootstrap_statistics_of_groups_and_the_depth_band():
    # 4 rows x 2 layers; counts [categories, groups]: "From nowhere" (group 0) dominant, From MLP (group 2) peaks at layer 1
    one = np.zeros((len(ff.CATEGORIES), len(ff.GROUPS)))
    one[0, 0], one[0, 1], one[2, 0] = 5, 3, 4  # translated: nowhere 5, RES 3; newborn: nowhere 4
    late = one.copy()
    late[0, 2] = 2
    tables = {0: np.stack([one] * 4), 1: np.stack([late] * 4)}
    value, lo, hi = ff.row_bootstrap(tables, ff.nowhere_margin)
    assert value > 0 and lo == pytest.approx(value) and hi == pytest.approx(value)  # identical rows: no spread
    assert ff.agreement_gap({0: one}) == pytest.approx(3 / 8)
    assert ff.peak_gap({0: one, 1: late}, "From MLP", [1]) > 0 > ff.peak_gap({0: one, 1: late}, "From MLP", [0])
    assert 18 in ff.depth_band(26, 0.72, 0.15) and ff.depth_band(6, 0.72, 0.15) == [3, 4]


def test_group_counts_per_row_add_up_to_the_totals():
    match = _match([0.9, 0.9], [0.9, 0.9], [0.9, 0.9])
    codes = {Site(1): torch.tensor([[1.0, 1.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]), Site(0): torch.ones(4, 2),
             Site(1, "mlp_out"): torch.zeros(4, 2), Site(1, "attn_out"): torch.zeros(4, 2)}
    out = ff.group_counts(codes, match, 1, np.zeros(2, int), context=2)
    per_row = np.array(out["rows"]).reshape(2, len(ff.CATEGORIES), len(ff.GROUPS))
    assert per_row.sum() == 6 and per_row[0].sum() == 3 and out["groups"]["From RES"] == 6


def test_scale_edits_take_one_factor_per_row(tiny_models):
    model, site = tiny_models["gemma2"], Site(0)
    sae = random_sae(32, d_sae=64, k=8, seed=3)
    ids = torch.randint(3, 60, (2, 6))
    _, clean = forward_with_edits(model, ids, read=[site])
    z = sae.encode(clean[site])
    feature = int(z.sum((0, 1)).argmax())
    _, edited = forward_with_edits(model, ids, ff.scale_edits(lambda s: sae, [[(site, feature)]] * 2, [0.0, -1.0]), read=[site])
    for row, r in ((0, 0.0), (1, -1.0)):
        expected = clean[site][row] + (r - 1) * z[row, :, feature, None] * sae.W_dec[feature]
        assert torch.allclose(edited[site][row], expected, atol=1e-5)


def test_residual_norms_are_the_median_token_norms(tiny_models):
    lm = tiny_models["gemma2"]
    norms = ff.residual_norms(lm, ["w1 w2 w3", "w4 w5"], [0, 1], batch_size=1)
    _, acts = forward_with_edits(lm, lm.tokenizer("w1 w2 w3", return_tensors="pt")["input_ids"], read=[Site(1)])
    _, acts2 = forward_with_edits(lm, lm.tokenizer("w4 w5", return_tensors="pt")["input_ids"], read=[Site(1)])
    both = torch.cat([acts[Site(1)][0].norm(dim=-1), acts2[Site(1)][0].norm(dim=-1)])
    assert norms[1] == pytest.approx(float(both.median()), rel=1e-5)


def test_a_decoder_direction_along_a_topic_word_scores_as_that_topic_writer():
    lm = load_organism("cpu")
    unembedding = torch_model(lm).get_output_embeddings().weight.detach()
    sae = random_sae(unembedding.shape[1], d_sae=8, k=2, seed=0)
    with torch.no_grad():
        sae.W_dec[0] = unembedding[lm.tokenizer.get_vocab()["wave"]]
    graph = ff.FlowGraph({"topic": "sea", "layer": 0}, {}, [], {0: 0})
    words = ff.topic_vocabulary({})
    sea, space = (ff.writer_scores(lm, lambda s: sae, graph, words[t])[0] for t in ("sea", "space"))
    assert sea > 1.0 and sea > space


def test_bad_seeds_and_missing_topic_seed_are_clear_errors():
    with pytest.raises(ParameterError, match="seed_features"):
        ff.parse_seed("12:x")
    params = {"seed_topics": [], "seed_features": ["3:4"], "small_coefficients": 1, "steer_coefficients": [1.0],
              "mlp_sae_release": None, "mlp_sae_id": None, "model": "organism", "corpus_text": None,
              "coherence_model": "organism-second", "topic_words": {}, "selection_text": None}
    with pytest.raises(ParameterError, match="layer:feature:topic"):
        chapter.check_params(params)
    real = params | {"model": "tiny:gemma3", "corpus_text": "c.jsonl", "coherence_model": "tiny:llama",
                     "topic_words": {"code": ["function"]}}
    with pytest.raises(ParameterError, match="topic_words"):
        chapter.check_params(real | {"seed_features": ["3:4:sea"]})  # not one of this subject's topics
    with pytest.raises(ParameterError, match="selection_text"):
        chapter.check_params(real | {"seed_topics": ["code"]})
    with pytest.raises(ParameterError, match="non-empty list"):
        chapter.check_params(real | {"topic_words": {"code": []}})


def _sourced_corpus(path: Path, sizes: dict[str, tuple[int, int]]) -> Path:
    """A JSONL corpus: per source, (documents, words a document), each source with its own words."""
    path.write_text("".join(json.dumps({"source": source, "text": " ".join(f"w{k + 3}" for _ in range(words))}) + "\n"
                            for k, (source, (docs, words)) in enumerate(sizes.items()) for _ in range(docs)))
    return path


def test_a_sourced_corpus_labels_every_token_and_shares_the_rows_among_sources(tiny_models, tmp_path):
    tokenizer = tiny_models["gemma3"].tokenizer
    path = _sourced_corpus(tmp_path / "c.jsonl", {"big": (200, 3), "long": (20, 30), "small": (30, 5)})
    corpus = ff.text_corpus(tokenizer, str(path), rows=6, context=16)
    assert len(corpus.labels) == corpus.ids.numel() == 96
    counts = {label: corpus.labels.count(label) for label in set(corpus.labels)}
    assert set(counts) == {"topic:big", "topic:long", "topic:small"}  # the largest source does not crowd out the others
    assert max(counts.values()) - min(counts.values()) <= 31  # equal up to one document
    ids = corpus.ids.flatten().tolist()
    word = {"topic:big": "w3", "topic:long": "w4", "topic:small": "w5"}
    assert all(tokenizer.convert_ids_to_tokens(i) in (word[label], tokenizer.bos_token) for i, label in zip(ids, corpus.labels))


def test_corpus_probes_pick_the_feature_that_fires_on_a_source():
    labels = ["topic:a"] * 50 + ["topic:b"] * 50
    codes = torch.rand(100, 6) * 0.1
    codes[:50, 4] += 1.0  # feature 4 fires on source a's tokens
    codes[50:, 2] += 1.0  # feature 2 on source b's
    probes = ff.corpus_probes(codes, labels, ["a", "b"], Site(3))
    assert probes["topic:a"]["resid_post@3"] == {"feature": 4, "auroc": 1.0}
    assert probes["topic:b"]["resid_post@3"]["feature"] == 2
    with pytest.raises(ParameterError, match="'c'"):
        ff.corpus_probes(codes, labels, ["c"], Site(3))


def test_topic_share_reads_words_without_case_or_punctuation_and_word_tokens_follow_the_tokenizer(tiny_models):
    assert ff.topic_share("The Function returns, a list.", frozenset({"function", "list"})) == pytest.approx(2 / 5)
    assert ff.topic_share("the wave is salty near the shore .", ff.topic_vocabulary({})["sea"]) == pytest.approx(3 / 8)
    organism = load_organism("cpu").tokenizer
    assert ff.word_token_ids(organism, ["wave", "notaword"]) == [organism.get_vocab()["wave"]]


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
                 "coherence_model": "tiny:llama" if family != "llama" else "tiny:gemma2", "setting": f"pytest-{family}"}
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
    assert {c["verdict"] for c in saved["claims"] if c["claim"] == 3} == {"not testable"}  # no ground truth on a real model
    assert {c["claim"] for c in saved["claims"]} == set(range(1, 9)) and all(c["unit"] and c["caveat"] for c in saved["claims"])


@pytest.mark.notebook
def test_gemma3_scope2_parameter_file_names_real_releases_and_runs_on_tiny_gemma3(tmp_path):
    """Gemma Scope 2 on Gemma 3 270M: residual and MLP releases at all 18 layers; attention SAEs are the reader's
    (attn_sae_path), as Gemma Scope 2's att SAEs read o_proj's 1024-d input, not the 640-d attention output."""
    values = yaml.safe_load((PARAM_DIR / "gemma3-270m-scope2.yaml").read_text())
    assert values["model"] == "google/gemma-3-270m" and values["attn_sae_path"]
    saved = _tiny_run(PARAM_DIR / "gemma3-270m-scope2.yaml", "gemma3", 18, tmp_path)
    assert [r["layer"] for r in saved["categories"]] == [0, 1] and len(saved["deactivation"]) == 4
    assert {r["schedule"] for r in saved["steering"]} == {"none", "single", "constant", "linear", "exponential"}


def test_coherence_can_be_scored_by_another_model(tiny_models):
    prompts, answers = ["w1 w2 w3", "w4"], ["w7 w8", "w9 w1"]
    own, other = (ff.coherence(tiny_models[f], prompts, answers, 2) for f in ("gemma2", "llama"))
    assert all(0 < c <= 1 for c in own + other) and own != pytest.approx(other)


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


@pytest.mark.notebook
def test_the_books_gemma3_parameter_file_runs_on_tiny_gemma3(tmp_path):
    """The book's Gemma 3 run of chapter C on a tiny Gemma 3: its committed topic prompts (40 a source), a JSONL
    corpus whose sources are the topics, seeds chosen on a separate selection corpus, and the file's word lists."""
    values = yaml.safe_load((PARAM_DIR / "gemma3-270m.yaml").read_text())
    prompts = [json.loads(line) for line in (ROOT / values["prompts"] / "topic.jsonl").read_text().splitlines()]
    assert sorted({p["truth"]["topic"] for p in prompts}) == sorted(values["seed_topics"]) == sorted(values["topic_words"])
    assert len(prompts) == 40 * len(values["seed_topics"]) and len({p["truth"]["cluster"] for p in prompts}) == len(prompts)
    saes = tmp_path / "saes"
    for i, site in enumerate(Site(layer, p) for layer in (0, 1) for p in ("attn_out", "mlp_out", "resid_post")):
        random_sae(32, d_sae=64, k=8, seed=i).save_model(str(saes / f"jumprelu_{site.position}_{site.layer}"))
    sizes = {topic: (40, 12) for topic in values["seed_topics"]}
    overrides = {"model": "tiny:gemma3", "sae_path": str(saes / "jumprelu_{position}_{layer}"),
                 "mlp_sae_path": str(saes / "jumprelu_mlp_out_{layer}"), "attn_sae_path": str(saes / "jumprelu_attn_out_{layer}"),
                 "layers": [1], "seed_layer": 1, "corpus_text": str(_sourced_corpus(tmp_path / "heldout.jsonl", sizes)),
                 "selection_text": str(_sourced_corpus(tmp_path / "train.jsonl", sizes)), "corpus_rows": 8, "context": 16,
                 "n_deactivate": 3, "min_active_tokens": 1, "steer_coefficients": [1.0, 8.0], "small_coefficients": 1,
                 "steer_prompts": 2, "check_prompts": 1, "new_tokens": 4, "coherence_model": "tiny:llama"}
    papermill.execute_notebook(str(ROOT / "notebooks" / "feature_flow.ipynb"), str(tmp_path / "out.ipynb"),
                               parameters={**values, **overrides}, cwd=str(ROOT / "book"), kernel_name="python3",
                               progress_bar=False)
    saved = json.loads(run_results(tmp_path / "results", "feature_flow").read_text())["results"]
    assert [g["seed"]["name"] for g in saved["graphs"]] == [f"topic {t}" for t in values["seed_topics"]]
    assert all("AUROC" in g["seed"]["source"] for g in saved["graphs"])
    assert {r["schedule"] for r in saved["steering"]} == {"none", "single", *values["schedules"]}
    assert {c["claim"] for c in saved["claims"]} == set(range(1, 9))


def test_depth_phases_need_matched_layers_in_the_first_and_last_thirds():
    assert chapter.claim_phases(6)["verdict"] == "not testable"
    middle = chapter.claim_phases(18, list(range(6, 12)))
    assert middle["verdict"] == "not testable" and middle["this study"] == "matched layers 6-11 of 18"
    assert chapter.claim_phases(18)["verdict"] == chapter.claim_phases(18, [0, 9, 17])["verdict"] == "inconclusive"
