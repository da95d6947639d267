"""JumpReLU SAEs on the organism's residual stream, beside its TopK ones (chapter B's comparison).

A TopK SAE always fires its k largest pre-activations, so the encoder bias
alone can never dominate a code; a JumpReLU SAE (Gemma Scope's architecture)
fires a feature whenever its pre-activation passes a learned threshold, so a
small input can be decoded by its bias. ``python -m saesteer.organism.jumprelu``
trains one per ``resid_post`` layer with sae-lens on the same packed training
rows as the TopK SAEs and writes ``data/organism/saes_jumprelu/<site slug>/``
(sae-lens format) and ``quality.json`` (FVU, L0, dead share, loss recovered,
and the code of encode(0)).

The recipe follows the study's Gemma 3 build: activations are centred on their
mean and scaled to mean distance sqrt(d) (``<bos>`` left out, its norm is an
outlier); the thresholds start at each feature's pre-activation quantile for
the target L0; the quadratic L0 penalty holds L0 near the target; the
normalisation is folded back with ``fold_activation_whitening`` so the saved
SAE reads raw activations.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from sae_lens import SAE, LoggingConfig
from sae_lens.config import SAETrainerConfig
from sae_lens.saes.jumprelu_sae import JumpReLUTrainingSAE, JumpReLUTrainingSAEConfig
from sae_lens.training.sae_trainer import SAETrainer

from saesteer.core.files import write_json
from saesteer.core.hooks import Site
from saesteer.core.progress import bar
from saesteer.core.sae_training import collect, loss_recovered, reconstruction_stats, shuffled_batches
from saesteer.organism import artifacts
from saesteer.organism.training import pack


@dataclass(frozen=True)
class JumpReLUConfig:
    """Everything that decides the JumpReLU SAEs (written to ``quality.json``)."""

    layers: tuple[int, ...] = (0, 1, 2, 3, 4, 5)  # resid_post layers
    expansion: int = 4  # d_sae = expansion * d_in, as the TopK SAEs
    target_l0: float = 32.0  # the quadratic L0 target: the TopK SAEs' k
    l0_coefficient: float = 1.0
    pre_act_loss_coefficient: float = 0.1  # pulls dead features back toward their thresholds
    samples: int = 400_000  # training activations per SAE (FVU 0.09 at 200k, layer 3)
    batch: int = 1024
    lr: float = 1e-3
    rows: int = 1600  # packed training rows (the TopK SAEs' ``sae_rows``)
    quality_rows: int = 96  # held-out packed rows for the quality table
    seed: int = 0
    dialogues: int | None = None  # training dialogues packed into rows; None: the organism manifest's count


def out_dir() -> Path:
    """``data/organism/saes_jumprelu/``."""
    return artifacts.folder() / "saes_jumprelu"


def jumprelu_sae(site: Site, folder: Path | None = None) -> SAE:
    """The organism's JumpReLU SAE at ``site``."""
    path = (folder or out_dir()) / site.slug
    if not (path / "cfg.json").is_file():
        raise FileNotFoundError(f"No JumpReLU SAE at {path}; build it with `python -m saesteer.organism.jumprelu`.")
    return SAE.load_from_disk(str(path)).eval()


def real_tokens(lm, rows: torch.Tensor, site: Site) -> torch.Tensor:
    """Activations [tokens, d] at ``site`` of every token of ``rows`` except ``<bos>``."""
    acts = collect(lm, rows, [site])[site]
    return acts[(rows != lm.tokenizer.bos_token_id).flatten()]


def normaliser(x: torch.Tensor) -> tuple[torch.Tensor, float]:
    """(mean, scale) that centre ``x`` and give its tokens mean distance sqrt(d) from the mean."""
    mean = x.mean(0)
    return mean, x.shape[-1] ** 0.5 / (x - mean).norm(dim=-1).mean().item()


def fresh_sae(x: torch.Tensor, cfg: JumpReLUConfig) -> JumpReLUTrainingSAE:
    """A sae-lens JumpReLU training SAE whose thresholds start at each feature's quantile that fires it on a
    ``target_l0 / d_sae`` share of ``x`` (normalised tokens), so every feature starts alive at the target L0."""
    d_in = x.shape[-1]
    sae = JumpReLUTrainingSAE(JumpReLUTrainingSAEConfig(
        d_in=d_in, d_sae=cfg.expansion * d_in, jumprelu_sparsity_loss_mode="quadratic", target_l0=cfg.target_l0,
        l0_coefficient=cfg.l0_coefficient, jumprelu_ste_to_input=True, pre_act_loss_coefficient=cfg.pre_act_loss_coefficient))
    with torch.no_grad():
        _, pre = sae.encode_with_hidden_pre(x[:4096])
        sae.threshold.data.copy_(torch.quantile(pre.float(), 1 - cfg.target_l0 / pre.shape[-1], dim=0).clamp(min=0.0))
    return sae


