"""The same chapter on several subjects: claims lined up by number, verdicts side by side."""

from saesteer.study import comparison


def _claims(*verdicts: str) -> list[dict]:
    return [{"claim": i + 1, "statement": f"claim {i + 1}", "verdict": v, "evidence": f"e{i + 1}"} for i, v in enumerate(verdicts)]


def test_side_by_side_lines_up_claims_and_names_where_subjects_agree():
    other = {"gemma3-270m": {"results": {"claims": _claims("reproduced", "reproduced")}}}
    side, lines = comparison.side_by_side("organism", _claims("reproduced", "not reproduced", "inconclusive"), other)
    assert [row["claim"] for row in side] == [1, 2, 3]
    assert side[1] == {"claim": 2, "statement": "claim 2", "verdict (organism)": "not reproduced",
                       "verdict (gemma3-270m)": "reproduced"}
    assert side[2]["verdict (gemma3-270m)"] == "not run"  # a claim the other run does not have
    assert lines == ["organism and gemma3-270m agree on claims 1 and differ on 2 and 3."]


def test_run_labels_name_the_subject_and_what_the_setting_adds():
    assert comparison.run_label("gemma3-270m-sentiment", "gemma3-270m") == "Gemma 3 270M, sentiment"
    assert comparison.run_label("organism", "organism") == "organism"


def test_the_verdicts_in_brief_count_each_runs_verdicts_and_list_every_claim():
    other = {"gemma3-270m": {"params": {"model": "gemma3-270m"}, "results": {"claims": _claims("reproduced", "reproduced")}}}
    text = comparison.verdict_summary("D", "organism", "organism", _claims("reproduced", "not reproduced", "inconclusive"), other)
    assert "(organism: 1 reproduced, 1 not reproduced, 1 inconclusive; Gemma 3 270M: 2 reproduced;" in text
    assert "| claim | the paper's claim | organism | Gemma 3 270M |" in text
    assert "| D3 | claim 3 | **inconclusive** | **not run** |" in text


def test_the_claims_view_puts_the_verdict_first_and_leaves_nested_records_out():
    rows = [dict(row, preregistered={"layer": {"value": 3}}, paper="p", n=40, unit="prompt", caveat=None)
            for row in _claims("reproduced")]
    rows[0]["this study"] = "s"
    view = comparison.claims_view(rows + [dict(rows[0], claim=2, caveat="no bias", n="", unit="")])
    assert list(view.columns) == ["verdict", "statement", "figures", "evidence"] and view.index.name == "claim"
    assert view.loc[1, "figures"] == "paper: p; this study: s"
    assert view.loc[1, "evidence"] == "e1 (40, prompt)" and view.loc[2, "evidence"] == "e1 Caveat: no bias"
