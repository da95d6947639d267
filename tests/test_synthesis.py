"""Synthesis chapter: multi-site sweeps, the joins on the refusal feature, the findings' wording, and the
notebook through papermill on a tiny Gemma2 whose chapter A-D results are computed here."""

import json
from pathlib import Path
from types import SimpleNamespace

import papermill
import pytest
import torch

from conftest import run_results
from saesteer.analyses import flow as ff
from saesteer.analyses import refusal as rs
from saesteer.chapters import synthesis as syn
from saesteer.core.hooks import Site
from saesteer.core.interventions import AddVector, Clamp
from saesteer.core.tiny import random_sae
from saesteer.organism import evaluation
from saesteer.organism.evaluation import Item
from saesteer.study import subjects
from saesteer.study.params import ParameterError
from saesteer.study.subjects import export_prompts

ROOT = Path(__file__).resolve().parents[1]
SITES = [Site(layer, p) for layer in (0, 1) for p in ("attn_out", "mlp_out", "resid_post")]


@pytest.fixture(autouse=True)
def results_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("SAESTEER_RESULTS", str(tmp_path / "results"))


def test_notebook_parameters_match_the_module():
    assert set(papermill.inspect_notebook(str(ROOT / "notebooks" / "synthesis.ipynb"))) == set(syn.PARAMS)


def test_run_sweep_clamps_at_several_sites_and_adds_vectors_as_the_edits_alone(tiny_models):
    """A config's clamps at two sites (and a chapter C vector) give the answers of those edits applied directly;
    a one-feature config keeps chapter A's single clamp."""
    lm = tiny_models["gemma2"]
    saes = {s: random_sae(32, d_sae=64, k=8, seed=i) for i, s in enumerate(SITES)}
    subject = SimpleNamespace(lm=lm, sae=lambda s: saes[s])
    sets = {"harmful": [Item("harmful", p, {}) for p in ["w1 w2 w3", "w4", "w5 w6 w7 w8"]]}
    two = [(Site(0, "mlp_out"), 3, 9.0), (Site(1), 7, 12.0)]
    configs = [rs.SweepConfig("baseline"), rs.SweepConfig("one", feature=7, value=12.0),
               rs.SweepConfig("two", clamps=tuple(two)), rs.SweepConfig("add", coeffs={1: (5, 20.0)})]
    extra = lambda rows: ff.add_edits(subject.sae, [{"coeffs": c.coeffs or {}} for c in rows])  # noqa: E731
    swept = rs.run_sweep(subject, Site(1), configs, sets, {}, ["w"], 16, extra_edits=extra)
    direct = [[], [Clamp(site=Site(1), sae=saes[Site(1)], features=[7], value=12.0)],
              [Clamp(site=s, sae=saes[s], features=[f], value=v) for s, f, v in two],
              [AddVector(site=Site(1), vector=20.0 * ff.decoder(subject.sae, Site(1))[5])]]
    for config, edits in zip(swept, direct):
        alone = evaluation.evaluate(lm, sets, edits, max_new_tokens=evaluation.NEW_TOKENS["harmful"], refusal_markers=["w"])
        assert config["report"]["harmful"]["answers"] == alone["harmful"]["answers"], config["name"]
    assert swept[0]["report"]["harmful"]["answers"] != swept[2]["report"]["harmful"]["answers"]


def test_place_gives_percentiles_among_the_layer_and_the_kind():
    rows = [{"layer": 1, "feature": f, "S_in": f / 10 if f < 8 else float("nan"), "S_out": f / 10} for f in range(10)]
    rows += [{"layer": 0, "feature": 3, "S_in": 0.0, "S_out": 5.0}]
    me = syn.place(rows, 1, 9, cut=0.5)
    assert me["S_out rank"] == 1 and me["S_out percentile"] == 95.0 and me["kind"] == "output" and me["S_in"] != me["S_in"]
    low = syn.place(rows, 1, 2, cut=0.5)
    assert low["S_out rank"] == 8 and low["S_in percentile"] == pytest.approx(100 * 2.5 / 8) and low["kind"] == "neither"
    assert "is not, against" in syn.finding_scores(low, rows[:3], 0.5)
    assert "is one of them" in syn.finding_scores(me, rows, 0.5)


