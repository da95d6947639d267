"""The front page's scorecard: every claim of the four papers, read from the chapters' results files.

Nothing in the table is typed by hand: each row comes from a chapter's
``results.json`` (the ``claims`` rows of ``results.claim``). A results file that
is missing, or whose parameters differ from those its notebook would run with
today (the notebook's defaults overridden by the parameter file the book is
built with), stops the scorecard with an error that names the command to rerun,
so the book can never show numbers from another configuration.
"""

from __future__ import annotations

import ast
import html
from pathlib import Path

import papermill
from docutils.nodes import make_id

from saesteer.core.files import read_json, repo_root
from saesteer.core.stats import VERDICTS
from saesteer.study.book import PAPERS
from saesteer.study.budget import n_parameters
from saesteer.study.comparison import subject_name
from saesteer.study.params import Param, ParameterError, read_param_file
from saesteer.study.paths import results_root

SECTIONS = {  # chapter -> claim number -> the heading of the section that shows its evidence
    "refusal_steering": {1: "The clamp sweep", 2: "The clamp sweep", 3: "The clamp sweep", 4: "The clamp sweep",
                         5: "The clamp sweep"},
    "steering_vector_decomposition": {1: "The norm of v against real activations",
                                      2: "Table 1: the top latents of encode(v) and of encode(0)",
                                      3: "Table 1: the top latents of encode(v) and of encode(0)",
                                      4: "Negative projections",
                                      5: "Alternative decompositions against the ground truth",
                                      6: "Steering with each decomposition"},
    "feature_flow": {1: "The data check", 2: "Causal validation by deactivation", 3: "Flow graphs",
                     4: "Single layer vs cumulative at the same total added norm",
                     5: "Multi-layer steering with a flow graph", 6: "Deactivating a flow graph", 7: "The data check",
                     8: "The data check"},
    "input_output_scores": {1: "Both scores for every feature", 2: "Both scores for every feature",
                            3: "Steering success", 4: "Steering success", 5: "Worked examples",
                            6: "Against the planted ground truth"},
}

PARAMS = {  # the front page's parameters
    "chapters_file": Param(str),  # chapter -> setting listing, relative to the repository (the book's: notebooks/chapters.yaml)
}


def check_params(params: dict) -> None:
    """The chapter listing must exist (a path relative to the repository)."""
    if not (repo_root() / params["chapters_file"]).is_file():
        raise ParameterError(f"Parameter 'chapters_file' must name a chapter listing in the repository, like "
                             f"notebooks/chapters.yaml; {params['chapters_file']!r} does not exist.")


class ResultsError(RuntimeError):
    """A chapter's results file is missing or was produced with other parameters than the book's."""


def expected_params(notebook: Path, param_file: Path) -> dict:
    """The parameters the notebook runs with: its parameters cell's defaults, overridden by the file."""
    cell = papermill.inspect_notebook(str(notebook))
    values = {name: ast.literal_eval(spec["default"]) for name, spec in cell.items()}
    return values | read_param_file(param_file)


def load_results(root: Path, chapter: str, param_file: Path) -> dict:
    """A chapter's results, after checking the file exists and matches the book's parameters; with the
    run's ``setting`` and its subject's name (``subject``)."""
    expected = expected_params(root / "notebooks" / f"{chapter}.ipynb", param_file)
    rerun = f"run `python -m saesteer.study.pipeline --only {chapter}`"
    path = results_root(root) / expected["setting"] / chapter / "results.json"
    if not path.is_file():
        raise ResultsError(f"{chapter}: no results file at {path}; {rerun}.")
    stored = read_json(path)
    differ = sorted(k for k in set(expected) | set(stored["params"]) if expected.get(k) != stored["params"].get(k))
    if differ:
        raise ResultsError(f"{chapter}: {path} is stale: its parameters differ from {param_file.name} "
                           f"in {', '.join(differ)}; {rerun}.")
    return stored["results"] | {"setting": expected["setting"], "subject": subject_name(expected.get("model", "organism"))}


def section_link(chapter: str, number: int) -> str:
    """The page and anchor of the section that shows a claim (Sphinx makes anchors with docutils' make_id)."""
    return f"{chapter}.html#{make_id(SECTIONS[chapter][number])}"