def train_jumprelu(acts: torch.Tensor, cfg: JumpReLUConfig, seed: int) -> SAE:
    """Train on raw activations [tokens, d] (normalised inside, folded back); returns the inference SAE."""
    torch.manual_seed(seed)
    mean, scale = normaliser(acts)
    x = (acts - mean) * scale
    sae = fresh_sae(x, cfg)
    trainer_cfg = SAETrainerConfig(
        total_training_samples=cfg.samples, train_batch_size_samples=cfg.batch, lr=cfg.lr, lr_end=cfg.lr / 10,
        lr_scheduler_name="cosineannealing", lr_warm_up_steps=10, logger=LoggingConfig(log_to_wandb=False),
        n_batches_for_norm_estimate=1, dead_feature_window=100, feature_sampling_window=200)
    trained = SAETrainer(trainer_cfg, sae, shuffled_batches(x, cfg.batch, seed)).fit()
    eye = torch.eye(acts.shape[-1])
    trained.fold_activation_whitening(mean=mean, whitening_matrix=eye * scale, unwhitening_matrix=eye / scale)
    with tempfile.TemporaryDirectory() as folder:
        trained.save_inference_model(folder)
        return SAE.load_from_disk(folder).eval()


def zero_code(sae: SAE, real: torch.Tensor) -> dict[str, float]:
    """What encode(0) gives (the bias alone): active features, largest code, and that code over the median
    nonzero code on real tokens (how large a "bias feature" is next to ordinary codes)."""
    with torch.no_grad():
        zero = sae.encode(torch.zeros(1, sae.cfg.d_in))[0]
        codes = sae.encode(real)
    typical = codes[codes > 0].median().item() if (codes > 0).any() else float("nan")
    return {"zero_l0": int((zero > 0).sum()), "zero_max": float(zero.max()), "real_median_code": typical,
            "zero_max_over_median": float(zero.max()) / typical}


def quality(lm, sae: SAE, site: Site, rows: torch.Tensor) -> dict:
    """FVU, L0, dead share, next-token loss recovered and the encode(0) numbers on held-out rows."""
    real = real_tokens(lm, rows, site)
    return {**reconstruction_stats(sae, real), **loss_recovered(lm, sae, site, rows), **zero_code(sae, real)}


def heldout_rows(lm, language, n_rows: int) -> torch.Tensor:
    """Packed rows of held-out dialogues of every kind (as the organism's own SAE quality table)."""
    kinds = ("harmful", "jailbreak", "escalation", "benign", "scary", "mc", "arith", "truthful", "topic", "ab")
    return pack([d for kind in kinds for d in language.eval_set(kind, 100, seed=7)], lm.tokenizer, 128)[:n_rows]


def build(cfg: JumpReLUConfig, folder: Path | None = None, force: bool = False) -> dict:
    """Train (unless saved and not ``force``) and measure one JumpReLU SAE per layer of ``cfg.layers``;
    writes ``quality.json`` beside them and returns its content."""
    folder = folder or out_dir()
    lm, language = artifacts.load_organism(), artifacts.language()
    n = cfg.dialogues or artifacts.manifest()["config"]["dialogues"]
    rows = pack(language.corpus(n), lm.tokenizer, 128)[:cfg.rows]
    held = heldout_rows(lm, language, cfg.quality_rows)
    table, start = {}, time.time()
    for layer in bar(cfg.layers, "JumpReLU SAEs"):
        site = Site(layer)
        if force or not (folder / site.slug / "cfg.json").is_file():
            sae = train_jumprelu(real_tokens(lm, rows, site), cfg, cfg.seed + layer)
            folder.mkdir(parents=True, exist_ok=True)
            sae.save_model(str(folder / f"{site.slug}.partial"))
            (folder / f"{site.slug}.partial").rename(folder / site.slug)
        table[str(site)] = quality(lm, jumprelu_sae(site, folder), site, held)
    summary = {"config": asdict(cfg), "seconds": time.time() - start, "quality": table}
    write_json(folder / "quality.json", summary)
    return summary


def main(argv: list[str] | None = None) -> int:
    """``python -m saesteer.organism.jumprelu [--layers 2 3] [--force]``: build the JumpReLU SAEs."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--layers", type=int, nargs="*", help="resid_post layers (default: every layer)")
    parser.add_argument("--samples", type=int, help="training activations per SAE")
    parser.add_argument("--force", action="store_true", help="retrain SAEs that exist")
    args = parser.parse_args(argv)
    changes = {k: v for k, v in {"layers": tuple(args.layers or ()), "samples": args.samples}.items() if v}
    summary = build(JumpReLUConfig(**changes), force=args.force)
    for site, q in summary["quality"].items():
        print(f"{site}: FVU {q['fvu']:.3f}, L0 {q['l0']:.1f}, dead {q['dead']:.1%}, loss recovered {q['loss_recovered']:.3f}, "
              f"encode(0): {q['zero_l0']} active, largest code {q['zero_max']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
