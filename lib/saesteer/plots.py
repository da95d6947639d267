"""Figures shared by the chapters: readable at a glance (titles, labelled axes, legends)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd


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
           title="Organism behaviour on held-out items")
    ax.invert_yaxis()
    return ax
