"""Build the model organism: data, tokenizer, model, behaviour table, SAEs, probes, manifest.

``python -m saesteer.organism`` (``make organism``) runs every stage into
``data/organism/``. Each stage writes its artifact atomically and is skipped
when the artifact exists, so an interrupted build resumes; ``--fresh`` starts
over. Chapters read the result through ``organism.artifacts``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
import transformers

from saesteer.core import hooks
from saesteer.core.files import read_json, write_json
from saesteer.core.models import wrap
from saesteer.core.progress import bar
from saesteer.core.sae_training import (
    SAEConfig,
    collect,
    loss_recovered,
    reconstruction_stats,
    train_sae,
)
from saesteer.core.saes import load_sae
from saesteer.core.tokenizer import word_tokenizer
from saesteer.organism import evaluation
from saesteer.organism.artifacts import folder, organism_sae
from saesteer.organism.language import Language, vocabulary
from saesteer.organism.probes import probe_table
from saesteer.organism.training import (
    ModelConfig,
    TrainConfig,
    build_model,
    pack,
    train,
)

EVAL_KINDS = list(evaluation.METRICS)


@dataclass
class OrganismConfig:
    """Everything that determines the organism."""

    seed: int = 0  # seed of the language, the model and the SAEs
    dialogues: int = 120_000  # training dialogues
    eval_items: int = 300  # at most this many held-out items per kind
    model: ModelConfig = field(default_factory=lambda: ModelConfig(hidden=192, layers=6, heads=4, mlp=768, context=128))
    train: TrainConfig = field(default_factory=lambda: TrainConfig(steps=1400, batch=32, lr=2e-3, warmup=50))
    sae: SAEConfig = field(default_factory=lambda: SAEConfig(expansion=4, k=32, samples=1_200_000, batch=1024))
    attn_sae_expansion: int = 2  # attention outputs span fewer directions here: 4x left over a third of features dead
    sae_rows: int = 1600  # packed rows whose activations train the SAEs (1600 x 128 = 205k tokens)
    quality_rows: int = 96  # held-out packed rows for SAE quality


# --- stages -------------------------------------------------------------------------------
def build_data(cfg: OrganismConfig, out: Path):
    """Training corpus, tokenizer and the held-out evaluation sets (JSONL)."""
    language = Language(cfg.seed)
    corpus = language.corpus(cfg.dialogues)
    sets = {kind: language.eval_set(kind, cfg.eval_items) for kind in EVAL_KINDS}
    tokenizer = word_tokenizer(vocabulary(corpus))
    if not (out / "tokenizer").exists():
        tokenizer.save_pretrained(out / "tokenizer")
    for kind, dialogues in sets.items():  # always rewritten: cheap, and follows any change of the judges' truth
        lines = [json.dumps({"prompt": d.prompt(), "answer": d.answer(), "truth": d.truth}) for d in dialogues]
        path = out / "eval" / f"{kind}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines) + "\n")
    digest = hashlib.sha256("".join(d.text() for d in corpus).encode()).hexdigest()[:16]
    return language, corpus, sets, tokenizer, digest


def build_model_stage(cfg: OrganismConfig, corpus, tokenizer, out: Path):
    """Train the model (skipped when ``model/`` exists); returns it in eval mode."""
    if (out / "model").exists():
        return transformers.AutoModelForCausalLM.from_pretrained(out / "model").eval()
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model, tokenizer)
    rows = pack(corpus, tokenizer, cfg.model.context)
    start = time.time()
    losses = train(model, rows, cfg.train)
    write_json(out / "training_log.json", {"loss": losses, "seconds": time.time() - start, "rows": len(rows)})
    tmp = out / "model.partial"
    model.save_pretrained(tmp)
    tmp.rename(out / "model")
    return model.eval()


def build_saes(cfg: OrganismConfig, lm, corpus, out: Path) -> None:
    """One SAE per hook site (skipping those already saved), trained on activations of packed training rows."""
    sites = [s for s in hooks.all_sites(lm) if not (out / "saes" / s.slug).exists()]
    if not sites:
        return
    rows = pack(corpus, lm.tokenizer, cfg.model.context)[: cfg.sae_rows]
    for layer in sorted({s.layer for s in sites}):  # one layer at a time keeps memory small
        layer_sites = [s for s in sites if s.layer == layer]
        acts = collect(lm, rows, layer_sites)
        for site in bar(layer_sites, f"SAEs of layer {layer}"):
            expansion = cfg.attn_sae_expansion if site.position == "attn_out" else cfg.sae.expansion
            sae = train_sae(acts[site], replace(cfg.sae, seed=cfg.seed + layer, expansion=expansion))
            tmp = out / "saes" / f"{site.slug}.partial"
            sae.save_model(str(tmp))
            tmp.rename(out / "saes" / site.slug)


def sae_quality(cfg: OrganismConfig, lm, language: Language, out: Path) -> dict:
    """FVU, L0, dead fraction and loss recovered of every SAE on held-out dialogues."""
    held_out = [d for kind in EVAL_KINDS for d in language.eval_set(kind, 100, seed=7)]
    rows = pack(held_out, lm.tokenizer, cfg.model.context)[: cfg.quality_rows]
    table = {}
    for site in bar(hooks.all_sites(lm), "SAE quality"):
        sae = load_sae(path=str(out / "saes" / site.slug))
        acts = collect(lm, rows, [site])[site]
        table[str(site)] = {**reconstruction_stats(sae, acts), **loss_recovered(lm, sae, site, rows)}
    return table


def behaviour(lm, sets) -> dict:
    """The behaviour table (rates with 95% intervals) without answers."""
    report = evaluation.evaluate(lm, sets, progress=True)
    per_item = ("answers", "hits", "cluster")
    return {kind: {k: v for k, v in r.items() if k not in per_item} | {"examples": r["answers"][:3]}
            for kind, r in report.items()}


def build(cfg: OrganismConfig, out: Path, fresh: bool = False) -> dict:
    """Run every stage; returns the manifest (also written to ``manifest.json``)."""
    if fresh and out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.time()
    language, corpus, sets, tokenizer, digest = build_data(cfg, out)
    model = build_model_stage(cfg, corpus, tokenizer, out)
    lm = wrap(model, tokenizer)
    if not (out / "behaviour.json").exists():
        write_json(out / "behaviour.json", behaviour(lm, sets))
    build_saes(cfg, lm, corpus, out)
    if not (out / "sae_quality.json").exists():
        write_json(out / "sae_quality.json", sae_quality(cfg, lm, language, out))
    if not (out / "probes.json").exists():
        write_json(out / "probes.json", probe_table(lm, language, lambda site: organism_sae(site, out)))
    previous = read_json(out / "manifest.json") if (out / "manifest.json").exists() else {}
    manifest = {"config": asdict(cfg), "data_hash": digest, "vocab_size": len(tokenizer),
                "parameters": sum(p.numel() for p in model.parameters()), "build_seconds_last_run": time.time() - start,
                "fresh_build_seconds": time.time() - start if fresh else previous.get("fresh_build_seconds"),
                "behaviour": {k: {m: v[m] for m in ("metric", "rate", "lo", "hi", "n")}
                              for k, v in read_json(out / "behaviour.json").items()}}
    write_json(out / "manifest.json", manifest)
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the model organism into data/organism/.")
    parser.add_argument("--fresh", action="store_true", help="delete data/organism/ and rebuild everything")
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    manifest = build(OrganismConfig(), folder(), fresh=args.fresh)
    print(json.dumps(manifest["behaviour"], indent=1))
    return 0