def test_rank_of_orders_by_absolute_weight_and_zero_is_absent():
    w = torch.tensor([0.5, -3.0, 2.0, 0.0])
    assert [syn.rank_of(w, f) for f in range(4)] == [3, 1, 2, None]
    result = {"v_norm": 1.0, "cosine": 0.5, "pairs": 4, "methods": [{"method": "encode(v)", "rank": 3, "weight": 1.0},
                                                                   {"method": "f(a+) - f(a-)", "rank": 1, "weight": 2.0}]}
    assert syn.finding_decomposition(result, 5).startswith("**f(a+) - f(a-) recovers the refusal feature as the top feature; "
                                                            "the naive encoding does not.**")
    result["methods"][1]["rank"] = None
    assert syn.finding_decomposition(result, 5).startswith("**No decomposition") and "f(a+) - f(a-) absent" in syn.finding_decomposition(result, 5)


def test_missing_results_file_names_the_command_and_a_wrong_model_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"python -m saesteer.study.pipeline --only refusal_steering"):
        syn.load_sources(tmp_path, "nowhere", "organism")
    for chapter in syn.CHAPTERS:
        (tmp_path / "s" / chapter).mkdir(parents=True)
        (tmp_path / "s" / chapter / "results.json").write_text(json.dumps({"params": {"model": "organism"}, "results": {}}))
    assert set(syn.load_sources(tmp_path, "s", "organism")) == set(syn.CHAPTERS)
    with pytest.raises(ParameterError, match="sources"):
        syn.load_sources(tmp_path, "s", "tiny:gemma2")


def _table(gains, s_outs):
    return [{"feature": 10 + i, "S_out": s, "refusal gain": g, "over-refusal": 0.0, "passes filter": s >= 0.5}
            for i, (g, s) in enumerate(zip(gains, s_outs))]


def test_picks_and_filter_finding_follow_the_numbers():
    table = _table([0.0, 0.3, 0.1], [0.2, 0.9, 0.6])
    chosen = syn.picks(table, 11)
    assert chosen == {"chapter A's search": 11, "first candidate": 10, "first candidate passing the filter": 11, "highest S_out": 11}
    summaries = {None: {"capability": 0.9, "jailbreak_refusal": 0.4}, 10: {"capability": 0.8}, 11: {"capability": 0.5}}
    text = syn.finding_filter(table, chosen, summaries, syn.correlation(table), 0.5)
    assert "picks the same feature" in text and "ranks #1 of 3" in text and "rho 1.00" in text
    assert "would find the same feature with 2 of 3 clamp tests" in text
    table = _table([0.3, 0.0, 0.0], [0.2, 0.9, 0.6])
    text = syn.finding_filter(table, syn.picks(table, 10), summaries | {12: {"capability": 0.1}}, syn.correlation(table), 0.5)
    assert "does not beat" in text and "does not rank" in text
    assert "fails the filter: a search over the filtered candidates would miss it" in text


def _sweep_row(name, multiple, jb, over, cap, clusters=8, per=5):
    """A sweep setting whose items hit with the given rates, ``per`` items in each of ``clusters`` clusters."""
    def kind(rate):
        hits = [i < round(rate * clusters * per) for i in range(clusters * per)]
        return {"rate": rate, "n": len(hits), "hits": hits, "cluster": [f"c{i % clusters}" for i in range(len(hits))]}
    report = {"jailbreak": kind(jb), **{k: kind(over) for k in rs.SAFE}, **{k: kind(cap) for k in rs.CAPABILITY}}
    return {"name": name, "multiple": multiple, "value": multiple, "report": report}


def test_graph_finding_reads_paired_intervals_at_the_balance_clamp():
    sweep = [_sweep_row("baseline", None, 0.4, 0.0, 0.9), _sweep_row("refusal feature, clamped (A)", 1.0, 0.6, 0.0, 0.85),
             _sweep_row("whole graph, clamped", 1.0, 0.9, 0.0, 0.85)]
    assert syn.comparison_strength({"results": {"operating_points": {"balance": 1.0}}}) == 1.0
    diffs = syn.graph_differences(sweep, 1.0)
    assert diffs["jailbreak refusal"][0] == pytest.approx(0.3) and diffs["capability"] == (0.0, 0.0, 0.0)
    assert "improves chapter A's trade-off at A's balance clamp (1x)" in syn.finding_graph(diffs, 1.0, 4)
    sweep[2] = _sweep_row("whole graph, clamped", 1.0, 0.9, 1.0, 0.2)
    assert "trades one behaviour for another" in syn.finding_graph(syn.graph_differences(sweep, 1.0), 1.0, 4)
    sweep[2] = _sweep_row("whole graph, clamped", 1.0, 0.6, 0.0, 0.85)
    assert "does not measurably change" in syn.finding_graph(syn.graph_differences(sweep, 1.0), 1.0, 4)


