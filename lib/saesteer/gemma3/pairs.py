"""Contrastive pairs in English for chapter B on Gemma 3 270M (a base model), written from templates.

Two behaviours a pretrained 270M model visibly expresses, each a choice of the next word:

- ``sentiment``: a neutral lead-in to a verdict on an outing ("I went to see the film last night.
  Honestly, it was"), answered by a positive adjective (" wonderful") or a negative one (" awful");
- ``wedding``: a sentence that names an event or a person ("Everyone arrived early for the"), answered
  by a wedding word (" wedding", " bride") or an everyday one (" meeting", " manager"), the topic of
  ActAdd's "weddings" vector.

A pair is ``{"prompt", "positive", "negative", "split", "cluster"}`` (``analyses.decomposition.Pair``);
the cluster is the template, so pairs sharing a template are resampled together. Held-out pairs use
templates *and* fillers (objects, names) that no selection pair uses, so evaluation measures
generalisation to new sentences. ``python -m saesteer.gemma3.pairs`` writes
``data/gemma3/pairs/<behaviour>.jsonl`` and a manifest of counts; the same seed gives the same files.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
from dataclasses import dataclass
from pathlib import Path

from saesteer.core.files import repo_root, write_json


@dataclass(frozen=True)
class Behaviour:
    """Templates (with ``{x}`` filled from ``fillers``) and the positive / negative answer words."""

    selection_templates: tuple[str, ...]
    eval_templates: tuple[str, ...]
    selection_fillers: tuple[str, ...]
    eval_fillers: tuple[str, ...]
    answers: tuple[tuple[str, str], ...]  # (positive, negative) first words, each a distinct first token


OUTINGS = ("the film", "the new restaurant downtown", "the concert", "the hotel", "the play", "the museum",
           "the cafe on the corner", "the new album", "the football match", "the art exhibition",
           "the boat trip", "the cooking class", "the comedy show", "the theme park", "the opera",
           "the food market", "the ballet", "the guided tour", "the jazz club", "the pottery workshop")

SENTIMENT = Behaviour(
    selection_templates=(
        "I went to see {x} last night. Honestly, it was",
        "We tried {x} this weekend, and I have to say it was",
        "Everyone asked me how {x} was. I told them it was",
        "After all the hype, {x} turned out to be",
        "The critics agreed that {x} was",
        "Looking back, I would describe {x} as",
        "My friend recommended {x}, and it was",
        "In one word, {x} was",
    ),
    eval_templates=(
        "Our family finally visited {x}. We all thought it was",
        "I have been thinking about {x} since Sunday. It was",
        "If you ask me, {x} was simply",
        "My neighbour wanted to know about {x}, so I said it was",
        "Nobody expected much from {x}, but it was",
        "To sum up my evening at {x}: it was",
        "The second time we went to {x}, it was just as",
        "When people mention {x}, I remember that it was",
    ),
    selection_fillers=OUTINGS[:14],
    eval_fillers=OUTINGS[14:],
    answers=((" wonderful", " awful"), (" great", " terrible"), (" excellent", " dreadful"),
             (" lovely", " horrible"), (" fantastic", " disappointing"), (" delightful", " miserable")),
)

NAMES = ("Anna", "Tom", "Maria", "James", "Priya", "Lucas", "Sofia", "Daniel", "Grace", "Omar",
         "Ellen", "Victor", "Ruth", "Samuel", "Nora", "Felix")

WEDDING = Behaviour(
    selection_templates=(
        "Last Saturday, {x} and the whole family drove out to the",
        "{x} could not stop talking about the",
        "{x} bought new shoes for the",
        "Everyone, even {x}, arrived early for the",
        "{x} took the afternoon off to attend the",
        "{x} showed me the photos from the",
        "At dinner, {x} sat next to the",
        "{x} said the flowers were chosen by the",
    ),
    eval_templates=(
        "{x} spent the whole morning getting ready for the",
        "The cake was the best part of the day, {x} said after the",
        "{x} was nervous before the",
        "A short speech about {x} was given by the",
        "{x} wore a blue dress to the",
        "{x} said the music was loud at the party after the",
        "{x} sent the invitations for the",
        "Two hundred guests, {x} among them, came to the",
    ),
    selection_fillers=NAMES[:12],
    eval_fillers=NAMES[12:],
    answers=((" wedding", " meeting"), (" wedding", " conference"), (" wedding", " lecture"),
             (" bride", " manager"), (" groom", " teacher"), (" ceremony", " game")),
)

BEHAVIOURS = {"sentiment": SENTIMENT, "wedding": WEDDING}


def pairs(behaviour: Behaviour, seed: int = 0) -> list[dict]:
    """Every template x filler x answer pair, selection templates with selection fillers and held-out
    templates with held-out fillers; shuffled with ``seed`` within each split (the chapter takes the first
    n of a split)."""
    rng = random.Random(seed)
    out = []
    for split, templates, fillers in (("selection", behaviour.selection_templates, behaviour.selection_fillers),
                                      ("eval", behaviour.eval_templates, behaviour.eval_fillers)):
        rows = [{"prompt": t.format(x=f), "positive": pos, "negative": neg, "split": split, "cluster": f"template {i}"}
                for (i, t), f, (pos, neg) in itertools.product(enumerate(templates), fillers, behaviour.answers)]
        if split == "eval":
            for row in rows:
                row["cluster"] = f"held-out template {row['cluster'].split()[-1]}"
        rng.shuffle(rows)
        out += rows
    return out


def folder() -> Path:
    """``data/gemma3/pairs/``: the committed pair files and their manifest."""
    return repo_root() / "data" / "gemma3" / "pairs"


def write(out: Path | None = None, seed: int = 0) -> dict:
    """Write ``<behaviour>.jsonl`` for every behaviour and ``manifest.json`` (counts per split)."""
    out = out or folder()
    out.mkdir(parents=True, exist_ok=True)
    manifest = {"seed": seed, "behaviours": {}}
    for name, behaviour in BEHAVIOURS.items():
        rows = pairs(behaviour, seed)
        (out / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        manifest["behaviours"][name] = {split: {"pairs": sum(r["split"] == split for r in rows),
                                                "clusters": len({r["cluster"] for r in rows if r["split"] == split})}
                                        for split in ("selection", "eval")}
    write_json(out / "manifest.json", manifest)
    return manifest


def main(argv: list[str] | None = None) -> int:
    """``python -m saesteer.gemma3.pairs [--out DIR]``: write the pair files."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--out", type=Path, default=None, help="folder (default data/gemma3/pairs/)")
    args = parser.parse_args(argv)
    print(json.dumps(write(args.out), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
