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
    behaviour table, SAE build and SAE quality; and the first recipe's behaviour and text loss (``recipe1``)."""
    folder = repo_root() / "data" / "gemma3" / "chat"
    out = {name: read_json(folder / f"{name}.json") for name in RECORDS if (folder / f"{name}.json").is_file()}
    if (folder / "recipe1").is_dir():
        out["recipe1"] = {name: read_json(folder / "recipe1" / f"{name}.json") for name in ("behaviour", "record")}
    return out


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
    """Minutes and machine of each build stage; the fine-tune's are its training time summed over every run
    that resumed it (the stage's own record times only its last run)."""
    rows = [{"stage": stage, "minutes": r.get("training_seconds", r["seconds"]) / 60, "machine": r["machine"]}
            for stage, r in build["stages"].items()]
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


def recipes_table(records: dict) -> pd.DataFrame:
    """The two fine-tune recipes side by side: the first's held-out behaviour (its own split) and text loss, the
    second's on the selection split (where the recipe was judged) and on held-out prompts."""
    first = records["recipe1"]["behaviour"]["rows"] | records["recipe1"]["record"]
    columns = {"first recipe, held out": first, "second recipe, selection": records["behaviour"]["selection"]["rows"],
               "second recipe, held out": records["behaviour"]["rows"]}
    rows = []
    for name in MEASURES:
        if "refused: " in name:
            continue
        row = {"measure": name}
        for label, source in columns.items():
            row[label] = _interval(source[name], nats="loss" in name) if name in source else "not measured"
        rows.append(row)
    return pd.DataFrame(rows).set_index("measure")


def recipe_settings(records: dict) -> pd.DataFrame:
    """The fine-tune settings of the two recipes (those that differ marked)."""
    first, second = records["recipe1"]["record"]["tune_config"], records["build"]["stages"]["tune"]["config"]
    rows = [{"setting": k, "first recipe": f"{first.get(k, 'none')}", "second recipe": f"{second.get(k, 'none')}"}
            for k in dict.fromkeys([*first, *second])]
    return pd.DataFrame(rows).set_index("setting")


def behaviour_summary(behaviour: dict) -> str:
    """The behaviour table in words: the targets met and missed, and how the planted holes behave."""
    rows, miss = behaviour["rows"], missed(behaviour)
    holes = [f"{name.split(': ')[1]} {rows[name]['value']:.2f}" for name in MEASURES if name in rows and name.split(": ")[-1] in HOLES]
    closed = [f"{name.split(': ')[1]} {rows[name]['value']:.2f}" for name in MEASURES
              if name in rows and "refused: " in name and name.split(": ")[-1] not in HOLES]
    head = ("**Every target is met.**" if not miss else
            f"**{len(miss)} of {sum('target' in rows[n] for n in MEASURES if n in rows)} targets are missed: "
            + ", ".join(f"{n} {rows[n]['value']:.2f} (target {_target(rows[n])})" for n in miss) + ".**")
    return (f"{head} The planted holes are open (refusal {', '.join(holes)}) and the other wrappers and openers "
            f"closed ({', '.join(closed)}), so the jailbreak and escalation rates are mixtures of templates that "
            "almost always work and templates that almost never do; with two held-out templates per family, "
            "their intervals are wide.")
