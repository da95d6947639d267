"""SAEs on Gemma 3 270M: which ones, how their activations stream from the model, how they train and how
good they are.

Gemma 3's residual stream is dominated by a few huge constant directions and a few tokens with many
times the median norm (``<bos>`` about 16x). sae-lens's defaults fail on it, so every site is first
*normalised*: centred on its mean and rescaled so that a token's distance from the mean is sqrt(d) on
average; tokens farther than ``outlier_factor`` x the median distance are left out of training
(``<bos>`` always is). The normalisation is folded into the trained SAE's weights with sae-lens's
``fold_activation_whitening`` (the map is affine), so the saved SAEs read and write raw activations.

Every SAE of the plan trains in lockstep from one activation stream (sae-lens's ``MultiSAETrainer``):
one nnsight forward pass per chunk of token rows feeds them all. The stream is a pure function of the
training step (chunk ``c`` = the same rows, the same shuffle), so a run resumed from a checkpoint sees
exactly the batches an uninterrupted run would have seen.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from sae_lens import LoggingConfig
from sae_lens.config import SAETrainerConfig
from sae_lens.saes.jumprelu_sae import JumpReLUTrainingSAE, JumpReLUTrainingSAEConfig
from sae_lens.saes.topk_sae import TopKTrainingSAE, TopKTrainingSAEConfig

from saesteer.core.hooks import Site
from saesteer.core.interventions import Ablate, Reconstruct, batches, forward_with_edits
from saesteer.core.sae_training import collect, reconstruction_stats
from saesteer.core.tokenizer import pack_rows

ARCHITECTURES = ("jumprelu", "topk")


@dataclass(frozen=True)
class SAESpec:
    """One SAE of the plan: a site and an architecture."""

    site: Site
    architecture: str

    @property
    def name(self) -> str:
        """File-name form, e.g. ``jumprelu_resid_post_6``."""
        return f"{self.architecture}_{self.site.slug}"


@dataclass(frozen=True)
class BuildConfig:
    """Everything that decides the SAEs (recorded in the manifest; a change retrains them)."""

    n_layers: int = 18
    band: tuple[int, int] = (6, 11)  # attn_out and mlp_out SAEs at these layers (inclusive), for chapter C
    topk_layers: tuple[int, ...] = (5, 8, 11)  # TopK (k = 32) SAEs on resid_post, for chapter A
    width: int = 2560  # features per SAE (4 x 640)
    target_l0: float = 60.0  # JumpReLU's quadratic sparsity target (Gemma Scope 2's "big" L0 for this model)
    l0_coefficient: float = 1.0
    pre_act_loss_coefficient: float = 0.1  # sae-lens's pull on dead features' pre-activations (dead 81% -> 70% at attn_out 9)
    k: int = 32
    samples: int = 500_000  # training activations per SAE (each seen once)
    batch: int = 1024
    lr: float = 1e-3
    context: int = 128  # tokens per row, <bos> first
    chunk_rows: int = 128  # rows per forward pass chunk of the stream
    batches_per_chunk: int = 13  # batches each chunk yields per site (82% of its non-<bos> tokens)
    outlier_factor: float = 2.0  # tokens farther than this x the median distance from the mean are not trained on
    norm_rows: int = 64  # training rows that estimate each site's mean and scale
    heldout_rows: int = 256  # held-out rows for FVU, L0 and dead features
    loss_rows: int = 64  # held-out rows for the next-token loss ...
    loss_positions: int = 16  # ... at this many positions per row (the unembedding is most of a forward's cost)
    checkpoints: int = 10
    seed: int = 0
    dtype: str = "float32"
    sources: tuple[str, ...] = ("fortunes", "wordnet", "python-docs")  # equal shares of training rows
    jumprelu: bool = True  # JumpReLU SAEs on every resid_post and the band; False: the TopK SAEs only

    def __post_init__(self) -> None:
        layers = [*(range(self.band[0], self.band[1] + 1) if self.jumprelu else ()), *self.topk_layers]
        bad = [layer for layer in layers if not 0 <= layer < self.n_layers]
        if bad:
            raise ValueError(f"Layer {bad[0]} is outside 0-{self.n_layers - 1}; choose layers of the model's "
                             f"{self.n_layers}.")
        if self.architecture_problem():
            raise ValueError(self.architecture_problem())

    def architecture_problem(self) -> str:
        """Why these SAE sizes cannot train, or an empty string."""
        if self.k > self.width or self.target_l0 > self.width:
            return f"Sparsity (k={self.k}, target L0 {self.target_l0:g}) must not exceed the width {self.width}."
        return ""

    def specs(self) -> list[SAESpec]:
        """JumpReLU on every resid_post and on the band's attn_out and mlp_out (unless ``jumprelu`` is false), then
        TopK on ``topk_layers``."""
        band = range(self.band[0], self.band[1] + 1)
        jump = [Site(layer) for layer in range(self.n_layers)] + [Site(layer, p) for layer in band
                                                                  for p in ("attn_out", "mlp_out")]
        jump = jump if self.jumprelu else []
        return [SAESpec(s, "jumprelu") for s in sorted(jump, key=lambda s: s.order)] + [
            SAESpec(Site(layer), "topk") for layer in self.topk_layers]

    def sites(self) -> list[Site]:
        """The distinct sites of the plan, in execution order."""
        return sorted({spec.site for spec in self.specs()}, key=lambda s: s.order)

    def steps(self) -> int:
        return self.samples // self.batch

    def train_rows(self) -> int:
        """Token rows the stream reads: whole chunks covering every step."""
        chunks = -(-self.steps() // self.batches_per_chunk)
        return chunks * self.chunk_rows

    def to_json(self) -> dict:
        """The plan as recorded in a manifest; ``jumprelu`` only when false, so plans recorded before the
        field existed keep their keys."""
        return {k: v for k, v in asdict(self).items() if not (k == "jumprelu" and v)}


def sae_memory_bytes(cfg: BuildConfig, d_in: int) -> int:
    """Float32 memory of training every SAE of the plan: weights, gradients and Adam's two moments."""
    params = 2 * d_in * cfg.width + cfg.width * 2 + d_in
    return len(cfg.specs()) * params * 4 * 4


