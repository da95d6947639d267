"""GPU memory a chapter needs on a real model, computed from its parameter file.

The real-model runs have not been timed on a GPU; what can be computed exactly is what a run holds in memory: the model's
weights (parameters counted on PyTorch's meta device from the architecture's
published configuration, in the parameter file's dtype), every SAE the chapter
loads (a ``Subject`` keeps each SAE it loaded, in float32), and the key-value
cache of one batch of generation. Activations and the allocator's slack come
on top: leave a quarter more.

Also the SAE trainings: the study's, measured on Gemma 3 270M (their build records), and projections from them by a
stated FLOP count to the SAEs no one publishes (``training_table``).

Usage: ``python -m saesteer.study.budget`` prints the memory table of ``book/rerun.md``; with ``--training``, also
its SAE-training table.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import torch
import transformers

from saesteer.core.files import read_json, repo_root
from saesteer.gemma3.saes import BuildConfig
from saesteer.study.book import PAPERS
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
    """The memory table of ``book/rerun.md``, one row per real-model parameter file: the key columns first (chapter
    letter, model, GPU memory with a quarter of slack), then the parts and the file's name, narrow enough for
    the book's text column."""
    lines = ["| ch. | model | GPU memory | weights + SAEs (count x width) + KV cache = sum, GiB | file |",
             "|---|---|--:|---|---|"]
    rows = sorted(map(estimate, real_model_files(root)), key=lambda r: (PAPERS[r["chapter"]][0], r["model"]))
    for row in rows:
        lines.append(f"| {PAPERS[row['chapter']][0]} | {row['model'].split('/')[-1]} | **{row['with 25% slack GiB']:.0f} GiB** "
                     f"| {row['weights GiB']:.1f} + {row['SAEs GiB']:.1f} ({row['SAEs']} x {row['SAE width'] // 1024}k) "
                     f"+ {row['KV cache GiB']:.1f} = {row['total GiB']:.1f} | `{Path(row['parameter file']).name}` |")
    return "\n".join(lines)


# --- SAE training: measured on Gemma 3 270M, projected to the models no one publishes SAEs for -----------------
TRAINING_RECORDS = {"Gemma 3 270M, the book's SAEs": "data/gemma3/saes.json",
                    "Gemma 3 270M-chat, chapter A's SAEs": "data/gemma3/chat/saes.json"}
ASSUMED_GPU_FLOPS = 50e12  # an assumed sustained rate for the projections' GPU column (not measured here)


def sae_state_bytes(n_saes: int, d_in: int, width: int) -> int:
    """Float32 training state of ``n_saes`` SAEs: weights, gradients and Adam's two moments, 16 bytes a parameter."""
    return n_saes * (2 * d_in * width + width + d_in) * 16


def sae_training_flops(model: str, layers_forwarded: int, tokens: int, n_saes: int, samples: int, width: int) -> dict:
    """FLOPs of training ``n_saes`` SAEs of ``width`` features in lockstep on ``samples`` activations each, read from a
    forward pass over ``tokens`` tokens that stops after ``layers_forwarded`` layers: 2 FLOPs per non-embedding
    parameter of those layers and token, and 12 d x width per SAE and activation (encoder and decoder forward,
    twice that backward)."""
    cfg = config(model)
    embedding = cfg.vocab_size * cfg.hidden_size * (1 if getattr(cfg, "tie_word_embeddings", True) else 2)
    per_layer = (n_parameters(model) - embedding) / cfg.num_hidden_layers
    forward = 2 * per_layer * layers_forwarded * tokens
    sae = 12 * cfg.hidden_size * width * samples * n_saes
    return {"forward": forward, "sae": sae, "total": forward + sae}


def measured_training() -> list[dict]:
    """The study's recorded SAE trainings on Gemma 3 270M (their build records): what was trained, the seconds of
    the training stage, the machine, and the FLOPs a second that gives under ``sae_training_flops``."""
    out = []
    for name, path in TRAINING_RECORDS.items():
        record = read_json(repo_root() / path)
        plan = BuildConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in record["config"].items()})
        specs = plan.specs()
        tokens = plan.train_rows() * plan.context
        last = max(spec.site.layer for spec in specs)
        flops = sae_training_flops("google/gemma-3-270m", last + 1, tokens, len(specs), plan.steps() * plan.batch, plan.width)
        stage = record["stages"]["train"]
        out.append({"name": name, "saes": len(specs), "width": plan.width, "samples": plan.steps() * plan.batch,
                    "tokens": tokens, "seconds": stage["seconds"], "machine": stage["machine"], **flops,
                    "rate": flops["total"] / stage["seconds"],
                    "state GiB": sae_state_bytes(len(specs), config("google/gemma-3-270m").hidden_size, plan.width) / GIB})
    return out


