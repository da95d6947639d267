"""Figures shared by the chapters: readable at a glance (titles, labelled axes, legends)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.transforms import Bbox


def training_curve(losses: list[float], window: int = 25, ax=None):
    """Per-step training loss with a moving average."""
    ax = ax or plt.subplots(figsize=(6, 3.2))[1]
    steps = np.arange(1, len(losses) + 1)
    smooth = pd.Series(losses).rolling(window, min_periods=1).mean()
    ax.plot(steps, losses, color="0.8", lw=0.8, label="per step")
    ax.plot(steps, smooth, color="C0", lw=2, label=f"mean of {window} steps")
    ax.set(title="Organism training loss", xlabel="optimiser step", ylabel="next-token cross-entropy (nats)", yscale="log")
    ax.legend()
    return ax


def rates_with_targets(rows: pd.DataFrame, ax=None):
    """Horizontal bars of rates with 95% intervals, and each behaviour's target range shaded."""
    ax = ax or plt.subplots(figsize=(6.5, 0.45 * len(rows) + 1))[1]
    y = np.arange(len(rows))
    err = [rows["rate"] - rows["ci_low"], rows["ci_high"] - rows["rate"]]
    colors = ["C2" if m else ("C3" if m is False else "C7") for m in rows["met"]]
    ax.barh(y, rows["rate"], xerr=err, color=colors, alpha=0.85, capsize=3)
    for i, target in enumerate(rows["target"]):
        if target != "-":
            low, high = map(float, target.split("-"))
            ax.add_patch(plt.Rectangle((low, i - 0.45), high - low, 0.9, fill=False, ls="--", ec="k", lw=1))
    ax.set_yticks(y, [f"{b} ({m})" for b, m in zip(rows["behaviour"], rows["metric"])])
    ax.set(xlim=(0, 1.02), xlabel="rate (95% Wilson interval); dashed box = target range",
           ylabel="behaviour (metric)", title="Organism behaviour on held-out items")
    ax.invert_yaxis()
    return ax


def tradeoff(rows: pd.DataFrame, ax=None):
    """Refusal gain on jailbreaks against capability loss, one point per clamp value, one line per setting."""
    ax = ax or plt.subplots(figsize=(6.5, 4.5))[1]
    for i, (setting, group) in enumerate(rows.groupby("setting", sort=False)):
        group = group.sort_values("multiple")
        ax.plot(group["capability loss"], group["jailbreak refusal gain"], "-o", color=f"C{i}", label=setting)
        for _, r in group.iterrows():
            ax.annotate(f"{r['multiple']:g}x", (r["capability loss"], r["jailbreak refusal gain"]), fontsize=7,
                        xytext=(3, 3), textcoords="offset points", color=f"C{i}")
    ax.axhline(0, color="0.6", lw=0.8)
    ax.axvline(0, color="0.6", lw=0.8)
    ax.set(title="Safety gained against capability lost", xlabel="capability loss (mean accuracy points lost, as a fraction)",
           ylabel="jailbreak refusal gain (fraction)")
    ax.legend(title="clamped", fontsize=8)
    return ax


def rates_by_kind(rows: pd.DataFrame, ax=None):
    """Grouped bars of every behaviour's rate with 95% intervals, one bar per setting."""
    ax = ax or plt.subplots(figsize=(9, 4))[1]
    settings, kinds = list(dict.fromkeys(rows["setting"])), list(dict.fromkeys(rows["kind"]))
    width = 0.8 / len(settings)
    for i, setting in enumerate(settings):
        part = rows[rows["setting"] == setting].set_index("kind").loc[kinds]
        x = np.arange(len(kinds)) + (i - (len(settings) - 1) / 2) * width
        ax.bar(x, part["rate"], width, yerr=[part["rate"] - part["lo"], part["hi"] - part["rate"]], capsize=2,
               label=setting, color=f"C{i}")
    ax.set_xticks(np.arange(len(kinds)), kinds)
    ax.set(ylim=(0, 1.05), ylabel="rate (95% Wilson interval)", xlabel="behaviour",
           title="Every behaviour, unsteered and steered")
    ax.legend(fontsize=8, ncols=2)
    return ax


def dose_response(rows: pd.DataFrame, kinds: list[str], ax=None, title: str = "Every behaviour against the clamp"):
    """Rate against clamp multiple per behaviour (rows: setting, multiple, kind, rate, lo, hi)."""
    ax = ax or plt.subplots(figsize=(6.5, 4))[1]
    for i, kind in enumerate(kinds):
        part = rows[rows["kind"] == kind].sort_values("multiple")
        ax.plot(part["multiple"], part["rate"], "-o", color=f"C{i}", label=kind, ms=4)
        ax.fill_between(part["multiple"], part["lo"], part["hi"], color=f"C{i}", alpha=0.15)
    ax.set(ylim=(-0.02, 1.02), xscale="log", xlabel="clamp (multiples of the typical maximum, log scale)",
           ylabel="rate (band: 95% interval)", title=title)
    ax.set_xticks(sorted(rows["multiple"].dropna().unique()), [f"{m:g}x" for m in sorted(rows["multiple"].dropna().unique())])
    ax.minorticks_off()  # the log axis's minor labels would overprint the clamp values
    ax.legend(fontsize=8, ncols=2)
    return ax


def _outside(box: Bbox) -> bool:
    """A legend box (in axes coordinates) that lies wholly outside the plotting area."""
    return box.x0 >= 1 or box.x1 <= 0 or box.y0 >= 1 or box.y1 <= 0


def legends_off_data(fig: plt.Figure) -> None:
    """Move every legend that sits inside its axes out of the plotting area, so that it covers no data: to the
    right of the rightmost axes of a row, else below the axes (under its x label). Legends already outside stay."""
    renderer = fig.canvas.get_renderer()
    rightmost = max((ax.get_position().x1 for ax in fig.axes), default=1)
    for ax in fig.axes:
        legend = ax.get_legend()
        if legend is None or _outside(legend.get_window_extent(renderer).transformed(ax.transAxes.inverted())):
            continue
        handles, labels = legend.legend_handles, [t.get_text() for t in legend.get_texts()]
        options = {"title": legend.get_title().get_text() or None, "frameon": False,
                   "fontsize": max(9, legend.get_texts()[0].get_fontsize()) if labels else None}
        legend.remove()
        if ax.get_position().x1 >= rightmost - 0.02:
            ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.01, 1), **options)
        else:
            bottom = ax.get_tightbbox(renderer).transformed(ax.transAxes.inverted()).y0
            ax.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, bottom - 0.02), ncols=min(len(labels), 3), **options)

