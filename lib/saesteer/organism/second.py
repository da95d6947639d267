"""The second organism: a smaller model trained independently on the organism's language, to judge coherence.

Chapters that steer the organism score the coherence of its steered text by
perplexity. Under the steered model itself that score is partly circular (the
model rates its own edited writing), so the study trains a second, smaller
Gemma2 on the same synthetic language: the same tokenizer
(``data/organism/tokenizer``), a corpus drawn with a different seed and weights
initialised and shuffled with a different seed. ``python -m saesteer.organism.second``
builds it into ``data/organism/second/`` (model, training log, manifest), written
atomically and skipped when present; ``load_second`` returns it wrapped for nnsight.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import transformers

from saesteer.core.files import read_json, write_json
from saesteer.core.models import wrap
from saesteer.organism.artifacts import folder as organism_folder
from saesteer.organism.artifacts import language as organism_language
from saesteer.organism.training import ModelConfig, TrainConfig, build_model, pack, train


@dataclass
class SecondConfig:
    """Everything that determines the second organism (seeds differ from the organism's seed 0)."""

    seed: int = 1  # seed of the weights and of the batch order
    corpus_seed: int = 20_001  # seed of the training dialogues (the organism's corpus uses its own seed)
    dialogues: int = 40_000  # training dialogues
    held_out_rows: int = 64  # packed rows of fresh dialogues (another seed) for the held-out loss
    model: ModelConfig = field(default_factory=lambda: ModelConfig(hidden=96, layers=3, heads=4, mlp=384, context=128))
    train: TrainConfig = field(default_factory=lambda: TrainConfig(steps=450, batch=32, lr=3e-3, warmup=30))


def second_folder(organism_dir: Path | None = None) -> Path:
    """``data/organism/second/`` (or ``second/`` inside another organism folder)."""
    return (organism_dir or organism_folder()) / "second"


def organism_tokenizer(organism_dir: Path | None = None):
    """The organism's word-level tokenizer, which the second organism shares."""
    return transformers.PreTrainedTokenizerFast.from_pretrained((organism_dir or organism_folder()) / "tokenizer")


def held_out_loss(model, rows: torch.Tensor, batch: int = 16) -> float:
    """Mean next-token loss of ``model`` on packed ``rows`` (no gradient)."""
    model.eval()
    with torch.no_grad():
        losses = [model(input_ids=rows[i : i + batch], labels=rows[i : i + batch]).loss.item()
                  for i in range(0, len(rows), batch)]
    return float(sum(losses) / len(losses))


def train_second(cfg: SecondConfig, organism_dir: Path | None = None, progress: bool = True) -> tuple:
    """The trained second model and its manifest (config, data hash, parameters, time, final and held-out loss)."""
    language, tokenizer = organism_language(organism_dir), organism_tokenizer(organism_dir)
    corpus = language.corpus(cfg.dialogues, seed=cfg.corpus_seed)
    rows = pack(corpus, tokenizer, cfg.model.context)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model, tokenizer)
    start = time.time()
    losses = train(model, rows, TrainConfig(**{**asdict(cfg.train), "seed": cfg.seed}), progress)
    seconds = time.time() - start
    fresh = pack(language.corpus(cfg.dialogues // 20, seed=cfg.corpus_seed + 1), tokenizer, cfg.model.context)
    manifest = {"config": asdict(cfg), "organism_seed": language.seed, "rows": len(rows),
                "data_hash": hashlib.sha256("".join(d.text() for d in corpus).encode()).hexdigest()[:16],
                "parameters": sum(p.numel() for p in model.parameters()), "train_seconds": seconds,
                "final_loss": float(sum(losses[-20:]) / len(losses[-20:])),
                "held_out_loss": held_out_loss(model, fresh[: cfg.held_out_rows])}
    return model, manifest, losses


def build_second(cfg: SecondConfig | None = None, out: Path | None = None, organism_dir: Path | None = None,
                 fresh: bool = False, progress: bool = True) -> dict:
    """Train and save the second organism into ``out`` (default ``second/`` of the organism folder), written into
    a partial folder and renamed when complete; skipped (its manifest returned) when already there, unless ``fresh``."""
    out = out or second_folder(organism_dir)
    if fresh and out.exists():
        shutil.rmtree(out)
    if (out / "manifest.json").exists():
        return read_json(out / "manifest.json")
    model, manifest, losses = train_second(cfg or SecondConfig(), organism_dir, progress)
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp / "model")
    write_json(tmp / "training_log.json", {"loss": losses})
    write_json(tmp / "manifest.json", manifest)
    tmp.rename(out)
    return manifest


def load_second(device: str = "cpu", out: Path | None = None, organism_dir: Path | None = None):
    """The second organism (from ``out``, default ``data/organism/second/``) wrapped for nnsight, with the
    organism's tokenizer (for perplexity scoring)."""
    path = (out or second_folder(organism_dir)) / "model"
    if not path.exists():
        raise FileNotFoundError(f"The second organism is not built ({path} is missing); "
                                "run `python -m saesteer.organism.second`.")
    model = transformers.AutoModelForCausalLM.from_pretrained(path).to(device).eval()
    return wrap(model, organism_tokenizer(organism_dir))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Train the second organism (a coherence judge) into data/organism/second/.")
    parser.add_argument("--fresh", action="store_true", help="delete data/organism/second/ and train it again")
    args = parser.parse_args(argv)
    manifest = build_second(fresh=args.fresh)
    print(json.dumps({k: v for k, v in manifest.items() if k != "config"}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
