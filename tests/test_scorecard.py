"""The front page's scorecard: read from the chapters' results files, refusing missing or stale ones."""

from pathlib import Path

import pytest

from saesteer.chapters import intro as scorecard
from saesteer.core.stats import VERDICTS
from saesteer.study import book, paths, pipeline
from saesteer.study.results import claim, save_results

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def results_root(tmp_path, monkeypatch) -> Path:
    """An empty results root (``SAESTEER_RESULTS``) holding one consistent results file per paper chapter."""
    monkeypatch.setenv("SAESTEER_RESULTS", str(tmp_path))
    for chapter, files in paths.chapter_param_lists(ROOT).items():
        for shift, param_file in enumerate(files if chapter in book.PAPERS else []):  # another verdict per run
            params = scorecard.expected_params(ROOT / "notebooks" / f"{chapter}.ipynb", param_file)
            rows = [claim(n, f"claim {n}", "paper says", f"study finds ({shift})", verdict, "evidence", n=10, unit="prompt",
                          preregistered={"clamp": "parameter file"}, caveat="no bias" if verdict == "not testable" else "")
                    for n, verdict in zip(scorecard.SECTIONS[chapter], (VERDICTS * 3)[shift:])]
            side = [claim(2, "claim 2", "p", "s", "not testable", "e", n=1, unit="SAE", preregistered={},
                          caveat="a TopK SAE has no bias to dominate")]
            save_results(tmp_path / params["setting"] / chapter, params, {"claims": rows, "comparison_claims": side})
    return tmp_path


def test_rows_link_every_claim_to_its_section_and_count_verdicts(results_root):
    table = scorecard.rows(ROOT, pipeline.chapters(ROOT))
    assert [row["id"] for row in table][:3] == ["A1", "A2", "A3"]
    assert len(table) == sum(len(s) for s in scorecard.SECTIONS.values())
    assert table[0]["link"] == "refusal_steering.html#the-clamp-sweep"
    tally = scorecard.counts(table)
    assert tally["A"] == {"reproduced": 2, "not reproduced": 1, "inconclusive": 1, "not testable": 1}
    assert sum(tally["all"].values()) == len(table)
    html = scorecard.html_table(table)
    assert html.count("<tr>") == len(table) + 1 and 'href="feature_flow.html#flow-graphs"' in html
    assert "<th>verdict (organism)</th>" in html and "evidence (n = 10; intervals resample prompt) Caveat: no bias" in html
    assert "<th>verdict (Gemma 3 270M)</th>" not in html  # only the pages' runs were given
    assert scorecard.counts_sentence(tally).startswith(f"Of {len(table)} claims,")
    untestable = [row["id"] for row in table if row["verdict"] == "not testable"]
    assert scorecard.untestable_sentence(table).startswith(f"The organism cannot test {len(untestable)} of {len(table)} claims.")
    assert f"**{untestable[0]}**: no bias" in scorecard.untestable_sentence(table)
    assert "In the comparison its chapter also runs, A2 and B2 and C2 and D2 would not be testable: a TopK SAE" \
        in scorecard.untestable_sentence(table)


def test_a_missing_results_file_stops_the_scorecard(results_root):
    (results_root / "organism" / "feature_flow" / "results.json").unlink()
    with pytest.raises(scorecard.ResultsError, match=r"feature_flow: no results file .* --only feature_flow"):
        scorecard.rows(ROOT, pipeline.chapters(ROOT))


def test_results_from_other_parameters_stop_the_scorecard(results_root, tmp_path):
    listing = pipeline.chapters(ROOT)
    changed = tmp_path / "changed.yaml"
    changed.write_text(listing["input_output_scores"].read_text() + "hybrid_cut: 0.25\n")
    with pytest.raises(scorecard.ResultsError, match="is stale: its parameters differ from changed.yaml in hybrid_cut"):
        scorecard.rows(ROOT, listing | {"input_output_scores": changed})


def test_an_unknown_verdict_is_refused(results_root):
    path = results_root / "organism" / "refusal_steering" / "results.json"
    path.write_text(path.read_text().replace('"verdict": "inconclusive"', '"verdict": "sort of"'))
    with pytest.raises(scorecard.ResultsError, match="unknown verdict 'sort of'"):
        scorecard.rows(ROOT, pipeline.chapters(ROOT))


def test_the_books_own_results_make_a_full_scorecard(monkeypatch):
    """The committed results files are current with the book's parameter files and give every claim."""
    monkeypatch.delenv("SAESTEER_RESULTS", raising=False)
    table = scorecard.rows(ROOT, pipeline.chapters(ROOT))
    assert {row["id"][0] for row in table} == {"A", "B", "C", "D"}
    assert all(row["this study"] and row["paper"] for row in table)


