"""The real-model page: Gemma 3 270M, the English corpus, and the quality of the SAEs the study trains on
it, read from the build's committed records (``data/gemma3/``); nothing here needs the model."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from saesteer.core.files import read_json, repo_root
from saesteer.gemma3.build import STAGES
from saesteer.study.params import Param

PARAMS = {"setting": Param(str)}  # results go to data/results/<setting>/real_model/

TARGETS = {  # position -> metric -> (lowest, highest): the real-model issue's targets for resid_post SAEs
    "resid_post": {"delta_loss": (0.0, 0.25), "l0": (30.0, 120.0), "dead": (0.0, 0.10)},
}


def records() -> dict:
    """The corpus manifest, the SAE build manifest and the quality table, as committed."""
    folder = repo_root() / "data" / "gemma3"
    return {name: read_json(folder / f"{name}.json") for name in ("corpus", "saes", "quality")}


def corpus_table(corpus: dict) -> pd.DataFrame:
    """One row per source: register, Debian package, licence, documents and Gemma 3 tokens."""
    rows = [{"source": name, "register": s["register"], "package": f"{s['package']} {s['version']}",
             "licence": s["licence"], "documents": s["documents"], "Gemma 3 tokens": s["gemma3_tokens"]}
            for name, s in corpus["sources"].items()]
    return pd.DataFrame(rows).set_index("source")


def quality_table(quality: dict) -> pd.DataFrame:
    """One row per SAE, with Gemma Scope 2's L0s at the same site and a flag per target where one applies."""
    table = pd.DataFrame(quality["saes"])
    table["architecture"] = table["sae"].str.split("_").str[0]
    table["GS2 L0 small"] = table["gemma_scope_2_l0"].map(lambda d: d.get("small"))
    table["GS2 L0 big"] = table["gemma_scope_2_l0"].map(lambda d: d.get("big"))
    table["zero-ablation delta"] = table["ce_zero"] - table["ce_clean"]
    for metric in ("delta_loss", "l0", "dead"):
        table[f"{metric} ok"] = [meets(position, metric, value) for position, value in zip(table["position"], table[metric])]
    columns = ["architecture", "position", "layer", "l0", "fvu", "dead", "delta_loss", "zero-ablation delta",
               "loss_recovered", "GS2 L0 small", "GS2 L0 big", "delta_loss ok", "l0 ok", "dead ok"]
    return table.set_index("sae")[columns]


def meets(position: str, metric: str, value: float) -> bool | None:
    """Whether ``value`` meets the target for this position and metric (None where there is none)."""
    low, high = TARGETS.get(position, {}).get(metric, (None, None))
    return None if low is None else bool(low <= value <= high)


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per architecture and position: the range of each measure, and how many SAEs meet each target."""
    rows = []
    for (arch, position), group in table.groupby(["architecture", "position"], sort=False):
        row = {"architecture": arch, "position": position, "SAEs": len(group)}
        for metric in ("l0", "fvu", "dead", "delta_loss"):
            row[metric] = f"{group[metric].min():.3g} - {group[metric].max():.3g}"
        for metric in ("delta_loss", "l0", "dead"):
            flags = group[f"{metric} ok"].dropna()
            row[f"{metric} target met"] = f"{int(flags.sum())} of {len(flags)}" if len(flags) else "-"
        rows.append(row)
    return pd.DataFrame(rows).set_index(["architecture", "position"])


def stage_times(saes: dict) -> pd.DataFrame:
    """The build's stages with the time each took and the machine it ran on."""
    rows = [{"stage": stage, "minutes": saes["stages"][stage]["seconds"] / 60, "machine": saes["stages"][stage]["machine"]}
            for stage in STAGES if stage in saes["stages"]]
    return pd.DataFrame(rows).set_index("stage")


def position_figure(table: pd.DataFrame, position: str):
    """L0 and delta loss by layer for one position's SAEs (Gemma Scope 2's L0s beside ours; the zero-ablated
    site's delta as the ceiling), with the targets where they apply."""
    rows = table[table["position"] == position].sort_values("layer")
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    sns.lineplot(data=rows, x="layer", y="l0", hue="architecture", marker="o", ax=left)
    for size, style in (("small", ":"), ("big", "--")):
        if rows[f"GS2 L0 {size}"].notna().any():
            left.plot(rows["layer"], rows[f"GS2 L0 {size}"], style, color="grey", label=f"Gemma Scope 2 ({size})")
    sns.lineplot(data=rows, x="layer", y="delta_loss", hue="architecture", marker="o", ax=right, legend=False)
    right.plot(rows["layer"], rows["zero-ablation delta"], ":", color="grey", label="site zero-ablated")
    right.set_yscale("log")
    target = TARGETS.get(position, {})
    if "l0" in target:
        left.axhspan(*target["l0"], color="green", alpha=0.08, label="L0 target")
    if "delta_loss" in target:
        right.axhline(target["delta_loss"][1], color="green", lw=1, label="delta-loss target")
    left.set(title=f"{position}: L0 by layer", ylabel="mean active features per token")
    right.set(title=f"{position}: next-token loss increase by layer", ylabel="delta loss (nats, log scale)")
    left.legend()
    right.legend(fontsize=7)
    fig.tight_layout()
    return fig


def against_gemma_scope_2(table: pd.DataFrame) -> pd.DataFrame:
    """Per position of our JumpReLU SAEs that Gemma Scope 2 also covers: median L0 over layers beside
    Gemma Scope 2's small and big L0s at the same layers, and our median delta loss."""
    rows = []
    ours = table[(table["architecture"] == "jumprelu") & table["GS2 L0 big"].notna()]
    for position, group in ours.groupby("position", sort=False):
        rows.append({"position": position, "layers": len(group), "our L0 (median)": group["l0"].median(),
                     "GS2 small L0 (median)": group["GS2 L0 small"].median(),
                     "GS2 big L0 (median)": group["GS2 L0 big"].median(),
                     "our delta loss (median, nats)": group["delta_loss"].median(),
                     "zero-ablation delta (median, nats)": group["zero-ablation delta"].median()})
    return pd.DataFrame(rows).set_index("position")