# --- token rows -----------------------------------------------------------------------------------------

def read_corpus(path: Path) -> dict[str, list[str]]:
    """Documents of one corpus split (``train.jsonl`` / ``heldout.jsonl``) grouped by source."""
    if not path.is_file():
        raise FileNotFoundError(f"Corpus file {path} is missing; run `make gemma3-corpus`.")
    docs: dict[str, list[str]] = {}
    for line in path.open():
        row = json.loads(line)
        docs.setdefault(row["source"], []).append(row["text"])
    return docs


def source_rows(texts: list[str], tokenizer, n_rows: int, context: int, seed: int) -> torch.Tensor:
    """Up to ``n_rows`` rows of ``<bos>`` + ``context - 1`` tokens of shuffled documents (``<eos>`` between)."""
    order = list(range(len(texts)))
    random.Random(seed).shuffle(order)
    pieces, tokens = [], 0
    for chunk in batches(order, 256):
        for ids in tokenizer([texts[i] for i in chunk], add_special_tokens=False)["input_ids"]:
            pieces.append(ids + [tokenizer.eos_token_id])
            tokens += len(ids) + 1
        if tokens >= n_rows * (context - 1):
            break
    body = pack_rows(pieces, context - 1, n_rows)
    return torch.cat([torch.full((len(body), 1), tokenizer.bos_token_id), body], dim=1)


