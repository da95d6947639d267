"""Benchmark of chapter A's evaluation: a clamp sweep batched along rows against one prompt at a time.

Both runs call the same ``evaluation.sweep`` on the same held-out items and clamp
values; only the number of rows per generate call differs. Prints the two times
side by side, their ratio, and whether the answers agree. On the organism (default) or on the chat
model (``--model gemma3-270m-chat``: Gemma 3 270M's chat fine-tune with its TopK SAE, in bfloat16, on the chat
dataset's held-out prompts in the turn format, as chapter A's parameter file runs it; needs ``make gemma3-chat``
and ``make gemma3-chat-saes``).

    python benchmarks/refusal_sweep.py [--model organism|gemma3-270m-chat] [--items 16] [--batch-size 256]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from saesteer.core.hooks import Site
from saesteer.core.interventions import Clamp
from saesteer.organism import evaluation
from saesteer.organism.artifacts import load_organism, organism_sae
from saesteer.study.subjects import Subject, load_subject

KINDS = {"organism": ("harmful", "jailbreak", "scary", "arith", "topic"),
         "gemma3-270m-chat": ("harmful", "jailbreak", "scary", "facts", "arith")}
MULTIPLES = (float("nan"), 0.5, 1.0, 2.0, 4.0, 8.0)  # NaN: the unsteered baseline row


def subject_site_sae(model: str):
    """The subject, the steered site and its SAE: the organism at layer 2, or the chat model at layer 8 loaded
    by chapter A's parameter file."""
    if model == "organism":
        site = Site(2)
        return Subject(load_organism(), {"prompts": "organism", "chat_template": False}), site, organism_sae(site)
    from saesteer.chapters.intro import expected_params

    root = Path(__file__).resolve().parents[1]
    params = expected_params(root / "notebooks" / "refusal_steering.ipynb",
                             root / "notebooks" / "params" / "refusal_steering" / f"{model}.yaml")
    subject, site = load_subject(params), Site(8)
    return subject, site, subject.sae(site)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(KINDS), default="organism", help="the subject")
    parser.add_argument("--items", type=int, default=16, help="held-out items per kind")
    parser.add_argument("--batch-size", type=int, default=256, help="rows per generate call in the batched run")
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    subject, site, sae = subject_site_sae(args.model)
    lm, feature, kinds = subject.lm, 0, KINDS[args.model]
    sets = subject.eval_sets(kinds, args.items)
    values = torch.tensor(MULTIPLES)[:, None] * 5.0

    def edits_for(rows, _items):
        return [Clamp(site=site, sae=sae, features=[feature], value=values[rows])]

    timings, answers = {}, {}
    for name, batch in [("batched", args.batch_size), ("one at a time", 1)]:
        start = time.perf_counter()
        reports = evaluation.sweep(lm, sets, len(MULTIPLES), edits_for, batch_size=batch, progress=False)
        timings[name] = time.perf_counter() - start
        answers[name] = [[r[k]["answers"] for k in kinds] for r in reports]
    rows = len(MULTIPLES) * sum(map(len, sets.values()))
    print(f"{args.model} clamp sweep: {len(MULTIPLES)} settings x {sum(map(len, sets.values()))} held-out items = {rows} generations")
    for name, seconds in timings.items():
        print(f"  {name:>14}: {seconds:7.1f} s  ({rows / seconds:6.1f} generations/s)")
    pairs = list(zip(flat(answers["batched"]), flat(answers["one at a time"])))
    print(f"  batched is {timings['one at a time'] / timings['batched']:.1f}x faster (target: at least 5x); "
          f"identical answers: {sum(a == b for a, b in pairs)} of {len(pairs)} (bfloat16 rounds differently in "
          "batches of other shapes, which can flip a greedy token)")


def flat(answers: list[list[list[str]]]) -> list[str]:
    """Every answer of every setting and kind, in one list."""
    return [a for setting in answers for kind in setting for a in kind]


if __name__ == "__main__":
    main()