def rows(root: Path, listing: dict[str, Path | list[Path]]) -> list[dict]:
    """One row per claim of every paper chapter in ``listing`` (chapter -> its parameter files, the page's
    first): the page's run gives the row; ``subjects`` holds each subject's verdict (``subject_cells``)."""
    table = []
    for chapter, (letter, _) in PAPERS.items():
        if chapter not in listing:
            raise ResultsError(f"the book's chapter list has no {chapter}; the scorecard needs all four papers.")
        files = listing[chapter] if isinstance(listing[chapter], list) else [listing[chapter]]
        results, *others = [load_results(root, chapter, f) for f in files]
        for row in results["claims"] + [r for o in others for r in o["claims"]]:
            if row["verdict"] not in VERDICTS:
                raise ResultsError(f"{chapter} claim {row['claim']}: unknown verdict {row['verdict']!r}.")
        compared = {}  # claim -> its rows in a chapter's side comparison (e.g. chapter B on TopK SAEs)
        for row in results.get("comparison_claims", []):
            compared.setdefault(row["claim"], []).append(row)
        for row in results["claims"]:
            table.append({"id": f"{letter}{row['claim']}", "chapter": chapter, "link": section_link(chapter, row["claim"]),
                          "subject": results["subject"], "evidence": evidence_text(row), "caveat": row["caveat"],
                          "comparison": compared.get(row["claim"], []), "subjects": subject_cells(row["claim"], results, others),
                          **{k: row[k] for k in ("statement", "paper", "this study", "verdict")}})
    return table


def subject_cells(number: int, page: dict, others: list[dict]) -> dict[str, dict]:
    """Claim ``number`` on each subject: {subject: {verdict, study, evidence}}. A subject's first run gives
    the verdict; a further run of the same subject (another behaviour) is a replication, named in the
    evidence with its own verdict and never used to change the verdict."""
    runs: dict[str, list[dict]] = {}
    for results in [page, *others]:
        runs.setdefault(results["subject"], []).append(results)
    cells = {}
    for subject, (primary, *replications) in runs.items():
        row = next(r for r in primary["claims"] if r["claim"] == number)
        again = [(rep["setting"], next((r for r in rep["claims"] if r["claim"] == number), None)) for rep in replications]
        extra = " ".join(f"Replication ({setting}): {r['verdict']}, {r['this study']}." for setting, r in again if r)
        cells[subject] = {"verdict": row["verdict"], "study": row["this study"],
                          "evidence": f"{primary['setting']}: {evidence_text(row)}" + (f" {extra}" if extra else "")}
    return cells


def subjects(table: list[dict]) -> list[str]:
    """Every subject of the scorecard, the page's (the organism) first."""
    return list(dict.fromkeys(s for row in table for s in row["subjects"]))


def counts(table: list[dict], subject: str | None = None) -> dict[str, dict[str, int]]:
    """Verdict counts per paper letter, and over all papers ("all"), on ``subject`` (default: the page's);
    claims not run on it are not counted."""
    letters = [letter for letter, _ in PAPERS.values()] + ["all"]
    tally = {letter: dict.fromkeys(VERDICTS, 0) for letter in letters}
    for row in table:
        cell = row["subjects"].get(subject) if subject else {"verdict": row["verdict"]}
        if cell:
            tally[row["id"][0]][cell["verdict"]] += 1
            tally["all"][cell["verdict"]] += 1
    return tally


def across_subjects(table: list[dict]) -> list[dict]:
    """Every claim run on the first two subjects (the organism and a real model): both verdicts and what the
    pair says: "holds on both" (reproduced on both), "fails on both" (not reproduced on both), "same verdict"
    (inconclusive or not testable on both) or "differs"."""
    first, second = subjects(table)[:2]
    out = []
    for row in table:
        cells = row["subjects"]
        if first in cells and second in cells:
            pair = cells[first]["verdict"], cells[second]["verdict"]
            both = {("reproduced",) * 2: "holds on both", ("not reproduced",) * 2: "fails on both"}.get(pair)
            out.append({"claim": row["id"], "statement": row["statement"], first: pair[0], second: pair[1],
                        "across subjects": both or ("same verdict" if pair[0] == pair[1] else "differs")})
    return out


