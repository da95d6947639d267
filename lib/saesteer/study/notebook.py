"""The start of every chapter notebook: ``start(chapter, globals())`` in its setup cell.

It seeds, styles plots and silences the libraries' deprecation chatter (nbval
compares cell outputs, stderr included; ``TQDM_DISABLE=1`` turns progress bars
off), checks the parameters before any heavy work, and decides where the run
writes. A chapter module (``saesteer.chapters.<notebook>``) follows one template:
``PARAMS`` (the parameters cell, declared once and checked against it by a
test), ``check_params(config)`` for values that depend on each other, and, for
chapters on a subject, ``check_layers(config, n_layers)`` once the model's
depth is known; then its stages, ``claims`` and figures.
"""

from __future__ import annotations

import html
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import matplotlib
import pandas as pd
import seaborn as sns
import torch
from IPython import get_ipython
from IPython.display import Markdown, display
from matplotlib_inline.backend_inline import set_matplotlib_formats
from myst_nb import glue

from saesteer.core.files import read_json
from saesteer.study import params, paths, subjects
from saesteer.study.book import PAPERS
from saesteer.study.comparison import claims_view, side_by_side, verdict_summary
from saesteer.study.results import Cache

NOISY = ("nnsight", "sae_lens", "transformers", "huggingface_hub", "papermill")


def setup(seed: int = 0) -> None:
    """Seed torch, set a readable plot style, and keep library warnings out of cell outputs."""
    torch.manual_seed(seed)
    sns.set_theme(style="whitegrid", context="notebook")
    matplotlib.rcParams.update({"figure.dpi": 100, "savefig.dpi": 200, "axes.titleweight": "bold", "legend.framealpha": 0.9})
    pd.set_option("display.precision", 4)
    show_figures_and_tables()
    for category in (DeprecationWarning, FutureWarning, UserWarning):
        for module in NOISY:
            warnings.filterwarnings("ignore", category=category, module=module)
    for name in NOISY:
        logging.getLogger(name).setLevel(logging.ERROR)


NOT_AVAILABLE = "–"  # what a table shows for a missing value (never NaN or <NA>)


def table_html(frame: pd.DataFrame) -> str:
    """A DataFrame as the book shows it: missing values as a dash (pandas' nullable columns too, which ``na_rep``
    misses), and its caption (``captioned``) as the table's first element."""
    nullable = [c for c in frame.columns if isinstance(frame[c].dtype, pd.api.extensions.ExtensionDtype)]
    if nullable:
        frame = frame.astype({c: object for c in nullable}).where(frame.notna() | ~frame.columns.isin(nullable), NOT_AVAILABLE)
    text = frame.to_html(na_rep=NOT_AVAILABLE, notebook=True, max_rows=pd.get_option("display.max_rows"),
                         max_cols=pd.get_option("display.max_columns"), show_dimensions=False)
    caption = frame.attrs.get("caption")
    if caption:
        start = text.index(">", text.index("<table")) + 1
        text = f"{text[:start]}\n  <caption>{html.escape(caption)}</caption>{text[start:]}"
    return text


def captioned(frame: pd.DataFrame, caption: str) -> pd.DataFrame:
    """``frame`` with the caption the book shows above it (a copy; pandas keeps it in ``attrs``)."""
    frame = frame.copy()
    frame.attrs["caption"] = caption
    return frame


def show_figures_and_tables() -> None:
    """In a notebook: figures as PNGs at twice their resolution (200 dpi) shown at their size on the page, and
    DataFrames through ``table_html``. Outside IPython it does nothing."""
    shell = get_ipython()
    if shell is None:
        return
    set_matplotlib_formats("retina")
    shell.display_formatter.formatters["text/html"].for_type(pd.DataFrame, table_html)


@dataclass
class Run:
    """One execution of a chapter notebook: its checked parameters, where it writes, its stage cache."""

    chapter: ModuleType  # the chapter module (PARAMS, check_params, optional check_layers)
    config: dict  # the parsed, checked parameters
    out_dir: Path  # the book's results folder on a pipeline run, else the run's own folder

    @property
    def name(self) -> str:
        """The chapter's short name (its notebook's and module's name)."""
        return self.chapter.__name__.rsplit(".", 1)[1]

    def cache(self, extra: dict | None = None) -> Cache:
        """The stage cache of these parameters (plus ``extra`` inputs, e.g. the parameters of results read)."""
        return Cache(self.out_dir, self.config | (extra or {}), self.name)

    def load_subject(self):
        """The subject the parameters name, with the chapter's layer parameters checked against its depth."""
        subject = subjects.load_subject(self.config)
        if hasattr(self.chapter, "check_layers"):
            self.chapter.check_layers(self.config, subject.n_layers)
        return subject

    def compared(self) -> dict[str, dict]:
        """This chapter's book results for each setting of the ``compare_with`` parameter (the same chapter on
        other subjects, shown side by side), read from ``results_root()``; a missing one stops the notebook
        with the command that makes it."""
        out = {}
        for setting in self.config.get("compare_with") or []:
            path = paths.book_results(setting, self.name)
            if not path.is_file():
                raise params.ParameterError(f"Parameter 'compare_with' names {setting!r}, which has no results at "
                                            f"{paths.shown(path)}; run `python -m saesteer.study.pipeline --only "
                                            f"{self.name}@{setting}` first.")
            out[setting] = read_json(path)
        return out

    def upstream(self, chapter: str) -> dict | None:
        """Another chapter's book results for this setting (under ``results_root()``), or None when absent."""
        path = paths.book_results(self.config["setting"], chapter)
        return read_json(path) if path.is_file() else None


