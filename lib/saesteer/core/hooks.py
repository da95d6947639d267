"""Hook points: where in each model family the study reads and edits activations.

One table (``LAYOUTS``) maps a transformers ``model_type`` to the module paths of
its decoder layers and of the three positions every chapter uses:

- ``resid_post``: the decoder layer's output (the residual stream after layer L);
- ``attn_out``: what the attention sub-block adds to the residual stream
  (after Gemma-2's and Gemma-3's ``post_attention_layernorm``);
- ``mlp_out``: what the MLP sub-block adds to the residual stream
  (after Gemma-2's ``post_feedforward_layernorm``).

Layer outputs are plain tensors in transformers 5 and tuples in older versions;
``read_output`` and ``write_output`` are the one place that handles both.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

POSITIONS = ("attn_out", "mlp_out", "resid_post")  # in execution order within a layer


@dataclass(frozen=True)
class Layout:
    """Module paths of one architecture family, relative to the top model."""

    layers: str  # the ModuleList of decoder layers
    attn_out: str  # inside a layer: module whose output is added to the residual by attention
    mlp_out: str  # inside a layer: module whose output is added to the residual by the MLP
    final_norm: str  # the norm applied before the unembedding
    unembed: str = "lm_head"  # the unembedding (W_U)


LAYOUTS: dict[str, Layout] = {
    "gemma2": Layout("model.layers", "post_attention_layernorm", "post_feedforward_layernorm", "model.norm"),
    "gemma3_text": Layout("model.layers", "post_attention_layernorm", "post_feedforward_layernorm", "model.norm"),
    "phi3": Layout("model.layers", "self_attn.o_proj", "mlp", "model.norm"),
    "llama": Layout("model.layers", "self_attn.o_proj", "mlp", "model.norm"),
    "gpt2": Layout("transformer.h", "attn.c_proj", "mlp", "transformer.ln_f"),
}


@dataclass(frozen=True, order=True)
class Site:
    """A hook point: a layer and a position (see ``POSITIONS``)."""

    layer: int
    position: str = "resid_post"

    def __post_init__(self) -> None:
        if self.position not in POSITIONS:
            raise ValueError(f"Position {self.position!r} is not one of {', '.join(POSITIONS)}.")

    @property
    def order(self) -> tuple[int, int]:
        """Execution order inside one forward pass (nnsight needs modules in this order)."""
        return (self.layer, POSITIONS.index(self.position))

    def __str__(self) -> str:
        return f"{self.position}@{self.layer}"

    @property
    def slug(self) -> str:
        """A file-name form, e.g. ``resid_post_3``."""
        return f"{self.position}_{self.layer}"


def model_type(model) -> str:
    """The transformers ``model_type`` of a model or of an nnsight wrapper."""
    return model.config.model_type


def layout(model) -> Layout:
    """The hook layout of a model's family, or a clear error naming the supported ones."""
    kind = model_type(model)
    if kind not in LAYOUTS:
        raise ValueError(f"Model type {kind!r} is not supported; supported: {', '.join(sorted(LAYOUTS))}.")
    return LAYOUTS[kind]


def n_layers(model) -> int:
    """Number of decoder layers (GPT-2's config maps ``n_layer`` to this name too)."""
    return model.config.num_hidden_layers


def hidden_size(model) -> int:
    """Width of the residual stream (and of every hook position)."""
    return model.config.hidden_size


def walk(root, path: str):
    """Follow a dotted attribute path (``'model.layers'``) from ``root``."""
    node = root
    for name in path.split(".") if path else []:
        node = getattr(node, name)
    return node


def all_sites(model) -> list[Site]:
    """Every (layer, position) of a model, in execution order."""
    return [Site(layer, pos) for layer in range(n_layers(model)) for pos in POSITIONS]


def module_at(model, site: Site):
    """The module (or nnsight envoy, if ``model`` is wrapped) whose output is ``site``."""
    lay = layout(model)
    if not 0 <= site.layer < n_layers(model):
        raise ValueError(f"Layer {site.layer} is outside the model's 0..{n_layers(model) - 1}.")
    block = walk(model, lay.layers)[site.layer]
    return block if site.position == "resid_post" else walk(block, getattr(lay, site.position))


def read_output(module) -> torch.Tensor:
    """The hidden-state tensor of a module's output, whether it is a tensor or a tuple."""
    out = module.output
    return out[0] if isinstance(out, tuple) else out


def write_output(module, value: torch.Tensor) -> None:
    """Replace the hidden-state tensor of a module's output, keeping any other tuple items."""
    out = module.output
    module.output = (value, *out[1:]) if isinstance(out, tuple) else value