def across_sentence(rows: list[dict]) -> str:
    """One paragraph naming the claims that hold on both subjects, fail on both, and differ."""
    def named(kind: str) -> str:
        ids = [r["claim"] for r in rows if r["across subjects"] == kind]
        return ", ".join(ids) if ids else "none"

    return (f"Of {len(rows)} claims run on both subjects, these hold on both: {named('holds on both')}; these fail "
            f"on both: {named('fails on both')}; these differ: {named('differs')}; the rest share an inconclusive or "
            f"not-testable verdict ({named('same verdict')}).")


def evidence_text(row: dict) -> str:
    """A claim row's evidence sentence, what it rests on (n, resampling unit) and its caveat, as one text."""
    text = f"{row['evidence']} (n = {row['n']}; intervals resample {row['unit']})"
    return f"{text} Caveat: {row['caveat']}" if row.get("caveat") else text


def html_table(table: list[dict]) -> str:
    """The scorecard as an HTML table, key columns first so that a narrow screen keeps them: the claim (linked
    to the section that shows it), one verdict column per subject, the paper's claim and figure, then per
    subject what this study measured with its evidence and caveats."""
    esc = html.escape
    names = subjects(table)
    heads = ["claim"] + [f"verdict ({s})" for s in names] + ["the paper's claim", "paper"] + [f"this study ({s}): evidence" for s in names]
    head = "".join(f"<th>{h}</th>" for h in heads)

    def verdicts(row: dict) -> str:
        cells = (row["subjects"].get(s) for s in names)
        return "".join('<td class="verdict-none">not run</td>' if c is None else
                       f'<td class="verdict-{make_id(c["verdict"])}"><b>{c["verdict"]}</b></td>' for c in cells)

    def evidence(row: dict) -> str:
        cells = (row["subjects"].get(s) for s in names)
        return "".join("<td>not run on this subject yet</td>" if c is None else
                       f'<td><b>{esc(c["study"])}</b><br>{esc(c["evidence"])}</td>' for c in cells)

    body = "".join(f'<tr><td><a href="{row["link"]}">{row["id"]}</a></td>{verdicts(row)}<td>{esc(row["statement"])}</td>'
                   f'<td>{esc(row["paper"])}</td>{evidence(row)}</tr>' for row in table)
    caption = ("<caption>Every claim of the four papers: one verdict per subject, the paper's figure, and this "
               "study's figure with its evidence (n, the unit its 95% interval resamples, caveats).</caption>")
    return f'<table class="scorecard">{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def capitalised(text: str) -> str:
    """``text`` with its first letter in upper case ("organism" -> "Organism"), the rest as it is."""
    return text[:1].upper() + text[1:]


def findings_markdown(table: list[dict]) -> str:
    """The front page's main findings, computed from the scorecard: per subject and paper, how many claims
    reproduce; the claims that hold on both subjects and those that fail on both (with their statements and
    links); and the claims whose verdicts differ between the subjects."""
    names, across = subjects(table), across_subjects(table)
    by_id = {row["id"]: row for row in table}
    papers = [(letter, chapter) for chapter, (letter, _) in PAPERS.items()]

    def per_paper(subject: str) -> str:
        tally = counts(table, subject)
        parts = [f"{letter} {tally[letter]['reproduced']}/{sum(tally[letter].values())}" for letter, _ in papers
                 if sum(tally[letter].values())]
        return (f"**{capitalised(subject)}**: {tally['all']['reproduced']} of {sum(tally['all'].values())} claims reproduced, "
                f"{tally['all']['not reproduced']} not reproduced, {tally['all']['inconclusive']} inconclusive, "
                f"{tally['all']['not testable']} not testable (reproduced per paper: {', '.join(parts)}).")

    def listed(ids: list[str]) -> str:
        return "; ".join(f"[{i}]({by_id[i]['link']}) {by_id[i]['statement'][0].lower()}{by_id[i]['statement'][1:]}"
                         for i in ids) or "none"

    def where(kind: str) -> list[str]:
        return [r["claim"] for r in across if r["across subjects"] == kind]

    lines = [f"- {per_paper(s)}" for s in names]
    if len(names) > 1:
        first, second = names[:2]
        only = {s: [r["claim"] for r in across if r["across subjects"] == "differs" and r[s] == "reproduced"] for s in (first, second)}
        lines += [f"- **Hold on both subjects**: {listed(where('holds on both'))}.",
                  f"- **Fail on both subjects**: {listed(where('fails on both'))}.",
                  f"- **Reproduced on {second} only**: {', '.join(only[second]) or 'none'}; **on the {first} only**: "
                  f"{', '.join(only[first]) or 'none'}; the other claims differ between inconclusive, not testable and a "
                  f"verdict, or share one."]
    return "\n".join(lines)


