"""Tiny randomly initialised models of the real architectures, and random SAEs.

The real-model path (Gemma-2, Gemma-3, Phi-3, Llama, GPT-2) is exercised offline on
these: same transformers classes and module paths, a few layers, a word-level
tokenizer, and sae-lens SAEs of matching width.
"""

from __future__ import annotations

import torch
import transformers
from sae_lens import TopKSAE, TopKSAEConfig

from saesteer.core.tokenizer import word_tokenizer

TINY_WORDS = [f"w{i}" for i in range(60)]  # 64 tokens with the specials
TINY_SIZES = dict(hidden=32, intermediate=64, layers=2, heads=2)
FAMILIES = ("gemma2", "gemma3", "phi3", "llama", "gpt2")


def _config(family: str, vocab: int) -> transformers.PretrainedConfig:
    """A small config of ``family`` with the special token ids of ``word_tokenizer``."""
    h, i, n, a = (TINY_SIZES[k] for k in ("hidden", "intermediate", "layers", "heads"))
    ids = dict(pad_token_id=0, bos_token_id=1, eos_token_id=2, vocab_size=vocab)
    configs = {
        "gemma2": lambda: transformers.Gemma2Config(
            hidden_size=h, intermediate_size=i, num_hidden_layers=n, num_attention_heads=a,
            num_key_value_heads=1, head_dim=h // a, attn_implementation="eager", **ids),
        "gemma3": lambda: transformers.Gemma3TextConfig(  # Gemma 3 270M's class: sliding and full attention layers
            hidden_size=h, intermediate_size=i, num_hidden_layers=n, num_attention_heads=a, num_key_value_heads=1,
            head_dim=h // a, sliding_window=4, layer_types=["sliding_attention", "full_attention"][:n],
            attn_implementation="eager", **ids),
        "phi3": lambda: transformers.Phi3Config(
            hidden_size=h, intermediate_size=i, num_hidden_layers=n, num_attention_heads=a,
            num_key_value_heads=a, **ids),
        "llama": lambda: transformers.LlamaConfig(
            hidden_size=h, intermediate_size=i, num_hidden_layers=n, num_attention_heads=a,
            num_key_value_heads=a, **ids),
        "gpt2": lambda: transformers.GPT2Config(n_embd=h, n_inner=i, n_layer=n, n_head=a, **ids),
    }
    if family not in FAMILIES:
        raise ValueError(f"Tiny family {family!r} is not one of {', '.join(FAMILIES)}.")
    return configs[family]()


def tiny_model_and_tokenizer(family: str, seed: int = 0):
    """A seeded random ``family`` model (eval mode) and its word-level tokenizer."""
    tokenizer = word_tokenizer(TINY_WORDS)
    torch.manual_seed(seed)
    model = transformers.AutoModelForCausalLM.from_config(_config(family, len(tokenizer)))
    return model.eval(), tokenizer


def random_sae(d_in: int, d_sae: int = 64, k: int = 8, seed: int = 0) -> TopKSAE:
    """A seeded random TopK SAE (sae-lens) of width ``d_sae`` on a ``d_in`` activation."""
    torch.manual_seed(seed)
    return TopKSAE(TopKSAEConfig(d_in=d_in, d_sae=d_sae, k=k)).eval()
