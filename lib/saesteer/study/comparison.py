"""The same chapter on several subjects: its claims side by side, one verdict column per run.

A chapter runs on the organism (the subject with known answers) and on Gemma 3 270M (a real pretrained
model); chapter B runs on Gemma 3 with two behaviours. Each run writes its own results file; these
functions read the claims of several runs and line them up by claim number. A subject's first run in
the book's listing is its primary one: the scorecard takes that run's verdict, and a further run of the
same subject (another behaviour) is a replication, reported beside it and never used to change it.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from saesteer.core.stats import VERDICTS

# model parameter -> the subject's name; chapter A runs on Gemma 3 270M through its chat fine-tune, the same subject
SUBJECTS = {"organism": "organism", "gemma3-270m": "Gemma 3 270M", "gemma3-270m-chat": "Gemma 3 270M"}


def subject_name(model: str) -> str:
    """A subject's name for tables: the organism, Gemma 3 270M, or the model parameter itself."""
    return SUBJECTS.get(model, model)


def run_label(setting: str, model: str) -> str:
    """A run's name for titles: the subject, and what the setting adds to it ("Gemma 3 270M, sentiment")."""
    extra = setting.removeprefix(model).strip("-")
    return f"{subject_name(model)}, {extra}" if extra and extra != setting else subject_name(model)


def claims_table(runs: Mapping[str, dict]) -> list[dict]:
    """One row per claim number of the first run: its statement, then each run's verdict and evidence
    (``runs``: setting -> that run's results, as saved by ``results.save_results``; a run without the claim
    shows "not run")."""
    by_run = {setting: {row["claim"]: row for row in results["results"]["claims"]} for setting, results in runs.items()}
    first = next(iter(by_run.values()))
    table = []
    for number, row in first.items():
        line = {"claim": number, "statement": row["statement"]}
        for setting, claims in by_run.items():
            found = claims.get(number)
            line[f"verdict ({setting})"] = found["verdict"] if found else "not run"
            line[f"evidence ({setting})"] = found["evidence"] if found else ""
        table.append(line)
    return table


def agreement(table: list[dict], a: str, b: str) -> dict[str, list]:
    """The claims on which two runs' verdicts agree and those on which they differ (claim numbers)."""
    same = [row["claim"] for row in table if row[f"verdict ({a})"] == row[f"verdict ({b})"]]
    return {"agree": same, "differ": [row["claim"] for row in table if row["claim"] not in same]}


def numbers(claims: list) -> str:
    """Claim numbers as words: "1, 2 and 5" ("none" when empty)."""
    names = [str(n) for n in claims]
    return "none" if not names else names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def side_by_side(setting: str, claims: list[dict], compared: Mapping[str, dict]) -> tuple[list[dict], list[str]]:
    """This run's ``claims`` beside the ``compared`` runs' (``Run.compared``): the table of statements with one
    verdict column per run, and per other run a sentence naming the claims on which the two agree and differ."""
    runs = {setting: {"results": {"claims": claims}}} | dict(compared)
    table = claims_table(runs)
    verdicts = [{k: v for k, v in row.items() if not k.startswith("evidence")} for row in table]
    lines = [f"{setting} and {other} agree on claims {numbers(split['agree'])} and differ on {numbers(split['differ'])}."
             for other in list(runs)[1:] for split in [agreement(table, setting, other)]]
    return verdicts, lines


def claims_view(claims: list[dict]) -> pd.DataFrame:
    """A chapter's claims as its page shows them, in four columns that fit the page: the verdict first, the
    claim, the paper's figure beside this study's, and the evidence with what it rests on (n, the unit its
    interval resamples) and any caveat. The preregistered choices (nested records) stay in the results file."""
    def figures(row: dict) -> str:
        return "; ".join(f"{who}: {row[key]}" for who, key in (("paper", "paper"), ("this study", "this study")) if row.get(key))

    def evidence(row: dict) -> str:
        rests = ", ".join(str(row[k]) for k in ("n", "unit") if row.get(k) not in (None, ""))
        text = f"{row.get('evidence', '')} ({rests})" if rests else str(row.get("evidence", ""))
        return f"{text} Caveat: {row['caveat']}" if row.get("caveat") else text

    return pd.DataFrame([{"claim": row["claim"], "verdict": row["verdict"], "statement": row["statement"],
                          "figures": figures(row), "evidence": evidence(row)} for row in claims]).set_index("claim")


def verdict_counts(claims: list[dict]) -> str:
    """"2 reproduced, 1 not reproduced" (verdicts that occur, in the rule's order)."""
    found = [row["verdict"] for row in claims]
    return ", ".join(f"{found.count(v)} {v}" for v in VERDICTS if v in found)


def verdict_summary(letter: str, setting: str, model: str, claims: list[dict], compared: Mapping[str, dict]) -> str:
    """The verdicts in brief, for the top of a chapter's page (Markdown): per run a count of its verdicts, then
    one row per claim (``letter`` + number, the statement) with each run's verdict."""
    labels = {setting: run_label(setting, model)} | {s: run_label(s, r["params"].get("model", s)) for s, r in compared.items()}
    table = claims_table({setting: {"results": {"claims": claims}}} | dict(compared))
    runs = {setting: claims} | {s: r["results"]["claims"] for s, r in compared.items()}
    counted = "; ".join(f"{labels[s]}: {verdict_counts(rows)}" for s, rows in runs.items())
    head = "| claim | the paper's claim | " + " | ".join(labels.values()) + " |\n|---|---|" + "---|" * len(labels)
    rows = ["| " + " | ".join([f"{letter}{row['claim']}", row["statement"].replace("|", "/"),
                               *(f"**{row[f'verdict ({s})']}**" for s in labels)]) + " |" for row in table]
    return f"**Verdicts in brief** ({counted}; the claims table at the end of the page gives the evidence):\n\n" + "\n".join([head, *rows])