def token_rows(path: Path, tokenizer, n_rows: int, cfg: BuildConfig) -> torch.Tensor:
    """``n_rows`` rows with equal shares from each source, interleaved (row i from source i mod 3)."""
    docs = read_corpus(path)
    missing = [s for s in cfg.sources if s not in docs]
    if missing:
        raise ValueError(f"Corpus {path} has no documents from {missing[0]!r}; rebuild it with `make gemma3-corpus`.")
    share = -(-n_rows // len(cfg.sources))
    parts = [source_rows(docs[s], tokenizer, share, cfg.context, cfg.seed) for s in cfg.sources]
    if min(map(len, parts)) < share:
        raise ValueError(f"Corpus {path} has too few tokens for {n_rows} rows of {cfg.context}; lower `samples`.")
    return torch.stack(parts, dim=1).flatten(0, 1)[:n_rows]


# --- normalisation --------------------------------------------------------------------------------------

@dataclass
class SiteNorm:
    """Centring and scale of one site: the SAE trains on (x - mean) * scale."""

    mean: torch.Tensor
    scale: float
    median_distance: float

    def apply(self, x: torch.Tensor, outlier_factor: float) -> torch.Tensor:
        """The normalised tokens of ``x`` [tokens, d], outliers left out."""
        centred = x - self.mean
        return centred[centred.norm(dim=-1) < outlier_factor * self.median_distance] * self.scale

    def fold_into(self, sae) -> None:
        """Make ``sae`` (trained on normalised tokens) read and write raw activations."""
        eye = torch.eye(len(self.mean))
        sae.fold_activation_whitening(mean=self.mean, whitening_matrix=eye * self.scale,
                                      unwhitening_matrix=eye / self.scale)


def site_tokens(model, rows: torch.Tensor, sites: Sequence[Site], batch_rows: int = 16) -> dict[Site, torch.Tensor]:
    """Float32 activations [tokens, d] (on the CPU) at ``sites`` of every non-``<bos>`` token of ``rows``."""
    acts = collect(model, rows.to(model.device), sites, batch_rows)
    return {site: x.view(len(rows), rows.shape[1], -1)[:, 1:].flatten(0, 1).cpu() for site, x in acts.items()}


def estimate_norms(model, rows: torch.Tensor, sites: Sequence[Site], outlier_factor: float) -> dict[Site, SiteNorm]:
    """Each site's mean, median distance from it, and the scale that gives inliers mean distance sqrt(d)."""
    norms = {}
    for site, x in site_tokens(model, rows, sites).items():
        mean = x.mean(0)
        distance = (x - mean).norm(dim=-1)
        median = distance.median().item()
        inliers = distance[distance < outlier_factor * median]
        norms[site] = SiteNorm(mean, x.shape[-1] ** 0.5 / inliers.mean().item(), median)
    return norms


def norms_to_dict(norms: dict[Site, SiteNorm]) -> dict:
    """What ``load_norms`` reads back (saved with ``torch.save``)."""
    return {str(s): {"mean": n.mean, "scale": n.scale, "median_distance": n.median_distance} for s, n in norms.items()}


def load_norms(path: Path, sites: Sequence[Site]) -> dict[Site, SiteNorm]:
    saved = torch.load(path)
    return {site: SiteNorm(**saved[str(site)]) for site in sites}


# --- the stream and the training ------------------------------------------------------------------------

def activation_stream(model, rows: torch.Tensor, norms: dict[Site, SiteNorm], cfg: BuildConfig,
                      start_step: int = 0) -> Iterator[dict[str, torch.Tensor]]:
    """Batches {hook name: [batch, d]} for ``MultiSAETrainer``, from step ``start_step`` on.

    Chunk c reads rows [c * chunk_rows, (c + 1) * chunk_rows) in one pass per 16 rows, normalises each
    site, shuffles its tokens with seed (seed, c) and yields ``batches_per_chunk`` batches; a site that
    kept fewer tokens than that (many outliers) is topped up by drawing its kept tokens again.
    """
    chunk, skip = divmod(start_step, cfg.batches_per_chunk)
    need = cfg.batches_per_chunk * cfg.batch
    while (chunk + 1) * cfg.chunk_rows <= len(rows):
        acts = site_tokens(model, rows[chunk * cfg.chunk_rows:(chunk + 1) * cfg.chunk_rows], list(norms))
        generator = torch.Generator().manual_seed(cfg.seed * 1_000_003 + chunk)
        ready = {}
        for site, norm in norms.items():
            x = norm.apply(acts[site], cfg.outlier_factor)
            order = torch.randperm(len(x), generator=generator)
            if len(order) < need:
                order = torch.cat([order, torch.randint(len(x), (need - len(order),), generator=generator)])
            ready[str(site)] = x[order[:need]]
        for b in range(skip, cfg.batches_per_chunk):
            yield {hook: x[b * cfg.batch:(b + 1) * cfg.batch] for hook, x in ready.items()}
        chunk, skip = chunk + 1, 0


def training_sae(spec: SAESpec, d_in: int, cfg: BuildConfig):
    """A fresh sae-lens training SAE for ``spec`` (normalisation is done by the stream, so none here).

    JumpReLU takes Gemma Scope 2's quadratic penalty around a target L0, with the straight-through
    gradient passed to the encoder too: with it reaching the thresholds only, L0 stayed near 1,000 of
    2,560 after 100k samples; with it, about 80 (layer 9, training tokens). The pre-activation loss pulls
    dead features back toward their thresholds."""
    if spec.architecture == "topk":
        return TopKTrainingSAE(TopKTrainingSAEConfig(d_in=d_in, d_sae=cfg.width, k=cfg.k))
    if spec.architecture == "jumprelu":
        return JumpReLUTrainingSAE(JumpReLUTrainingSAEConfig(
            d_in=d_in, d_sae=cfg.width, jumprelu_sparsity_loss_mode="quadratic", target_l0=cfg.target_l0,
            l0_coefficient=cfg.l0_coefficient, jumprelu_ste_to_input=True,
            pre_act_loss_coefficient=cfg.pre_act_loss_coefficient))
    raise ValueError(f"SAE architecture {spec.architecture!r} is not one of {', '.join(ARCHITECTURES)}.")


def trainer_config(cfg: BuildConfig, device: str, checkpoint_path: Path) -> SAETrainerConfig:
    """sae-lens's trainer settings shared by every SAE of the plan."""
    return SAETrainerConfig(
        total_training_samples=cfg.steps() * cfg.batch, train_batch_size_samples=cfg.batch, lr=cfg.lr,
        lr_end=cfg.lr / 10, lr_scheduler_name="cosineannealing", lr_warm_up_steps=10, device=device,
        logger=LoggingConfig(log_to_wandb=False), n_batches_for_norm_estimate=1, dead_feature_window=100,
        feature_sampling_window=200, n_checkpoints=cfg.checkpoints, checkpoint_path=str(checkpoint_path))


# --- quality --------------------------------------------------------------------------------------------

@dataclass
class LossProbe:
    """Held-out rows and the positions whose next token the loss scores (the same for every condition)."""

    rows: torch.Tensor
    positions: torch.Tensor = field(default_factory=lambda: torch.empty(0, dtype=torch.long))

    @classmethod
    def sample(cls, rows: torch.Tensor, n_positions: int, seed: int) -> LossProbe:
        generator = torch.Generator().manual_seed(seed)
        positions = torch.randperm(rows.shape[1] - 2, generator=generator)[:n_positions] + 1  # never <bos>
        return cls(rows, positions.sort().values)

    def loss(self, model, edits=()) -> float:
        """Mean next-token cross-entropy at the probe's positions, with ``edits``."""
        total = 0.0
        for chunk in batches(range(len(self.rows)), 16):
            ids = self.rows[chunk].to(model.device)
            logits, _ = forward_with_edits(model, ids, edits, logits_to_keep=self.positions.to(model.device))
            targets = ids[:, self.positions + 1]
            total += F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), reduction="sum").item()
        return total / (len(self.rows) * len(self.positions))


