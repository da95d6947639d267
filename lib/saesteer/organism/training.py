"""Training the organism: a small Gemma2ForCausalLM from scratch on the synthetic language.

Dialogues are tokenized (``<bos> ... <eos>``), concatenated and cut into
fixed-length rows (packing, as in the feasibility run), then trained with AdamW
and a cosine learning-rate decay. Everything is seeded; the loss of every step
is returned so the training curve can be logged and plotted.
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass

import torch
import transformers

from saesteer.core.progress import bar
from saesteer.core.tokenizer import pack_rows
from saesteer.organism.language import Dialogue


@dataclass
class ModelConfig:
    """Size of the organism (a real Gemma2 architecture, tiny)."""

    hidden: int = 256  # residual width
    layers: int = 6  # decoder layers
    heads: int = 4  # attention heads (head_dim = hidden / heads)
    mlp: int = 1024  # MLP width
    context: int = 128  # longest sequence


@dataclass
class TrainConfig:
    """Optimisation settings."""

    steps: int = 2000  # optimiser steps
    batch: int = 32  # rows per step
    lr: float = 2e-3  # peak learning rate (cosine decay to 10% of it)
    warmup: int = 50  # linear warm-up steps
    weight_decay: float = 0.01
    seed: int = 0


def build_model(cfg: ModelConfig, tokenizer) -> transformers.Gemma2ForCausalLM:
    """A freshly initialised Gemma2 of size ``cfg`` for ``tokenizer``'s vocabulary."""
    config = transformers.Gemma2Config(
        vocab_size=len(tokenizer), hidden_size=cfg.hidden, intermediate_size=cfg.mlp, num_hidden_layers=cfg.layers,
        num_attention_heads=cfg.heads, num_key_value_heads=cfg.heads, head_dim=cfg.hidden // cfg.heads,
        max_position_embeddings=cfg.context, sliding_window=cfg.context, attn_implementation="eager",
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
    )
    return transformers.Gemma2ForCausalLM(config)


def pack(dialogues: list[Dialogue], tokenizer, context: int) -> torch.Tensor:
    """All dialogues tokenized, concatenated and cut into rows of ``context`` tokens [rows, context]."""
    return pack_rows([tokenizer(d.text())["input_ids"] for d in dialogues], context)


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up, then cosine decay to 10% of the peak."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def train(model: transformers.PreTrainedModel, rows: torch.Tensor, cfg: TrainConfig, progress: bool = True) -> list[float]:
    """Train ``model`` on packed ``rows`` for ``cfg.steps`` steps; returns the loss of each step."""
    torch.manual_seed(cfg.seed)
    order = random.Random(cfg.seed)
    device = next(model.parameters()).device
    optimiser = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.95))
    model.train()
    losses = []
    for step in bar(range(cfg.steps), "training", progress):
        batch = rows[order.sample(range(len(rows)), min(cfg.batch, len(rows)))].to(device)
        for group in optimiser.param_groups:
            group["lr"] = lr_at(step, cfg)
        loss = model(input_ids=batch, labels=batch).loss
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimiser.step()
        losses.append(loss.item())
    return losses


def describe(model_cfg: ModelConfig, train_cfg: TrainConfig) -> dict:
    """Both configurations as one plain dict (for the manifest)."""
    return {"model": asdict(model_cfg), "train": asdict(train_cfg)}