def _write_sources(root: Path, setting: str, params: dict) -> None:
    """Chapter A-D results of a tiny Gemma2, computed with the chapters' own functions: A's candidates and
    typical maxima, C's flow graph from real decoder matches, and made-up D scores and B parameters."""
    subject = subjects.load_subject(params)
    a_params = params | {"refusal_markers": [""], "n_archetypal": 2, "max_candidates": 4, "n_selection": 4, "search_multiple": 4.0}
    selection = subject.selection_sets(rs.SELECTION_KINDS, 4)
    transcripts = rs.refusal_transcripts(subject, selection["harmful"][:2], [""])
    feature = rs.candidates(subject, Site(1), transcripts, 4)[0]["feature"]
    best = {"feature": feature, "gain": 0.25, "unsafe_refusal": 1.0, "safe_refusal": 0.0}
    a = {"layer": 1, "feature": feature, "typical_max": 1.0, "search": {"1": {"best": [best]}, "0": {"best": [], "top": None}},
         "operating_points": {"balance": 1.0, "max refusal": 4.0}}
    matches = {layer: ff.match_layer(subject.sae, layer, 3) for layer in (0, 1)}
    graph = ff.flow_graph(matches, 1, feature, res_cut=0.0, module_cut=0.0,
                          seed={"layer": 1, "feature": feature, "name": "refusal", "topic": None})
    c_params = params | {"alpha": -0.05, "mlp_sae_release": None, "mlp_sae_path": None, "attn_sae_path": None}
    scores = [{"layer": layer, "feature": f, "S_in": (f % 7) / 7, "S_out": (f % 11) / 10, "examples": 50}
              for layer in (0, 1) for f in range(64)]
    files = {"refusal_steering": (a_params, a), "feature_flow": (c_params, {"graphs": [graph.to_json()]}),
             "input_output_scores": (params | {"hybrid_cut": 0.5}, {"scores": scores}),
             "steering_vector_decomposition": (params | {"recon_k": 4}, {})}
    for chapter, (p, r) in files.items():
        (root / setting / chapter).mkdir(parents=True)
        (root / setting / chapter / "results.json").write_text(json.dumps({"params": p, "results": r}))


@pytest.mark.notebook
def test_notebook_runs_on_tiny_gemma2_from_chapter_results(tmp_path):
    for i, site in enumerate(SITES):
        random_sae(32, d_sae=64, k=8, seed=i).save_model(str(tmp_path / "saes" / site.slug))
    prompts = export_prompts(tmp_path / "prompts", rs.KINDS, 6, rs.SELECTION_KINDS)
    subject = {"model": "tiny:gemma2", "device": "cpu", "dtype": "float32", "sae_release": None, "sae_id": None,
               "sae_path": str(tmp_path / "saes" / "{position}_{layer}"), "sae_train_text": None, "prompts": str(prompts),
               "chat_template": False}
    _write_sources(tmp_path / "results", "pytest-tiny", subject)
    overrides = {**subject, "setting": "pytest-tiny", "sources": "pytest-tiny", "strengths": [1.0, 4.0], "eval_items": 3,
                 "candidate_items": 3, "n_pairs": 4, "refusal_answer": "w1", "compliance_answer": "w2", "batch_size": 64}
    papermill.execute_notebook(str(ROOT / "notebooks" / "synthesis.ipynb"), str(tmp_path / "out.ipynb"), parameters=overrides,
                               cwd=str(ROOT / "book"), kernel_name="python3", progress_bar=False)
    saved = json.loads(run_results(tmp_path / "results", "synthesis").read_text())["results"]
    assert {r["setting"] for r in saved["graph"]["tradeoff"]} == {"refusal feature, clamped (A)", "whole graph, clamped",
                                                                  "residual chain, added (C)"}
    assert [m["method"] for m in saved["decomposition"]["methods"]][:2] == ["encode(v)", "encode(v) - encode(0)"]
    assert len(saved["candidates"]["table"]) == 4 and saved["candidates"]["picks"]["chapter A's search"] == saved["feature"]
    figures = {p.stem for p in (run_results(tmp_path / "results", "synthesis").parent / "figures").iterdir()}
    assert figures == {"scores", "graph_tradeoff", "decomposition_ranks", "candidates"}
