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
    assert lines == ["organism and gemma3-270m agree on claims [1] and differ on [2, 3]"]


def test_run_labels_name_the_subject_and_what_the_setting_adds():
    assert comparison.run_label("gemma3-270m-sentiment", "gemma3-270m") == "Gemma 3 270M, sentiment"
    assert comparison.run_label("organism", "organism") == "organism"
