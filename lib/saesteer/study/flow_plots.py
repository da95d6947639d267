"""Figures of chapter C (feature flow): stacked shares over depth, flow graphs, steering curves, sensitivity grids."""

from __future__ import annotations

import matplotlib.pyplot as plt
import networkx as nx
import numpy as np
import pandas as pd

X_OFFSET = {"attn_out": -0.62, "mlp_out": -0.31, "resid_post": 0.0}  # R_{L-1} -> A_L -> M_L -> R_L left to right
Y_ROW = {"attn_out": 1.0, "mlp_out": -1.0, "resid_post": 0.0}
COLOR = {"attn_out": "C1", "mlp_out": "C2", "resid_post": "C0"}
SCHEDULE_COLOR = {"constant": "C0", "exponential": "C1", "linear": "C2", "single": "C3", "none": "0.4"}  # one colour per schedule


def stacked_shares(rows: pd.DataFrame, columns: list[str], title: str, ax=None, ylabel: str = "share"):
    """Stacked bars of shares per layer (rows: one per layer, a column per part); ``ylabel`` says what is shared."""
    ax = ax or plt.subplots(figsize=(7, 3.8))[1]
    bottom = np.zeros(len(rows))
    for i, column in enumerate(columns):
        ax.bar(rows["layer"], rows[column], bottom=bottom, label=column, color=f"C{i}", width=0.8)
        bottom += rows[column].to_numpy()
    ax.set(title=title, xlabel="layer L (resid_post SAE)", ylabel=ylabel, ylim=(0, 1.0), xticks=list(rows["layer"]))
    ax.legend(fontsize=7, bbox_to_anchor=(1.01, 1), loc="upper left")
    return ax


def flow_graph(graph, title: str, ax=None):
    """A flow graph drawn with networkx: x = depth (R_{L-1}, A_L, M_L, R_L), colour = position, node label =
    its id and top tokens, edge width = cosine similarity; residual nodes outlined red when off topic."""
    ax = ax or plt.subplots(figsize=(10, 4))[1]
    g = nx.DiGraph()
    pos, colors, labels, edge_colors = {}, [], {}, []
    branch: dict[tuple, int] = {}
    for key, node in graph.nodes.items():
        slot = branch.get((node["layer"], node["position"]), 0)
        branch[(node["layer"], node["position"])] = slot + 1
        g.add_node(key)
        pos[key] = (node["layer"] + X_OFFSET[node["position"]], Y_ROW[node["position"]] - 0.55 * slot)
        labels[key] = f"{key}\n{node.get('label', '')}"
    for a, b, s in graph.edges:
        g.add_edge(a, b, weight=s)
    for key in g.nodes:
        colors.append(COLOR[graph.nodes[key]["position"]])
        auroc = graph.nodes[key].get("topic_auroc")
        edge_colors.append("red" if auroc is not None and auroc < 0.7 else "black")
    widths = [0.5 + 3 * g.edges[e]["weight"] for e in g.edges]
    nx.draw_networkx_nodes(g, pos, ax=ax, node_color=colors, edgecolors=edge_colors, node_size=420, linewidths=1.5)
    nx.draw_networkx_edges(g, pos, ax=ax, width=widths, arrows=True, arrowsize=10, node_size=420, edge_color="0.4")
    for key, (x, y) in pos.items():  # beside the node, on a white box: legible over edges and grid lines
        ax.annotate(labels[key], (x, y), xytext=(11, 0), textcoords="offset points", va="center", fontsize=8.5,
                    bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "none", "alpha": 0.85})
    for position, color in COLOR.items():
        ax.scatter([], [], color=color, label={"resid_post": "residual R_L", "attn_out": "attention A_L", "mlp_out": "MLP M_L"}[position])
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    ax.set(title=title, xlabel="layer L (within a layer, left to right: A_L, M_L, R_L)", ylabel="position (see legend)")
    ax.tick_params(left=False, labelleft=False, bottom=True, labelbottom=True)
    layers = sorted({n["layer"] for n in graph.nodes.values()})
    ax.set_xticks(layers)
    ax.set_xlim(min(layers) - 1, max(layers) + 0.9)
    ax.margins(y=0.25)
    return ax