PAPERS_MODELS = ("google/gemma-2-2b", "microsoft/Phi-3-mini-4k-instruct")  # the papers' models, for the size comparison


def limits_markdown(table: list[dict], root: Path) -> str:
    """The front page's limits: the subjects' sizes (read from the organism's manifest and the real model's SAE
    records), how many claims each subject cannot test, and what the study could not run."""
    organism = read_json(root / "data" / "organism" / "manifest.json")
    shape = organism["config"]["model"]
    gemma = read_json(root / "data" / "gemma3" / "saes.json")["config"]
    chat_width = read_json(root / "data" / "gemma3" / "chat" / "saes.json")["config"]["width"]
    ratios = [n_parameters(m) / n_parameters("google/gemma-3-270m") for m in PAPERS_MODELS]
    untestable = {s: sum(r["subjects"][s]["verdict"] == "not testable" for r in table if s in r["subjects"]) for s in subjects(table)}
    return "\n".join([
        f"- **Small subjects.** The organism has {organism['parameters'] / 1e6:.1f} M parameters ({shape['layers']} layers, "
        f"width {shape['hidden']}) and speaks a synthetic language; Gemma 3 270M is a real model ({gemma['n_layers']} layers) "
        f"but {min(ratios):.0f} to {max(ratios):.0f} times smaller than the papers' models (by parameter count), and its "
        "refusal (chapter A) comes from the study's own "
        "fine-tune with planted holes, not from safety training.",
        f"- **The study's own SAEs.** Gemma 3's SAEs were trained by the study on {gemma['samples']:,} token activations of a "
        f"small English corpus ({gemma['width']:,} features; the chat model's {chat_width:,}); they are far smaller and less "
        "trained than Gemma Scope, and some claims may depend on SAE quality.",
        "- **Not testable.** " + capitalised("; ".join(f"{'the ' * (s == 'organism')}{s} cannot test {n} of "
                                            f"{sum(s in r['subjects'] for r in table)} claims" for s, n in untestable.items()))
        + " (the scorecard's caveats say why).",
        "- **Not run.** The papers' own models (Phi-3 Mini, Gemma 2 2B with Gemma Scope) were not run: they need the "
        "hub and a GPU. [Rerun this study](rerun.html) gives the commands, data loaders and memory for them.",
        "- **One seed, one build.** Every verdict rests on one trained organism, one fine-tune and one set of SAEs; "
        "the intervals resample items, not training runs.",
    ])


def untestable_sentence(table: list[dict]) -> str:
    """Which claims the subject cannot test and why (their caveats), and which become untestable in a chapter's
    side comparison (e.g. other SAEs), as one paragraph."""
    rows = [row for row in table if row["verdict"] == "not testable"]
    subject = table[0]["subject"] if table else "subject"
    head = (f"The {subject} cannot test {len(rows)} of {len(table)} claims. " if rows
            else f"Every claim is testable on the {subject}. ")
    reasons = [f"**{row['id']}**: {row['caveat']}" for row in rows]
    side = [(row["id"], c["caveat"]) for row in table for c in row.get("comparison", []) if c["verdict"] == "not testable"]
    for caveat in dict.fromkeys(c for _, c in side):
        ids = " and ".join(i for i, c in side if c == caveat)
        reasons.append(f"In the comparison its chapter also runs, {ids} would not be testable: {caveat}")
    return head + " ".join(reasons)


def counts_sentence(tally: dict[str, dict[str, int]]) -> str:
    """One sentence of verdict counts, over all papers and per paper."""
    def part(c: dict[str, int]) -> str:
        return " / ".join(f"{c[v]} {v}" for v in VERDICTS)

    run = [letter for letter, _ in PAPERS.values() if sum(tally[letter].values())]
    per_paper = "; ".join(f"{letter}: {part(tally[letter])}" for letter in run)
    total = sum(tally["all"].values())
    return f"Of {total} claims, {part(tally['all'])} ({per_paper})."