PROJECTED = [  # (model, hook, layers, layers forwarded, width, activations per SAE, dtype of the model)
    ("microsoft/Phi-3-mini-4k-instruct", "resid_post", (4, 6, 8, 12, 16), 17, 8 * 3072, 50_000_000, "bfloat16"),
    ("google/gemma-2-2b", "attn_out", tuple(range(13)), 13, 16_384, 50_000_000, "bfloat16"),
    ("google/gemma-2-2b", "attn_out", tuple(range(13, 26)), 26, 16_384, 50_000_000, "bfloat16"),
    ("google/gemma-3-270m", "attn_out", tuple(range(18)), 18, 16_384, 500_000, "float32"),
]


def projected_training(context: int = 128, chunk_rows: int = 128, used_share: float = 0.82) -> list[dict]:
    """Projections (not measurements) for ``PROJECTED``: FLOPs by ``sae_training_flops`` (tokens forwarded = activations /
    ``used_share``, the share of a chunk's tokens the stream uses), memory = weights in the dtype + three float32 copies of a
    chunk's activations per site + the SAEs' training state (weights, gradients, Adam's two moments)."""
    out = []
    for model, hook, layers, forwarded, width, samples, dtype in PROJECTED:
        cfg = config(model)
        d = cfg.hidden_size
        flops = sae_training_flops(model, forwarded, int(samples / used_share), len(layers), samples, width)
        state = sae_state_bytes(len(layers), d, width)
        buffer = 3 * len(layers) * chunk_rows * context * d * 4
        weights = n_parameters(model) * BYTES[dtype]
        out.append({"model": model, "hook": hook, "layers": layers, "width": width, "samples": samples, **flops,
                    "memory GiB": (weights + buffer + state) / GIB, "state GiB": state / GIB})
    return out


def _layers(layers: tuple[int, ...]) -> str:
    contiguous = len(layers) > 2 and layers == tuple(range(layers[0], layers[-1] + 1))
    return f"{layers[0]}-{layers[-1]}" if contiguous else ", ".join(map(str, layers))


def duration(seconds: float) -> str:
    """Seconds in the unit that reads best: seconds below two minutes, minutes below two hours, hours below two days, else days."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h" if seconds < 172800 else f"{seconds / 86400:.0f} days"


def training_table() -> str:
    """The SAE-training table of ``book/rerun.md``: the measured trainings, then the projections."""
    lines = ["| | SAEs | activations each | time | compute | memory |", "|---|---|--:|--:|--:|--:|"]
    measured = measured_training()
    for m in measured:
        lines.append(f"| measured: {m['name']} | {m['saes']} x {m['width']:,} | {m['samples']:,} | {duration(m['seconds'])} "
                     f"({m['machine']}) | {m['total'] / 1e12:.0f} TFLOP, {m['rate'] / 1e9:.0f} GFLOP/s | "
                     f"{m['state GiB']:.1f} GiB SAE state (computed) |")
    rates = [m["rate"] for m in measured]
    for p in projected_training():
        fast, slow = (p["total"] / r for r in (max(rates), min(rates)))
        lines.append(f"| projected: {p['model'].split('/')[-1]} {p['hook']} layers {_layers(p['layers'])} | "
                     f"{len(p['layers'])} x {p['width']:,} | {p['samples']:,} | {duration(p['total'] / ASSUMED_GPU_FLOPS)} "
                     f"at {ASSUMED_GPU_FLOPS / 1e12:.0f} TFLOP/s; {duration(fast)} to {duration(slow)} on 2 CPU cores | "
                     f"{p['total'] / 1e15:,.{1 if p['total'] < 1e16 else 0}f} PFLOP | {p['memory GiB']:.0f} GiB |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown_table())
    if "--training" in sys.argv:
        print()
        print(training_table())
    sys.exit(0)