def steering_curves(summary: pd.DataFrame, ax=None):
    """Topic x coherence against the coefficient, one line per schedule, 95% bootstrap bands."""
    ax = ax or plt.subplots(figsize=(6.5, 4))[1]
    base = summary[summary["schedule"] == "none"]
    for i, (name, part) in enumerate(summary[summary["schedule"] != "none"].groupby("schedule", sort=False)):
        part = part.sort_values("s")
        color = SCHEDULE_COLOR.get(name, f"C{i}")
        ax.plot(part["s"], part["topic x coherence"], "-o", color=color, label=name, ms=4)
        ax.fill_between(part["s"], part["lo"], part["hi"], color=color, alpha=0.15)
    if len(base):
        ax.axhline(base["topic x coherence"].iloc[0], color="0.4", ls=":", label="unsteered")
    ax.set(xscale="log", title="Steering with a flow graph", xlabel="total added norm s (log scale)",
           ylabel="topic share x coherence (band: 95% CI)")
    coefficients = sorted(summary.loc[summary["schedule"] != "none", "s"].unique())
    ax.set_xticks(coefficients, [f"{s:g}" for s in coefficients])
    ax.minorticks_off()  # the log axis's minor labels would overprint the coefficients
    ax.legend(fontsize=8, title="schedule")
    return ax


def tradeoff(summary: pd.DataFrame, ax=None):
    """Topic share against coherence, one point per (schedule, s)."""
    ax = ax or plt.subplots(figsize=(6.5, 4))[1]
    for i, (name, part) in enumerate(summary.groupby("schedule", sort=False)):
        part = part.sort_values("s")
        ax.plot(part["coherence"], part["topic share"], "-o", color=SCHEDULE_COLOR.get(name, f"C{i}"), label=name, ms=4)
    ax.set(title="Behaviour against coherence", xlabel="coherence (1 / perplexity under the unsteered model)",
           ylabel="share of words from the target topic")
    ax.legend(fontsize=8, title="schedule")
    return ax


def paired_gaps(gaps: pd.DataFrame, primary: str, ax=None):
    """Each cumulative schedule minus single-layer steering (topic share x coherence, paired) per total norm
    and pooled over the small ones, with 95% intervals; the pre-registered schedule drawn solid."""
    ax = ax or plt.subplots(figsize=(6.5, 4))[1]
    labels = [str(s) if s == "pooled" else f"{s:g}" for s in dict.fromkeys(gaps["s"])]
    for i, (name, part) in enumerate(gaps.groupby("schedule", sort=False)):
        x = np.arange(len(part)) + 0.2 * (i - 1)
        ax.errorbar(x, part["diff"], yerr=[part["diff"] - part["lo"], part["hi"] - part["diff"]], fmt="o", capsize=3,
                    color=SCHEDULE_COLOR.get(name, f"C{i}"), label=f"{name}{' (pre-registered)' if name == primary else ''}",
                    alpha=1 if name == primary else 0.55)
    ax.axhline(0, color="0.4", lw=0.8)
    ax.set_xticks(np.arange(len(labels)), labels)
    ax.set(title="Cumulative minus single layer, same total norm", xlabel="total added norm (small ones, then pooled)",
           ylabel="difference in topic share x coherence")
    ax.legend(fontsize=8)
    return ax


def threshold_grid(grid: pd.DataFrame, columns: list[str], chosen: tuple[float, float]) -> plt.Figure:
    """One heatmap per column of ``grid`` over (res_threshold, module_threshold), the chosen pair boxed."""
    fig, axes = plt.subplots(1, len(columns), figsize=(3.3 * len(columns), 3.2), squeeze=False)
    for ax, column in zip(axes[0], columns):
        table = grid.pivot(index="res_threshold", columns="module_threshold", values=column)
        im = ax.imshow(table.to_numpy(), origin="lower", cmap="viridis" if column != "agreement gap" else "RdBu",
                       vmin=0 if column != "agreement gap" else -1, vmax=1, aspect="auto")
        for (i, j), v in np.ndenumerate(table.to_numpy()):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=6.5, color="white" if column != "agreement gap" else "black")
        ax.set_xticks(range(len(table.columns)), [f"{c:g}" for c in table.columns])
        ax.set_yticks(range(len(table.index)), [f"{r:g}" for r in table.index])
        if chosen[0] in table.index and chosen[1] in table.columns:
            i, j = list(table.index).index(chosen[0]), list(table.columns).index(chosen[1])
            ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="red", lw=2))
        ax.set(title=column if column == "agreement gap" else f"share {column}", xlabel="module_threshold", ylabel="res_threshold")
        fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    return fig