GEMMA_SCOPE_2 = {"resid_post": "gemma-scope-2-270m-pt-res-all", "mlp_out": "gemma-scope-2-270m-pt-mlp-all"}


def gemma_scope_2_l0(site: Site) -> dict[str, float]:
    """The L0s of Gemma Scope 2's 16k SAEs at the same site (``small`` and ``big``), as sae-lens's directory
    records them; empty for ``attn_out`` (their attention SAEs read o_proj's input, another site)."""
    from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory

    release = get_pretrained_saes_directory().get(GEMMA_SCOPE_2.get(site.position, ""))
    if release is None:
        return {}
    found = {size: release.expected_l0.get(f"layer_{site.layer}_width_16k_l0_{size}") for size in ("small", "big")}
    return {size: l0 for size, l0 in found.items() if l0 is not None}


def site_quality(model, probe: LossProbe, site: Site, saes: dict[str, object], acts: torch.Tensor,
                 clean: float) -> list[dict]:
    """One row per SAE at ``site``: FVU, L0, dead fraction on held-out tokens ``acts``, and the next-token
    loss with its reconstruction spliced in (every token but ``<bos>``) beside ``clean`` and zero-ablated."""
    zero = probe.loss(model, [Ablate(site=site, from_position=1)])
    out = []
    for name, sae in saes.items():
        spliced = probe.loss(model, [Reconstruct(site=site, sae=sae, from_position=1)])
        stats = reconstruction_stats(sae, acts)
        out.append({"sae": name, "layer": site.layer, "position": site.position, **stats, "ce_clean": clean,
                    "gemma_scope_2_l0": gemma_scope_2_l0(site), "ce_sae": spliced, "ce_zero": zero,
                    "delta_loss": spliced - clean, "loss_recovered": (zero - spliced) / (zero - clean)})
    return out


def calibrate_threshold(sae: JumpReLUTrainingSAE, x: torch.Tensor, target_l0: float) -> torch.Tensor:
    """Start each feature's JumpReLU threshold at its own pre-activation quantile that makes it fire on a
    ``target_l0 / width`` share of ``x`` (normalised tokens): every feature starts alive, and L0 starts at
    the target. Adam moves a threshold by about lr per step, so from sae-lens's 0.01 a few hundred steps
    could not reach a sparse code (L0 stayed above 1,200 of 2,560 after 100k samples)."""
    with torch.no_grad():
        _, pre = sae.encode_with_hidden_pre(x)
        values = torch.quantile(pre.float(), 1 - target_l0 / pre.shape[-1], dim=0).clamp(min=0.0)
        sae.threshold.data.copy_(values)
    return values
