"""The real-model page's tables and figures, on the records of a real (tiny) Gemma 3 SAE build, and on the
committed records the book shows."""

import json

import matplotlib.pyplot as plt
import pytest

from saesteer.chapters import real_model
from saesteer.gemma3 import build as gb


@pytest.fixture
def tiny_records(tiny_build):
    gb.run(tiny_build)
    return {"saes": tiny_build.manifest(), "quality": json.loads(tiny_build.quality_path.read_text())}


def test_the_quality_table_flags_targets_for_resid_post_only(tiny_records):
    table = real_model.quality_table(tiny_records["quality"])
    assert len(table) == 7 and set(table["architecture"]) == {"jumprelu", "topk"}
    resid = table[table["position"] == "resid_post"]
    assert resid["l0 ok"].notna().all() and table[table["position"] != "resid_post"]["l0 ok"].isna().all()
    for _, row in resid.iterrows():
        assert row["dead ok"] == (row["dead"] <= 0.10) and row["l0 ok"] == (30 <= row["l0"] <= 120)
    raw = {row["sae"]: row for row in tiny_records["quality"]["saes"]}
    assert all(table.loc[name, "zero-ablation delta"] == pytest.approx(raw[name]["ce_zero"] - raw[name]["ce_clean"])
               for name in table.index)


def test_the_summary_counts_every_sae_once(tiny_records):
    table = real_model.quality_table(tiny_records["quality"])
    summary = real_model.summary(table)
    assert summary["SAEs"].sum() == len(table)
    assert summary.loc[("jumprelu", "resid_post"), "l0 target met"].endswith("of 2")


def test_a_figure_per_position_and_the_stage_times(tiny_records):
    table = real_model.quality_table(tiny_records["quality"])
    for position in ("resid_post", "attn_out", "mlp_out"):
        fig = real_model.position_figure(table, position)
        assert len(fig.axes) == 2 and fig.axes[1].get_yscale() == "log"
        plt.close(fig)
    times = real_model.stage_times(tiny_records["saes"])
    assert list(times.index) == list(gb.STAGES) and (times["minutes"] >= 0).all()


def test_the_committed_records_cover_the_whole_plan():
    records = real_model.records()
    plan = {spec.name for spec in gb.BuildConfig(**{k: tuple(v) if isinstance(v, list) else v
                                                   for k, v in records["saes"]["config"].items()}).specs()}
    assert {row["sae"] for row in records["quality"]["saes"]} == plan
    assert set(records["saes"]["stages"]) == set(gb.STAGES)
    assert records["saes"]["corpus"]["train"] == records["corpus"]["splits"]["train"]["sha256"]


def test_the_comparison_with_gemma_scope_2_covers_the_sites_it_shares(tiny_records):
    table = real_model.quality_table(tiny_records["quality"])
    compared = real_model.against_gemma_scope_2(table)
    assert set(compared.index) == {"resid_post", "mlp_out"} and (compared["layers"] == 2).all()
    assert compared.loc["resid_post", "GS2 big L0 (median)"] == pytest.approx((60 + 70) / 2)
