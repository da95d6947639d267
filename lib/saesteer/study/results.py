"""Results files: JSON written atomically, with the parameters that produced them, and a stage cache.

``Cache`` keeps each expensive stage of a chapter as its own JSON file, keyed by
the parameters, the library code and the organism: a rerun with the same inputs
reuses every stage, a run interrupted midway resumes at the first missing one,
and no half-written file is ever read (writes are atomic).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import matplotlib.pyplot as plt

from saesteer.core.files import read_json, repo_root, write_json
from saesteer.core.stats import VERDICTS
from saesteer.study.plots import legends_off_data
from saesteer.study.sources import chapter_digest


def save_results(folder: Path, params: dict, results: dict) -> Path:
    """``results.json`` in ``folder``: the parameters and the results side by side."""
    return write_json(Path(folder) / "results.json", {"params": params, "results": results})


def unreadable(fig: plt.Figure) -> list[str]:
    """What a reader would miss in ``fig``: a title, or an axis label, on any plotting axes.

    A figure-wide ``suptitle`` / ``supxlabel`` / ``supylabel`` counts for every axes, an axes
    sharing an axis with a labelled one counts as labelled, and colorbars and axes drawn with
    their axis off (graph drawings) need only the title.
    """
    missing = []
    titled = bool(fig._suptitle and fig._suptitle.get_text())
    for i, ax in enumerate(fig.axes):
        if ax.get_label() == "<colorbar>":
            continue
        if not (titled or ax.get_title()):
            missing.append(f"axes {i} has no title")
        if not ax.axison:
            continue
        for axis in "xy":
            sup = getattr(fig, f"_sup{axis}label", None)
            shared = getattr(ax, f"get_shared_{axis}_axes")().get_siblings(ax)
            if not ((sup and sup.get_text()) or any(getattr(a, f"get_{axis}label")() for a in shared)):
                missing.append(f"axes {i} has no {axis} label")
    return missing


def save_figure(fig: plt.Figure, folder: Path, name: str) -> Path:
    """Save ``fig`` as ``<folder>/figures/<name>.png`` at 200 dpi (the one path every chapter's figures take),
    after checking it has titles and axis labels (``unreadable``; a figure without them is an error) and
    moving its legends off the data (``plots.legends_off_data``; the notebook then shows it so)."""
    missing = unreadable(fig)
    if missing:
        raise ValueError(f"figure {name!r} is not readable: {'; '.join(missing)}")
    legends_off_data(fig)
    path = Path(folder) / "figures" / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=200, bbox_inches="tight")
    return path


class Cache:
    """Stage results of one parameter set, under ``<folder>/cache/<key>/<stage>.json``; the key hashes the
    parameters and the chapter's sources (``sources.chapter_digest``: notebook, library modules it imports,
    organism manifest), so a change elsewhere in the library keeps the cache."""

    def __init__(self, folder: Path, params: dict, chapter: str):
        digest = chapter_digest(repo_root(), chapter)
        digest.update(json.dumps(params, sort_keys=True, default=str).encode())
        self.folder = Path(folder) / "cache" / digest.hexdigest()[:16]
        self.reused: list[str] = []

    def get(self, stage: str, compute: Callable[[], object]):
        """The stage's stored result, or ``compute()`` stored atomically (JSON-serialisable)."""
        path = self.folder / f"{stage}.json"
        if path.is_file():
            self.reused.append(stage)
            return read_json(path)
        result = compute()
        write_json(path, result)
        return read_json(path)  # the same types whether computed now or reused later


def claim(number: int, statement: str, paper: str, study: str, verdict: str, evidence: str, *, n: int | str,
          unit: str, preregistered: dict[str, str], caveat: str = "") -> dict:
    """One row of a chapter's claims table (the schema every chapter shares, for the book's scorecard).

    ``paper`` and ``study`` are the two numbers; ``verdict`` one of ``stats.VERDICTS`` (from ``stats.verdict``
    or ``stats.combine``); ``evidence`` one plain sentence; ``n`` how many items (or features, pairs) the
    number rests on and ``unit`` what its interval resamples (e.g. "verb-object pair"); ``preregistered`` each
    choice the verdict depends on and where it was fixed (the parameter file, or a selection split); ``caveat``
    what limits the verdict (for "not testable": why the subject cannot show the mechanism)."""
    if verdict not in VERDICTS:
        raise ValueError(f"Claim {number}: verdict must be one of {', '.join(VERDICTS)}; got {verdict!r}.")
    if verdict == "not testable" and not caveat:
        raise ValueError(f"Claim {number}: a 'not testable' verdict needs a caveat that says why.")
    return {"claim": number, "statement": statement, "paper": paper, "this study": study, "verdict": verdict,
            "evidence": evidence, "n": n, "unit": unit, "preregistered": dict(preregistered), "caveat": caveat}