def test_each_subject_gets_a_verdict_column_and_a_replication_never_changes_it(results_root):
    """Chapter B runs on the organism and twice on Gemma 3 (two behaviours): Gemma 3's verdict is its first
    run's, the second is named as a replication; every chapter runs on Gemma 3 (A through its chat fine-tune),
    and a chapter listed without a Gemma 3 run says so."""
    listing = paths.chapter_param_lists(ROOT)
    table = scorecard.rows(ROOT, listing)
    assert scorecard.subjects(table) == ["organism", "Gemma 3 270M"]
    b1 = next(row for row in table if row["id"] == "B1")
    gemma = b1["subjects"]["Gemma 3 270M"]
    assert b1["subjects"]["organism"]["verdict"] == VERDICTS[0] and gemma["verdict"] == VERDICTS[1]
    assert gemma["evidence"].startswith("gemma3-270m-sentiment: evidence") and \
        f"Replication (gemma3-270m-wedding): {VERDICTS[2]}, study finds (2)." in gemma["evidence"]
    html = scorecard.html_table(table)
    assert "<th>verdict (Gemma 3 270M)</th>" in html and all("Gemma 3 270M" in row["subjects"] for row in table)
    page_only = scorecard.rows(ROOT, listing | {"refusal_steering": listing["refusal_steering"][:1]})
    assert "not run on this subject yet" in scorecard.html_table(page_only)
    on_gemma = [c for c, files in paths.chapter_param_lists(ROOT).items() if c in book.PAPERS and len(files) > 1]
    assert sum(scorecard.counts(table, "Gemma 3 270M")["all"].values()) == sum(len(scorecard.SECTIONS[c]) for c in on_gemma)


def test_across_subjects_names_what_holds_on_both_fails_on_both_and_differs():
    def row(claim_id: str, *verdicts: str) -> dict:
        cells = dict(zip(["organism", "Gemma 3 270M"], ({"verdict": v} for v in verdicts)))
        return {"id": claim_id, "statement": claim_id.lower(), "subjects": cells}

    table = [row("B1", "reproduced", "reproduced"), row("B2", "not reproduced", "reproduced"),
             row("B3", "not reproduced", "not reproduced"), row("B5", "reproduced", "not testable"),
             row("D6", "inconclusive", "inconclusive"), row("A1", "reproduced")]  # A1: not run on the second subject
    across = scorecard.across_subjects(table)
    assert [r["claim"] for r in across] == ["B1", "B2", "B3", "B5", "D6"]
    assert [r["across subjects"] for r in across] == ["holds on both", "differs", "fails on both", "differs", "same verdict"]
    assert across[1] == {"claim": "B2", "statement": "b2", "organism": "not reproduced", "Gemma 3 270M": "reproduced",
                         "across subjects": "differs"}
    assert scorecard.across_sentence(across) == (
        "Of 5 claims run on both subjects, these hold on both: B1; these fail on both: B3; these differ: B2, B5; "
        "the rest share an inconclusive or not-testable verdict (D6).")


def test_the_front_page_states_findings_per_subject_and_its_limits(results_root):
    """The first screen's findings are counted from the results (per subject and paper, what holds and fails on
    both) and its limits read the subjects' sizes from their records."""
    table = scorecard.rows(ROOT, paths.chapter_param_lists(ROOT))
    findings = scorecard.findings_markdown(table)
    for subject in scorecard.subjects(table):
        tally = scorecard.counts(table, subject)["all"]
        assert f"**{subject[0].upper()}{subject[1:]}**: {tally['reproduced']} of {sum(tally.values())} claims reproduced" in findings
    across = scorecard.across_subjects(table)
    both = [r["claim"] for r in across if r["across subjects"] == "holds on both"]
    line = next(x for x in findings.splitlines() if x.startswith("- **Hold on both subjects**"))
    assert all(f"[{claim_id}](" in line for claim_id in both) and line.count("](") == len(both)
    limits = scorecard.limits_markdown(table, ROOT)
    assert "3.6 M parameters (6 layers, width 192)" in limits and "Phi-3 Mini" in limits
    untestable = sum(r["subjects"]["organism"]["verdict"] == "not testable" for r in table)
    assert f"The organism cannot test {untestable} of {len(table)} claims" in limits


def test_the_scorecard_puts_each_subjects_verdict_before_the_long_columns(results_root):
    """Key columns first: on a narrow screen the claim and its verdicts stay in view."""
    html = scorecard.html_table(scorecard.rows(ROOT, paths.chapter_param_lists(ROOT)))
    heads = [h.split("</th>")[0] for h in html.split("<th>")[1:]]
    assert heads[:3] == ["claim", "verdict (organism)", "verdict (Gemma 3 270M)"]
    assert "<caption>" in html
