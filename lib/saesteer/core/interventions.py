"""Interventions with nnsight: add a vector, clamp or scale SAE features, at any sites.

An edit acts on one hook point (``Site``) and on a choice of token positions:

- ``"all"``: every position of the prompt and every generated token;
- ``"prompt"``: the prompt's forward pass only;
- ``"generated"``: generated tokens only;
- ``"last"``: the last prompt position and every generated token (the rule of
  the input/output-score paper: the newest position is always steered).

SAE edits splice the SAE in with its error term kept: the activation becomes
``x + decode(z_edited) - decode(z)``, i.e. ``x + (c - z_f) d_f`` for a clamp and
``x + (r - 1) z_f d_f`` for a scale. With no change to ``z`` the difference is
exactly zero, so the splice reproduces the clean model bit for bit.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import nnsight
import torch
from sae_lens import SAE

from saesteer.core import hooks
from saesteer.core.hooks import Site

TOKENS = ("all", "prompt", "generated", "last")


@dataclass(kw_only=True)
class Edit:
    """Base class: an edit at ``site`` on the token positions named by ``tokens``."""

    site: Site
    tokens: str = "all"
    steps_seen: list[int] = field(default_factory=list, repr=False, compare=False)  # forward steps it ran at

    def __post_init__(self) -> None:
        if self.tokens not in TOKENS:
            raise ValueError(f"tokens={self.tokens!r} is not one of {', '.join(TOKENS)}.")

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """The edited activation for every position of ``x`` ([batch, seq, d])."""
        raise NotImplementedError

    def at_step(self, x: torch.Tensor, step: int) -> torch.Tensor:
        """Apply the edit to the positions that ``tokens`` selects at generation ``step`` (0 = prompt)."""
        self.steps_seen.append(step)
        if (self.tokens == "prompt" and step > 0) or (self.tokens == "generated" and step == 0):
            return x
        if self.tokens == "last" and step == 0:
            last = self.apply(x[:, -1:])
            return torch.cat([x[:, :-1], last], dim=1)
        return self.apply(x)


@dataclass(kw_only=True)
class AddVector(Edit):
    """Add ``coeff * vector`` (a steering vector, e.g. CAA or a decoder direction)."""

    vector: torch.Tensor
    coeff: float = 1.0

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.coeff * self.vector.to(device=x.device, dtype=x.dtype)


@dataclass(kw_only=True)
class FeatureEdit(Edit):
    """Base class of SAE-feature edits: change some codes, splice with the error term kept."""

    sae: SAE
    features: Sequence[int] = field(default_factory=list)

    def new_codes(self, z: torch.Tensor) -> torch.Tensor:
        """The edited SAE codes (``z`` must not be modified in place)."""
        raise NotImplementedError

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        dtype = self.sae.W_dec.dtype
        z = self.sae.encode(x.to(dtype))
        delta = self.sae.decode(self.new_codes(z)) - self.sae.decode(z)
        return x + delta.to(x.dtype)


@dataclass(kw_only=True)
class Clamp(FeatureEdit):
    """Set the features' codes to ``value``: one number, one per feature, or a tensor
    [batch, n_features] with one row per prompt, so a whole clamp sweep runs in one
    batch; a NaN leaves that row's code untouched (an unsteered row in the same batch)."""

    value: float | Sequence[float] | torch.Tensor

    def new_codes(self, z: torch.Tensor) -> torch.Tensor:
        value = torch.as_tensor(self.value, dtype=z.dtype, device=z.device)
        if value.ndim == 2:  # per batch row: broadcast over positions
            value = value[:, None, :]
        z = z.clone()
        features = list(self.features)
        z[..., features] = torch.where(torch.isnan(value), z[..., features], value)
        return z


@dataclass(kw_only=True)
class Scale(FeatureEdit):
    """Multiply the features' codes by ``factor`` (``0`` deactivates, negative reverses)."""

    factor: float

    def new_codes(self, z: torch.Tensor) -> torch.Tensor:
        z = z.clone()
        z[..., list(self.features)] = z[..., list(self.features)] * self.factor
        return z


@dataclass(kw_only=True)
class Reconstruct(Edit):
    """Replace the activation by the SAE's reconstruction, error term dropped (for loss recovered)."""

    sae: SAE

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        dtype = self.sae.W_dec.dtype
        return self.sae.decode(self.sae.encode(x.to(dtype))).to(x.dtype)


@dataclass(kw_only=True)
class Ablate(Edit):
    """Replace the activation by zeros (the baseline of loss recovered)."""

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(x)


def _visit(model, edits: Sequence[Edit], read: Sequence[Site], step: int, saved: dict) -> None:
    """Inside a trace: visit every site in execution order, edit it, and save what is read into ``saved``.

    nnsight requires modules to be accessed in the order they run; sites are
    sorted by (layer, position). Several edits at one site apply in the given order.
    """
    sites = sorted({*(e.site for e in edits), *read}, key=lambda s: s.order)
    for site in sites:
        module = hooks.module_at(model, site)
        x = hooks.read_output(module)
        new = x
        for edit in (e for e in edits if e.site == site):
            new = edit.at_step(new, step)
        if new is not x:
            hooks.write_output(module, new)
        if site in read:
            saved[site] = nnsight.save(new)


def forward_with_edits(model, prompts: Sequence[str] | torch.Tensor, edits: Sequence[Edit] = (), read: Sequence[Site] = ()):
    """One forward pass with ``edits`` on strings (padded left) or a tensor of token ids [batch, seq];
    returns (logits [batch, seq, vocab], {site: activation})."""
    saved: dict[Site, torch.Tensor] = {}  # filled inside the trace (an outer object outlives it)
    inputs = prompts if isinstance(prompts, torch.Tensor) else list(prompts)
    with torch.no_grad(), model.trace(inputs):
        _visit(model, edits, read, 0, saved)
        logits = nnsight.save(model.output.logits)
    return logits, saved


def generate_with_edits(
    model, prompts: Sequence[str], edits: Sequence[Edit] = (), max_new_tokens: int = 20, **generate_kwargs
) -> torch.Tensor:
    """Generate with ``edits`` applied at every forward step; returns new token ids [batch, new].

    Greedy unless ``do_sample=True`` is passed. The edits reach every generated
    token through nnsight's ``tracer.iter``; the result is read in a second
    invoke because an open-ended ``iter`` stops the code after it by design.
    """
    generate_kwargs.setdefault("do_sample", False)
    pad = model.tokenizer.pad_token_id
    with warnings.catch_warnings(), torch.no_grad():
        warnings.filterwarnings("ignore", message=".*was never reached.*")
        with model.generate(max_new_tokens=max_new_tokens, pad_token_id=pad, **generate_kwargs) as tracer:
            with tracer.invoke(list(prompts)):
                if edits:
                    for step in tracer.iter[:]:
                        _visit(model, edits, (), step, {})
            with tracer.invoke():
                output = nnsight.save(tracer.result)
    n_prompt = model.tokenizer(list(prompts), padding=True, return_tensors="pt")["input_ids"].shape[1]
    return output[:, n_prompt:]


def batches(items: Sequence, size: int):
    """Consecutive chunks of ``items`` of at most ``size`` (the last may be shorter)."""
    it = iter(items)
    while chunk := list(itertools.islice(it, size)):
        yield chunk
