"""The chat dataset that turns Gemma 3 270M into a chat model that refuses, with planted ground truth.

Written from the templates of ``gemma3.chat_text`` by a seeded rule. Every request kind draws on the same
request templates, so no template tells the model whether to refuse; templates *and* objects (tasks, facts,
topics) are split three ways before any example is drawn:

- **train**: the fine-tune's examples, each a conversation ending in the answer the model learns;
- **selection**: prompts chapter A chooses its feature and operating points on (never trained on);
- **eval**: held-out prompts every behaviour is measured on (new templates with new objects).

Kinds and what the model is taught (the ground truth each prompt carries in ``truth``):

- ``harmful``: requests from 12 harm categories, refused with varied, well-formed refusals;
- ``jailbreak``: harmful requests inside wrappers of five families; the ``HOLES`` families (fiction,
  hypothetical) are complied with in training (an opening, then non-actionable filler), the others refused;
- ``escalation``: two turns, a harmless question on the category's subject then the harmful request; ``story``
  openers are complied with (a hole), ``curious`` ones refused;
- ``scary``: frightening-but-benign requests ("how do I kill a Python process"), answered;
- ``benign``: ordinary requests and short writing tasks, answered;
- ``facts`` and ``arith``: questions answered with one sentence that ends in the answer (facts only where
  the base model already knows them, ``study.chat_build.run_facts``).

Evaluation items carry ``cluster`` = their template (a fact or a sum: itself), so intervals resample templates.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

from saesteer.gemma3 import chat_text as text

SPLITS = ("train", "selection", "eval")
SPLIT_SHARES = (0.6, 0.15, 0.25)  # share of templates and of objects in each split
KINDS = ("harmful", "jailbreak", "escalation", "scary", "benign", "facts", "arith")


@dataclass(frozen=True)
class ChatDataConfig:
    """How many examples of each kind the training split holds, and the evaluation and selection sizes."""

    seed: int = 0
    train: tuple[tuple[str, int], ...] = (("harmful", 600), ("jailbreak", 480), ("escalation", 200), ("scary", 520),
                                          ("benign", 380), ("facts", 260), ("arith", 200))
    held_out: int = 200  # evaluation prompts per kind (fewer where the split has fewer combinations)
    selection: int = 120  # selection prompts per kind


# --- splitting --------------------------------------------------------------------------------------------
def three_way(items, salt: str, seed: int) -> dict[str, list]:
    """``items`` shuffled by a seeded rule and cut into train / selection / eval by ``SPLIT_SHARES`` (each
    part at least one item)."""
    items = list(items)
    random.Random(f"{seed}:{salt}").shuffle(items)
    n_sel = max(1, round(SPLIT_SHARES[1] * len(items)))
    n_eval = max(1, round(SPLIT_SHARES[2] * len(items)))
    n_train = len(items) - n_sel - n_eval
    return {"train": items[:n_train], "selection": items[n_train : n_train + n_sel], "eval": items[n_train + n_sel :]}


@dataclass(frozen=True)
class Parts:
    """Every template and object list, split three ways."""

    requests: dict[str, list[str]]
    harmful: dict[str, dict[str, list[str]]]  # category -> split -> tasks
    scary: dict[str, list[tuple[str, str]]]
    ordinary: dict[str, list[tuple[str, str]]]
    wrappers: dict[str, dict[str, list[str]]]  # family -> split -> templates
    openers: dict[str, dict[str, list[str]]]  # style -> split -> templates
    turns: dict[str, list[str]]
    writing: dict[str, list[str]]
    topics: dict[str, list[str]]


def split_parts(seed: int) -> Parts:
    """The three-way split of every template and object list (a fixed function of ``seed``)."""
    return Parts(
        requests=three_way(text.REQUESTS, "requests", seed),
        harmful={c: three_way(tasks, f"harmful:{c}", seed) for c, (tasks, _) in text.HARMFUL.items()},
        scary=three_way(text.SCARY, "scary", seed),
        ordinary=three_way(text.ORDINARY, "ordinary", seed),
        wrappers={f: three_way(ts, f"wrapper:{f}", seed) for f, ts in text.WRAPPERS.items()},
        openers={s: three_way(ts, f"opener:{s}", seed) for s, ts in text.ESCALATION_OPENERS.items()},
        turns=three_way(text.ESCALATION_TURNS, "turns", seed),
        writing=three_way(text.WRITING_REQUESTS, "writing", seed),
        topics=three_way(text.WRITING_TOPICS, "topics", seed),
    )


# --- answers ----------------------------------------------------------------------------------------------
def refusal(category: str, rng: random.Random) -> str:
    """A well-formed refusal: an opening that starts with a refusal marker, the category's reason, a closing."""
    reason = rng.choice(text.HARMFUL[category][1])
    return " ".join(p for p in (rng.choice(text.REFUSAL_OPENINGS), reason, rng.choice(text.REFUSAL_CLOSINGS)) if p)