def check(chapter: ModuleType, values: dict) -> dict:
    """Every check a chapter's parameters get before any heavy work: names, types and ranges (``PARAMS``),
    values that depend on each other (``check_params``), the setting's name and the device. Returns the
    parsed values."""
    config = params.validate(values, chapter.PARAMS)
    check_setting(chapter, config.get("setting"))
    if "device" in config:
        check_device(config["device"])
    if "model" in config and "prompts" in config:
        subjects.check_subject_params(config)
    if hasattr(chapter, "check_params"):
        chapter.check_params(config)
    return config


def check_setting(chapter: ModuleType, setting: str | None) -> None:
    """A setting is a free name, but one a letter or two away from a parameter file of the chapter is a typo."""
    folder = paths.repo_root() / "notebooks" / "params" / chapter.__name__.rsplit(".", 1)[1]
    known = sorted(p.stem for p in folder.glob("*.yaml"))
    if setting is None or setting in known:
        return
    hint = params.nearest(setting, known, cutoff=0.75)
    if hint:
        raise params.ParameterError(f"Parameter 'setting' is {setting!r}, which is not a parameter file of this "
                                    f"chapter; {hint}")


def check_device(device: str) -> None:
    """``device: cuda`` needs a CUDA GPU on this machine."""
    if device == "cuda" and not torch.cuda.is_available():
        raise params.ParameterError("Parameter 'device' is 'cuda' but this machine has no CUDA GPU; use 'auto' or 'cpu'.")


def start(chapter: ModuleType, namespace: dict, seed_name: str = "seed") -> Run:
    """The setup cell of every chapter notebook, in one call: seeds, plot style and quiet libraries
    (``setup``); the parameters read from the notebook's globals, parsed and checked (``check``) before
    any heavy work; and the folder the run writes to (``paths.run_dir``: never the book's, unless the
    pipeline runs it). Call it first in the setup cell, before other imports, so that any global that is
    not a declared parameter is an unknown (misspelt) one."""
    values = params.notebook_values(namespace)
    setup(values.get(seed_name, 0) if isinstance(values.get(seed_name, 0), int) else 0)
    config = check(chapter, values)
    namespace.update(config)
    name = chapter.__name__.rsplit(".", 1)[1]
    out_dir = paths.run_dir(config.get("setting", name), name, config)
    if not paths.book_run():
        print(f"results of this run: {paths.shown(out_dir)} (the book's results are written only by the pipeline)")
    return Run(chapter, config, out_dir)


def show_claims(run: Run, claims: pd.DataFrame) -> None:
    """A chapter's claims table (captioned, the verdict first) and its verdicts in brief, glued for the top of
    the page (``{glue:md} verdicts``): this run beside the runs its ``compare_with`` parameter names."""
    letter, records = PAPERS[run.name][0], claims.reset_index().to_dict("records")
    with pd.option_context("display.max_colwidth", None):
        display(captioned(claims_view(records), f"Table: claims {letter}1-{letter}{len(records)} against this run: the "
                          "verdict, the paper's figure beside this study's (with its 95% interval), and the evidence."))
    glue("verdicts", Markdown(verdict_summary(letter, run.config["setting"], run.config.get("model", "organism"), records,
                                              run.compared())), display=False)


def show_side_by_side(run: Run, claims: pd.DataFrame) -> None:
    """This run's verdicts beside those of the runs its ``compare_with`` parameter names, with a sentence per run
    naming the claims on which they agree and differ."""
    side, agreements = side_by_side(run.config["setting"], claims.reset_index().to_dict("records"), run.compared())
    with pd.option_context("display.max_colwidth", None):
        display(captioned(pd.DataFrame(side).set_index("claim"), "Table: the verdicts of this chapter on each subject."))
    display(Markdown(" ".join(agreements)))

