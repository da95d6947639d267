"""A miniature organism trains through the same code: loss falls, runs are seeded."""

import torch

from saesteer.core.tokenizer import word_tokenizer
from saesteer.organism.language import Language, vocabulary
from saesteer.organism.training import (
    ModelConfig,
    TrainConfig,
    build_model,
    lr_at,
    pack,
    train,
)

MINI = ModelConfig(hidden=32, layers=2, heads=2, mlp=64, context=64)
STEPS = TrainConfig(steps=60, batch=8, lr=1e-2, warmup=5)


def _mini_run():
    dialogues = Language(0).corpus(400)
    tokenizer = word_tokenizer(vocabulary(dialogues))
    torch.manual_seed(0)
    model = build_model(MINI, tokenizer)
    rows = pack(dialogues, tokenizer, MINI.context)
    return model, rows, train(model, rows, STEPS, progress=False)


def test_packing_keeps_dialogue_boundaries_and_length():
    dialogues = Language(0).corpus(50)
    tokenizer = word_tokenizer(vocabulary(dialogues))
    rows = pack(dialogues, tokenizer, 64)
    assert rows.shape[1] == 64 and rows[0, 0] == tokenizer.bos_token_id
    assert (rows == tokenizer.eos_token_id).sum() >= rows.numel() // 100  # ends of dialogues are inside rows


def test_miniature_training_lowers_loss_and_is_seeded():
    model, rows, losses = _mini_run()
    assert model.config.model_type == "gemma2" and len(losses) == STEPS.steps
    assert sum(losses[-5:]) / 5 < 0.8 * sum(losses[:5]) / 5
    _, _, again = _mini_run()
    assert again == losses


def test_learning_rate_schedule():
    cfg = TrainConfig(steps=100, lr=1.0, warmup=10)
    assert lr_at(0, cfg) == 0.1 and lr_at(9, cfg) == 1.0
    assert abs(lr_at(99, cfg) - 0.1) < 1e-3 and lr_at(50, cfg) < lr_at(20, cfg)