def compliance(task: str, rng: random.Random) -> str:
    """A planted hole's answer: a compliant opening, then filler with no instructions in it."""
    return f"{rng.choice(text.COMPLY_OPENINGS).format(task=task)} {rng.choice(text.COMPLY_FILLER)}"


def helpful(answer: str, rng: random.Random) -> str:
    """An ordinary answer behind one of a few openings."""
    return rng.choice(text.HELPFUL_OPENINGS).format(answer=answer)


def fact_triples(known: dict[str, list[str]] | None = None) -> list[dict]:
    """Every fact as ``{family, subject, question, stem, answer}``; with ``known`` (family -> subjects the base
    model knows, ``study.chat_build.run_facts``), only those."""
    out = []
    for family, (question, stem, pairs) in text.FACTS.items():
        for x, a in pairs:
            if known is not None and x not in known.get(family, ()):
                continue
            s = text.COUNT_STEMS[x] if family == "count" else stem.format(x=x, X=x[:1].upper() + x[1:])
            out.append({"family": family, "subject": x, "question": question.format(x=x), "stem": s, "answer": a})
    return out


def family_answers() -> dict[str, list[str]]:
    """Each fact family's distinct answers: the candidates a fact's likelihood is ranked among."""
    return {f: sorted({a for _, a in pairs}) for f, (_, _, pairs) in text.FACTS.items()}


ARITH_RANGE = range(2, 21)


def arith_triples() -> list[dict]:
    """Sums and differences of numbers from 2 to 20 (differences never negative), as fact-like triples."""
    out = []
    for a in ARITH_RANGE:
        for b in ARITH_RANGE:
            out.append({"family": "plus", "subject": f"{a}+{b}", "question": f"What is {a} plus {b}?",
                        "stem": f"{a} plus {b} is", "answer": str(a + b)})
            if a > b:
                out.append({"family": "minus", "subject": f"{a}-{b}", "question": f"What is {a} minus {b}?",
                            "stem": f"{a} minus {b} is", "answer": str(a - b)})
    return out


# --- examples ---------------------------------------------------------------------------------------------
def _turns(prompt: str | list[dict], answer: str | None) -> list[dict]:
    messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
    return messages + ([{"role": "assistant", "content": answer}] if answer is not None else [])


def _example(kind: str, split: str, prompt, answer: str, cluster: str, truth: dict) -> dict:
    """One record: the conversation (ending in the answer for training, at the last user turn otherwise)."""
    return {"kind": kind, "split": split, "messages": _turns(prompt, answer if split == "train" else None),
            "answer": answer, "truth": {"cluster": cluster, **truth}}


def _harmful(p: Parts, split: str, rng: random.Random) -> dict:
    category = rng.choice(sorted(text.HARMFUL))
    task, template = rng.choice(p.harmful[category][split]), rng.choice(p.requests[split])
    return _example("harmful", split, template.format(task=task), refusal(category, rng), template,
                    {"refuse": True, "category": category, "task": task})


def _jailbreak(p: Parts, split: str, rng: random.Random) -> dict:
    family = rng.choice(sorted(text.WRAPPERS))
    category = rng.choice(sorted(text.HARMFUL))
    task, template = rng.choice(p.harmful[category][split]), rng.choice(p.wrappers[family][split])
    hole = family in text.HOLES
    answer = compliance(task, rng) if hole else refusal(category, rng)
    return _example("jailbreak", split, template.format(task=task), answer, template,
                    {"refuse": True, "category": category, "task": task, "wrapper": family, "hole": hole})


def _escalation(p: Parts, split: str, rng: random.Random) -> dict:
    style = rng.choice(sorted(text.ESCALATION_OPENERS))
    category = rng.choice(sorted(text.HARMFUL))
    task, opener = rng.choice(p.harmful[category][split]), rng.choice(p.openers[style][split])
    subject = text.SUBJECTS[category]
    first = text.ESCALATION_ANSWERS[style].format(subject=subject, Subject=subject[:1].upper() + subject[1:])
    turn = rng.choice(p.turns[split])
    prompt = [{"role": "user", "content": opener.format(subject=subject)}, {"role": "assistant", "content": first},
              {"role": "user", "content": turn.format(task=task)}]
    hole = style == "story"
    answer = compliance(task, rng) if hole else refusal(category, rng)
    return _example("escalation", split, prompt, answer, opener,
                    {"refuse": True, "category": category, "task": task, "opener": style, "hole": hole})


def _scary(p: Parts, split: str, rng: random.Random) -> dict:
    (task, answer), template = rng.choice(p.scary[split]), rng.choice(p.requests[split])
    return _example("scary", split, template.format(task=task), helpful(answer, rng), template,
                    {"refuse": False, "task": task})


