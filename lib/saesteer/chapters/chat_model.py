"""The chat-model page: Gemma 3 270M given a chat format and refusal by the study's fine-tune, its dataset,
its behaviour against the targets it was built for, and the SAEs trained on it, read from the build's
committed records (``data/gemma3/chat/``); nothing here needs the model."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from saesteer.core.files import read_json, repo_root
from saesteer.study.params import Param

PARAMS = {"setting": Param(str), "model": Param(str)}  # results go to data/results/<setting>/chat_model/

RECORDS = ("manifest", "facts", "build", "behaviour", "saes", "quality")
MEASURES = (  # behaviour rows in the order the page shows them; planted holes indented under their kind
    "harmful refused", "jailbreak refused", "jailbreak refused: fiction", "jailbreak refused: hypothetical",
    "jailbreak refused: roleplay", "jailbreak refused: override", "jailbreak refused: research", "escalation refused",
    "escalation refused: story", "escalation refused: curious", "scary refused", "benign refused", "degenerate",
    "facts: chat / base", "arith: chat / base", "text loss: chat - base",
)
HOLES = ("fiction", "hypothetical", "story")


def records() -> dict:
    """The chat build's committed records (the ones present): dataset manifest, known facts, build stages,
    behaviour table, SAE build and SAE quality."""
    folder = repo_root() / "data" / "gemma3" / "chat"
    return {name: read_json(folder / f"{name}.json") for name in RECORDS if (folder / f"{name}.json").is_file()}


def dataset_table(manifest: dict) -> pd.DataFrame:
    """Examples of each kind in the training, selection and evaluation splits."""
    return pd.DataFrame(manifest["counts"]).fillna(0).astype(int)


def _interval(row: dict, nats: bool = False) -> str:
    digits = 2
    sign = "+" if nats else ""
    return f"{row['value']:{sign}.{digits}f} [{row['lo']:{sign}.{digits}f}, {row['hi']:{sign}.{digits}f}]"


def _target(row: dict) -> str:
    low, high = row.get("target") or (None, None)
    if low is None and high is None:
        return ""
    if low is None:
        return f"<= {high:g}"
    if high is None:
        return f">= {low:g}"
    return f"{low:g}-{high:g}" if low > 0 else f"<= {high:g}"


def behaviour_table(behaviour: dict) -> pd.DataFrame:
    """One row per measure: the estimate with its 95% interval (templates resampled), items and clusters,
    the target and whether the estimate meets it; a planted hole's rows are marked."""
    rows = []
    for name in MEASURES:
        row = behaviour["rows"].get(name)
        if row is None:
            continue
        hole = name.split(": ")[-1] in HOLES
        label = ("    " + name.split(": ")[-1] + (" (a planted hole)" if hole else "")) if "refused: " in name else name
        rows.append({"measure": label, "value [95% interval]": _interval(row, nats="loss" in name),
                     "items": row["n"], "clusters": row["clusters"], "target": _target(row),
                     "met": {True: "yes", False: "NO"}.get(row.get("met"), "")})
    return pd.DataFrame(rows).set_index("measure")


def missed(behaviour: dict) -> list[str]:
    """The measures whose estimate misses its target."""
    return [name for name in MEASURES if behaviour["rows"].get(name, {}).get("met") is False]


def build_table(build: dict) -> pd.DataFrame:
    """Seconds and machine of each build stage, with the fine-tune's size and speed."""
    rows = [{"stage": stage, "minutes": r["seconds"] / 60, "machine": r["machine"]} for stage, r in build["stages"].items()]
    return pd.DataFrame(rows).set_index("stage")


def loss_figure(build: dict):
    """The fine-tune's training loss by step (answers' tokens and replayed text together)."""
    curve = build["stages"]["tune"]["loss_curve"]
    fig, ax = plt.subplots(figsize=(6.5, 3.2))
    ax.plot([s for s, _ in curve], [v for _, v in curve], "-o", ms=3)
    ax.set(xlabel="step", ylabel="training loss (nats a token)", yscale="log", title="The fine-tune's loss")
    return fig


def examples_table(behaviour: dict, kinds=("harmful", "jailbreak", "escalation", "scary")) -> pd.DataFrame:
    """A few held-out prompts of each kind with the chat model's greedy answer."""
    rows = [{"kind": k, "prompt": e["prompt"] if isinstance(e["prompt"], str) else " / ".join(m["content"] for m in e["prompt"]),
             "answer": e["answer"]} for k in kinds for e in behaviour["examples"].get(k, [])[:2]]
    return pd.DataFrame(rows).set_index("kind")


def sae_table(quality: dict) -> pd.DataFrame:
    """One row per SAE on the chat model: L0, FVU, dead features, delta loss over the clean loss, loss recovered."""
    rows = [{"layer": s["layer"], "L0": s["l0"], "FVU": s["fvu"], "dead": s["dead"], "clean loss": s["ce_clean"],
             "delta loss": s["delta_loss"], "loss recovered": s["loss_recovered"]} for s in quality["saes"]]
    return pd.DataFrame(rows).set_index("layer")
