"""SAEs for the organism: activations collected with nnsight, trained with sae-lens, measured.

``collect`` reads every requested hook site in one nnsight forward pass per
batch of packed token rows; ``train_sae`` feeds those activations to sae-lens's
``SAETrainer``; ``quality`` reports fraction of variance unexplained, L0, the
dead-feature fraction and the next-token loss recovered when the SAE's
reconstruction replaces the activation (against zero ablation).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from sae_lens import SAE, LoggingConfig
from sae_lens.config import SAETrainerConfig
from sae_lens.saes.jumprelu_sae import JumpReLUTrainingSAE, JumpReLUTrainingSAEConfig
from sae_lens.saes.topk_sae import TopKTrainingSAE, TopKTrainingSAEConfig
from sae_lens.training.sae_trainer import SAETrainer

from saesteer.core.hooks import Site
from saesteer.core.interventions import Ablate, Reconstruct, batches, forward_with_edits, read_activations


@dataclass
class SAEConfig:
    """Architecture and training of every organism SAE."""

    architecture: str = "topk"  # "topk" or "jumprelu"
    expansion: int = 8  # d_sae = expansion * d_in
    k: int = 16  # TopK sparsity (topk only)
    samples: int = 600_000  # activations seen in training (several passes over the collected ones)
    batch: int = 4096  # activations per step
    lr: float = 4e-4
    seed: int = 0


def collect(model, rows: torch.Tensor, sites: Sequence[Site], batch_size: int = 64) -> dict[Site, torch.Tensor]:
    """Activations at ``sites`` for every token of the packed ``rows`` [n_rows, context] -> {site: [tokens, d]}."""
    parts: dict[Site, list[torch.Tensor]] = {s: [] for s in sites}
    for chunk in batches(range(len(rows)), batch_size):
        acts = read_activations(model, rows[chunk], sites)
        for site in sites:
            parts[site].append(acts[site].reshape(-1, acts[site].shape[-1]).float())
    return {site: torch.cat(p) for site, p in parts.items()}


def shuffled_batches(acts: torch.Tensor, batch: int, seed: int) -> Iterator[torch.Tensor]:
    """Endless shuffled passes over ``acts`` in batches (a sae-lens trainer's data provider)."""
    generator = torch.Generator().manual_seed(seed)
    while True:
        order = torch.randperm(len(acts), generator=generator)
        for start in range(0, len(order) - batch + 1, batch):
            yield acts[order[start : start + batch]]


def _training_sae(d_in: int, cfg: SAEConfig):
    d_sae = cfg.expansion * d_in
    if cfg.architecture == "topk":
        return TopKTrainingSAE(TopKTrainingSAEConfig(d_in=d_in, d_sae=d_sae, k=cfg.k))
    if cfg.architecture == "jumprelu":
        return JumpReLUTrainingSAE(JumpReLUTrainingSAEConfig(d_in=d_in, d_sae=d_sae))
    raise ValueError(f"SAE architecture {cfg.architecture!r} is not one of topk, jumprelu.")


def train_sae(acts: torch.Tensor, cfg: SAEConfig) -> SAE:
    """Train an SAE on activations [tokens, d_in] with sae-lens's SAETrainer; returns the inference SAE."""
    torch.manual_seed(cfg.seed)
    sae = _training_sae(acts.shape[-1], cfg)
    trainer_cfg = SAETrainerConfig(
        total_training_samples=cfg.samples, train_batch_size_samples=cfg.batch, lr=cfg.lr, lr_end=cfg.lr / 10,
        lr_scheduler_name="cosineannealing", lr_warm_up_steps=10, logger=LoggingConfig(log_to_wandb=False),
        n_batches_for_norm_estimate=10, dead_feature_window=50, feature_sampling_window=100,
    )
    trained = SAETrainer(trainer_cfg, sae, shuffled_batches(acts, cfg.batch, cfg.seed)).fit()
    return _to_inference(trained)


def _to_inference(trained) -> SAE:
    """The inference-mode SAE with the trained weights (what chapters load from disk)."""
    with tempfile.TemporaryDirectory() as folder:
        trained.save_inference_model(folder)
        return SAE.load_from_disk(folder).eval()


def reconstruction_stats(sae: SAE, acts: torch.Tensor, batch: int = 8192) -> dict[str, float]:
    """Fraction of variance unexplained, mean L0 and the share of features never active on ``acts``."""
    err = total = l0 = 0.0
    ever = torch.zeros(sae.cfg.d_sae, dtype=torch.bool)
    mean = acts.mean(0)
    with torch.no_grad():
        for start in range(0, len(acts), batch):
            x = acts[start : start + batch]
            z = sae.encode(x)
            err += (sae.decode(z) - x).pow(2).sum().item()
            total += (x - mean).pow(2).sum().item()
            l0 += (z > 0).sum().item()
            ever |= (z > 0).any(0)
    return {"fvu": err / total, "l0": l0 / len(acts), "dead": 1 - ever.float().mean().item()}


def _loss(model, rows: torch.Tensor, edits) -> float:
    """Mean next-token cross-entropy over ``rows`` with ``edits``."""
    logits, _ = forward_with_edits(model, rows, edits)
    return F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), rows[:, 1:].flatten()).item()


def loss_recovered(model, sae: SAE, site: Site, rows: torch.Tensor) -> dict[str, float]:
    """(CE_zero - CE_sae) / (CE_zero - CE_clean) with the SAE reconstruction or zeros in place of the activation."""
    clean = _loss(model, rows, [])
    spliced = _loss(model, rows, [Reconstruct(site=site, sae=sae)])
    zero = _loss(model, rows, [Ablate(site=site)])
    return {"ce_clean": clean, "ce_sae": spliced, "ce_zero": zero, "loss_recovered": (zero - spliced) / (zero - clean)}
