"""GPU memory a chapter needs on a real model, computed from its parameter file.

The real-model runs have not been timed on a GPU; what can be computed exactly is what a run holds in memory: the model's
weights (parameters counted on PyTorch's meta device from the architecture's
published configuration, in the parameter file's dtype), every SAE the chapter
loads (a ``Subject`` keeps each SAE it loaded, in float32), and the key-value
cache of one batch of generation. Activations and the allocator's slack come
on top: leave a quarter more.

Usage: ``python -m saesteer.study.budget`` prints the table of ``book/rerun.md``.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import torch
import transformers

from saesteer.core.files import repo_root
from saesteer.study.params import read_param_file

ARCHITECTURES = {  # hub id -> (transformers config class, its published config.json shape fields)
    "google/gemma-2-2b": ("Gemma2Config", dict(
        vocab_size=256000, hidden_size=2304, intermediate_size=9216, num_hidden_layers=26, num_attention_heads=8,
        num_key_value_heads=4, head_dim=256)),
    "google/gemma-3-270m": ("Gemma3TextConfig", dict(  # tied embeddings: 268,098,176 parameters, as in its safetensors
        vocab_size=262144, hidden_size=640, intermediate_size=2048, num_hidden_layers=18, num_attention_heads=4,
        num_key_value_heads=1, head_dim=256)),
    "microsoft/Phi-3-mini-4k-instruct": ("Phi3Config", dict(
        vocab_size=32064, hidden_size=3072, intermediate_size=8192, num_hidden_layers=32, num_attention_heads=32,
        num_key_value_heads=32)),
}
ARCHITECTURES["google/gemma-2-2b-it"] = ARCHITECTURES["google/gemma-2-2b"]
ARCHITECTURES["google/gemma-3-270m-it"] = ARCHITECTURES["google/gemma-3-270m"]
BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
PHI3_SAE_EXPANSION = 8  # the refusal paper's SAEs on Phi-3 Mini: 8x the residual width (TopK, k = 32)
GENERATED_CONTEXT = 512  # tokens of prompt + answer held in the key-value cache per generated row
GIB = 2**30


def config(model: str) -> transformers.PretrainedConfig:
    """The architecture's configuration (no download: the shape fields are the model's published ones)."""
    if model not in ARCHITECTURES:
        raise ValueError(f"no architecture recorded for {model!r}; add its config.json shape to ARCHITECTURES.")
    name, shape = ARCHITECTURES[model]
    return getattr(transformers, name)(**shape)


def n_parameters(model: str) -> int:
    """Parameters of the model, counted on the meta device (no memory allocated)."""
    with torch.device("meta"):
        net = transformers.AutoModelForCausalLM.from_config(config(model))
    return sum(p.numel() for p in net.parameters())


def sae_sites(chapter: str, values: dict, n_layers: int) -> list[tuple[int, str]]:
    """The (layer, position) SAEs a chapter loads with these parameters."""
    if chapter == "refusal_steering":
        layers = set(values["search_layers"] or range(n_layers)) | ({values["layer"]} - {None})
        return [(layer, "resid_post") for layer in sorted(layers)]
    if chapter == "steering_vector_decomposition":
        return [(layer, "resid_post") for layer in sorted(set(values["layers"] or range(n_layers)) | {values["layer"]})]
    if chapter == "feature_flow":
        layers = values["layers"] or range(n_layers)
        return [(layer, position) for layer in layers for position in ("resid_post", "mlp_out", "attn_out")]
    if chapter == "input_output_scores":
        return [(layer, "resid_post") for layer in values["layers"] or range(n_layers)]
    raise ValueError(f"no memory model for chapter {chapter!r}")


def sae_width(values: dict, d_model: int) -> int:
    """Features per SAE: from a Gemma Scope id (``width_16k`` = 16,384; Gemma Scope 2's ``layer_3_width_16k_l0_small``
    too), else the Phi-3 SAEs' expansion."""
    found = re.search(r"width_(\d+)k", values.get("sae_id") or "")
    return int(found.group(1)) * 1024 if found else PHI3_SAE_EXPANSION * d_model


def estimate(param_file: Path) -> dict:
    """Memory (GiB) of a real-model run of the chapter whose parameter file this is."""
    chapter, values = param_file.parent.name, read_param_file(param_file)
    cfg = config(values["model"])
    d, layers = cfg.hidden_size, cfg.num_hidden_layers
    weights = n_parameters(values["model"]) * BYTES[values["dtype"]]
    sites = sae_sites(chapter, values, layers)
    width = sae_width(values, d)
    saes = len(sites) * (2 * d * width + width + d + width) * 4  # W_enc, W_dec, b_enc, b_dec, threshold (float32)
    head_dim = getattr(cfg, "head_dim", None) or d // cfg.num_attention_heads
    kv = 2 * layers * cfg.num_key_value_heads * head_dim * BYTES[values["dtype"]] * values["batch_size"] * GENERATED_CONTEXT
    total = weights + saes + kv
    return {"chapter": chapter, "parameter file": str(param_file.relative_to(repo_root())), "model": values["model"],
            "weights GiB": weights / GIB, "SAEs": len(sites), "SAE width": width, "SAEs GiB": saes / GIB,
            "KV cache GiB": kv / GIB, "total GiB": total / GIB, "with 25% slack GiB": 1.25 * total / GIB}


def real_model_files(root: Path | None = None) -> list[Path]:
    """Every parameter file that names a real model (an id in ``ARCHITECTURES``)."""
    root = root or repo_root()
    files = sorted((root / "notebooks" / "params").glob("*/*.yaml"))
    return [f for f in files if read_param_file(f).get("model") in ARCHITECTURES]


def markdown_table(root: Path | None = None) -> str:
    """The memory table of ``book/rerun.md``, one row per real-model parameter file."""
    lines = ["| chapter | parameter file | model | weights | SAEs (count x width) | KV cache | total | with slack |",
             "|---|---|---|---|---|---|---|---|"]
    for row in map(estimate, real_model_files(root)):
        lines.append(f"| {row['chapter']} | `{row['parameter file']}` | {row['model']} | {row['weights GiB']:.1f} GiB "
                     f"| {row['SAEs GiB']:.1f} GiB ({row['SAEs']} x {row['SAE width']:,}) | {row['KV cache GiB']:.1f} GiB "
                     f"| {row['total GiB']:.1f} GiB | {row['with 25% slack GiB']:.0f} GiB |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown_table())
    sys.exit(0)
