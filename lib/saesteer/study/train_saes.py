"""SAEs that no one publishes, trained with sae-lens on a text file: Phi-3 Mini's residual SAEs (chapter A) and
Gemma-2-2B's attention-output SAEs (chapter C).

``python -m saesteer.study.train_saes --model ID --hook resid_post --layers 4 6 --text FILE --out 'DIR/{position}_{layer}'``
trains one SAE per layer at the hook, all in lockstep from one activation stream, with the recipe the study uses for
its own Gemma 3 270M SAEs (``gemma3.saes``): each site centred on its mean and rescaled, tokens far from the mean
left out, sae-lens's ``MultiSAETrainer`` (TopK with ``k``, or JumpReLU with a target L0), the normalisation folded
into the saved weights so the SAE reads raw activations. Each SAE is saved as a sae-lens directory at ``--out``
with ``{position}`` and ``{layer}`` filled in, the form the parameter files' ``sae_path`` / ``attn_sae_path`` load.
An existing SAE directory is kept unless ``--force``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
from sae_lens.training.multi_sae_trainer import MultiSAETrainer

from saesteer.core.files import fill, read_documents
from saesteer.core.hooks import POSITIONS, Site, hidden_size, n_layers
from saesteer.core.models import load_model
from saesteer.gemma3.build import save_sae, start_thresholds
from saesteer.gemma3.saes import (
    BuildConfig,
    SAESpec,
    activation_stream,
    estimate_norms,
    source_rows,
    trainer_config,
    training_sae,
)
from saesteer.study.budget import GIB, sae_state_bytes


def plan(model_layers: int, k: int, width: int, tokens: int, batch: int, context: int, lr: float, target_l0: float,
         seed: int) -> BuildConfig:
    """The training settings as ``gemma3.saes.BuildConfig`` (its layer plan left empty: the sites are given here);
    each chunk of 128 rows yields as many batches as 82% of its tokens fill."""
    per_chunk = max(1, int(0.82 * 128 * (context - 1)) // batch)
    return BuildConfig(n_layers=model_layers, band=(0, 0), topk_layers=(), width=width, k=k, samples=tokens,
                       batch=batch, lr=lr, context=context, batches_per_chunk=per_chunk, target_l0=target_l0,
                       checkpoints=0, seed=seed, jumprelu=False)


def train(model: str, position: str, layers: list[int], text: str | Path, out: str, architecture: str = "topk",
          k: int = 32, expansion: int = 8, width: int | None = None, tokens: int = 500_000, batch: int = 1024,
          context: int = 128, lr: float = 1e-3, target_l0: float = 60.0, device: str = "auto", dtype: str = "float32",
          seed: int = 0, force: bool = False) -> list[Path]:
    """Train one SAE per layer at ``position`` on ``tokens`` activations each (from the documents of ``text``) and save
    them at ``out`` (``{position}`` and ``{layer}`` filled in); returns the directories written."""
    targets = {layer: fill(out, layer=layer, position=position) for layer in layers}
    todo = [layer for layer, path in targets.items() if force or not (path / "cfg.json").is_file()]
    if not todo:
        print("every SAE exists already (pass --force to retrain)")
        return []
    lm = load_model(model, device, dtype)
    depth, d_in = n_layers(lm), hidden_size(lm)
    bad = [layer for layer in todo if not 0 <= layer < depth]
    if bad:
        raise ValueError(f"Layer {bad[0]} is outside 0-{depth - 1}: {model} has {depth} layers.")
    cfg = plan(depth, k, width or expansion * d_in, tokens, batch, context, lr, target_l0, seed)
    if cfg.architecture_problem():
        raise ValueError(cfg.architecture_problem())
    sites = [Site(layer, position) for layer in sorted(todo)]
    specs = [SAESpec(site, architecture) for site in sites]
    print(f"{len(specs)} {architecture} SAEs of {cfg.width:,} features on {d_in}-d {position}: "
          f"{sae_state_bytes(len(specs), d_in, cfg.width) / GIB:.1f} GiB of SAE training state, {cfg.train_rows() * context:,} tokens forwarded")
    rows = source_rows(read_documents(text), lm.tokenizer, cfg.train_rows() + cfg.norm_rows, context, seed)
    if len(rows) < cfg.train_rows() + cfg.norm_rows:
        raise ValueError(f"{text} has too few tokens for {tokens:,} training activations ({len(rows)} rows of {context} "
                         f"tokens, {cfg.train_rows() + cfg.norm_rows:,} needed): give more text or fewer --tokens.")
    norm_rows, train_rows = rows[: cfg.norm_rows], rows[cfg.norm_rows:]
    norms = estimate_norms(lm, norm_rows, sites, cfg.outlier_factor)
    torch.manual_seed(seed)
    saes = {spec.name: training_sae(spec, d_in, cfg) for spec in specs}
    start_thresholds(saes, specs, lm, norm_rows, norms, cfg)
    started = time.time()
    with tempfile.TemporaryDirectory() as checkpoints:
        trainer = MultiSAETrainer(trainer_config(cfg, torch.device(lm.device).type, Path(checkpoints)), saes,
                                  {spec.name: str(spec.site) for spec in specs}, activation_stream(lm, train_rows, norms, cfg))
        trained = trainer.fit()
    written = []
    for spec in specs:
        norms[spec.site].fold_into(trained[spec.name])
        save_sae(trained[spec.name], targets[spec.site.layer])
        written.append(targets[spec.site.layer])
    print(f"trained in {time.time() - started:.0f} s; saved {', '.join(map(str, written))}")
    return written


def parser() -> argparse.ArgumentParser:
    """The command line of ``main``."""
    p = argparse.ArgumentParser(prog="python -m saesteer.study.train_saes", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="hub id, local directory or tiny:<family>")
    p.add_argument("--hook", required=True, choices=POSITIONS, help="the site of every layer")
    p.add_argument("--layers", required=True, type=int, nargs="+")
    p.add_argument("--text", required=True, help="training text, one document a line")
    p.add_argument("--out", required=True, help="SAE directory template with {position} and {layer}")
    p.add_argument("--architecture", default="topk", choices=("topk", "jumprelu"))
    p.add_argument("--k", type=int, default=32, help="TopK's active features")
    p.add_argument("--expansion", type=int, default=8, help="features per input dimension (unless --width)")
    p.add_argument("--width", type=int, default=None, help="features per SAE")
    p.add_argument("--target-l0", type=float, default=60.0, help="JumpReLU's target L0")
    p.add_argument("--tokens", type=int, default=500_000, help="training activations per SAE")
    p.add_argument("--batch", type=int, default=1024)
    p.add_argument("--context", type=int, default=128, help="tokens per row")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--force", action="store_true", help="retrain SAEs that exist")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        train(args.model, args.hook, args.layers, args.text, args.out, args.architecture, args.k, args.expansion,
              args.width, args.tokens, args.batch, args.context, args.lr, args.target_l0, args.device, args.dtype,
              args.seed, args.force)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