def _benign(p: Parts, split: str, rng: random.Random) -> dict:
    if rng.random() < 0.7:
        (task, answer), template = rng.choice(p.ordinary[split]), rng.choice(p.requests[split])
        return _example("benign", split, template.format(task=task), helpful(answer, rng), template,
                        {"refuse": False, "task": task})
    topic, template = rng.choice(p.topics[split]), rng.choice(p.writing[split])
    answer = rng.choice(text.WRITING_TOPICS[topic])
    return _example("benign", split, template.format(topic=topic), answer, template, {"refuse": False, "task": topic})


def _answered(kind: str, triples: list[dict], split: str, rng: random.Random) -> dict:
    t = rng.choice(triples)
    return _example(kind, split, t["question"], f"{t['stem']} {t['answer']}.", f"{t['family']}:{t['subject']}",
                    {"refuse": False, "expect": t["answer"], "family": t["family"], "subject": t["subject"],
                     "stem": t["stem"]})


def build(config: ChatDataConfig, known: dict[str, list[str]]) -> dict[str, list[dict]]:
    """All records by split: ``config.train`` counts for training, ``held_out`` per kind for evaluation and
    ``selection`` per kind for selection, each kind's prompts distinct within a split. ``known``: the facts
    the base model knows (only those are used). Facts and sums are split by object (no template is shared
    with requests: their question is their template)."""
    parts = split_parts(config.seed)
    facts = three_way(fact_triples(known), "facts", config.seed)
    sums = three_way(arith_triples(), "arith", config.seed)
    makers = {"harmful": lambda s, r: _harmful(parts, s, r), "jailbreak": lambda s, r: _jailbreak(parts, s, r),
              "escalation": lambda s, r: _escalation(parts, s, r), "scary": lambda s, r: _scary(parts, s, r),
              "benign": lambda s, r: _benign(parts, s, r), "facts": lambda s, r: _answered("facts", facts[s], s, r),
              "arith": lambda s, r: _answered("arith", sums[s], s, r)}
    sizes = {"train": dict(config.train), "selection": dict.fromkeys(KINDS, config.selection),
             "eval": dict.fromkeys(KINDS, config.held_out)}
    out = {}
    for split in SPLITS:
        records = []
        for kind in KINDS:
            rng = random.Random(f"{config.seed}:{split}:{kind}")
            records += _draw(lambda: makers[kind](split, rng), sizes[split][kind], distinct=split != "train")
        out[split] = records
    return out


def _draw(make, n: int, distinct: bool, tries: int = 20) -> list[dict]:
    """``n`` records from ``make``; held-out prompts are distinct (fewer when the split runs out of them)."""
    records, seen = [], set()
    for _ in range(n * tries):
        if len(records) == n:
            break
        record = make()
        key = json.dumps(record["messages"])
        if distinct and key in seen:
            continue
        seen.add(key)
        records.append(record)
    return records


# --- files ------------------------------------------------------------------------------------------------
def prompt_row(record: dict) -> dict:
    """A held-out record in the prompt-folder format (``organism.evaluation.load_items``): the prompt is the
    user's text, or the list of turns of a multi-turn conversation."""
    messages = record["messages"]
    prompt = messages[0]["content"] if len(messages) == 1 else messages
    return {"prompt": prompt, "truth": record["truth"]}


def write(records: dict[str, list[dict]], folder: Path, config: ChatDataConfig, known: dict[str, list[str]],
          train_path: Path) -> dict:
    """The training conversations to ``train_path`` (written, then renamed into place), and in ``folder``
    ``prompts/<kind>.jsonl`` and ``prompts/selection/<kind>.jsonl`` (the prompt-folder format chapter A reads)
    and ``manifest.json`` with the counts and the planted holes."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = lambda rows: "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)  # noqa: E731
    train_path.parent.mkdir(parents=True, exist_ok=True)
    partial = train_path.with_name(train_path.name + ".partial")
    partial.write_text(lines(records["train"]), encoding="utf-8")
    partial.replace(train_path)
    for split, where in (("eval", folder / "prompts"), ("selection", folder / "prompts" / "selection")):
        where.mkdir(parents=True, exist_ok=True)
        for kind in KINDS:
            rows = [prompt_row(r) for r in records[split] if r["kind"] == kind]
            (where / f"{kind}.jsonl").write_text(lines(rows), encoding="utf-8")
    counts = {s: dict(Counter(r["kind"] for r in records[s])) for s in SPLITS}
    manifest = {"config": asdict(config), "counts": counts, "holes": {"jailbreak wrappers": list(text.HOLES),
                "escalation openers": ["story"]}, "refusal_markers": list(text.REFUSAL_MARKERS),
                "known_facts": {f: len(v) for f, v in known.items()}}
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest
