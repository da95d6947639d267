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

Many settings run as the rows of one batch: every edit with per-row values
follows one convention, **a NaN value leaves that row (or that row's code)
untouched**: a NaN clamp value, scale factor, boost factor or vector row.
"""

from __future__ import annotations

import copy
import itertools
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import nnsight
import torch
from sae_lens import SAE

from saesteer.core import hooks, models
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
    """Add ``coeff * vector`` (a steering vector, e.g. CAA or a decoder direction); a vector of
    shape [batch, 1, d] adds one row per prompt, a NaN row leaving its prompt untouched."""

    vector: torch.Tensor
    coeff: float = 1.0

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        vector = self.vector.to(device=x.device, dtype=x.dtype)
        return x + self.coeff * torch.where(torch.isnan(vector), 0.0, vector)


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
class ScaleRows(FeatureEdit):
    """Multiply feature codes by a factor per batch row ([rows, n_features]; NaN = untouched): many
    deactivations, one per row, in one forward pass. With factor r this is h + (r - 1) z_f d_f."""

    factors: torch.Tensor

    def new_codes(self, z: torch.Tensor) -> torch.Tensor:
        z = z.clone()
        factors = self.factors.to(device=z.device, dtype=z.dtype)[:, None, :]
        codes = z[..., list(self.features)]
        z[..., list(self.features)] = torch.where(torch.isnan(factors), codes, codes * factors)
        return z


@dataclass(kw_only=True)
class BoostEach(FeatureEdit):
    """Row i adds ``factors[i]`` times the largest code at that token to feature ``features[i]`` (the
    input/output-score paper's steering rule), decoded with the error term kept; a NaN factor leaves
    the row unsteered. ``factors`` may be one number for every row."""

    factors: float | Sequence[float] | torch.Tensor

    def new_codes(self, z: torch.Tensor) -> torch.Tensor:
        feats = torch.as_tensor(list(self.features), device=z.device)
        factors = torch.as_tensor(self.factors, dtype=z.dtype, device=z.device).expand(len(feats))
        z = z.clone()
        rows = torch.nonzero(~torch.isnan(factors)).flatten()
        amax = z[rows].amax(dim=-1)  # [rows, positions]
        z[rows, :, feats[rows]] = z[rows, :, feats[rows]] + factors[rows, None] * amax
        return z


@dataclass(kw_only=True)
class Reconstruct(Edit):
    """Replace the activation by the SAE's reconstruction, error term dropped (for loss recovered); positions
    before ``from_position`` keep theirs (1 leaves a leading ``<bos>`` alone, as SAE evaluations do: no
    SAE here is trained on it, and Gemma 3's is ~16x the median norm)."""

    sae: SAE
    from_position: int = 0

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        dtype = self.sae.W_dec.dtype
        tail = x[:, self.from_position:]
        return torch.cat([x[:, :self.from_position], self.sae.decode(self.sae.encode(tail.to(dtype))).to(x.dtype)], 1)


@dataclass(kw_only=True)
class Ablate(Edit):
    """Replace the activation by zeros from ``from_position`` on (the baseline of loss recovered)."""

    from_position: int = 0

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x[:, :self.from_position], torch.zeros_like(x[:, self.from_position:])], 1)


def visit_sites(model, edits: Sequence[Edit], read: Sequence[Site], step: int, saved: dict) -> None:
    """Inside a trace: visit every site in execution order, edit it, and save what is read into ``saved``
    (generation ``step`` 0 is the prompt's forward pass).

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


def forward_with_edits(model, prompts: Sequence[str] | torch.Tensor | Mapping, edits: Sequence[Edit] = (),
                       read: Sequence[Site] = (), **forward_kwargs):
    """One forward pass with ``edits`` on strings (padded as the tokenizer pads), a tensor of token ids
    [batch, seq] or a tokenizer's encoding (ids with their attention mask); returns (logits [batch, seq,
    vocab], {site: activation}). ``forward_kwargs`` go to the model (e.g. a key/value cache, or
    ``logits_to_keep=1`` when only the next token matters: the unembedding is most of a small model's cost)."""
    saved: dict[Site, torch.Tensor] = {}  # filled inside the trace (an outer object outlives it)
    inputs = dict(prompts) if isinstance(prompts, Mapping) else prompts if isinstance(prompts, torch.Tensor) else list(prompts)
    with torch.no_grad(), model.trace(inputs, **forward_kwargs):
        visit_sites(model, edits, read, 0, saved)
        logits = nnsight.save(model.output.logits)
    return logits, saved


def read_activations(model, inputs: torch.Tensor | Mapping, sites: Sequence[Site],
                     edits: Sequence[Edit] = ()) -> dict[Site, torch.Tensor]:
    """The activations at ``sites`` (after ``edits``) of one forward pass that stops right after the last
    site it visits: no later layer and no unembedding run (Gemma 3's is 262,144 x 640, most of a full
    forward's cost). ``inputs`` are token ids [batch, seq] or a tokenizer's encoding (ids with their
    attention mask)."""
    saved: dict[Site, torch.Tensor] = {}
    inputs = dict(inputs) if isinstance(inputs, Mapping) else inputs
    with torch.no_grad(), model.trace(inputs) as tracer:
        visit_sites(model, edits, sites, 0, saved)
        tracer.stop()
    return saved


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
                        visit_sites(model, edits, (), step, {})
            with tracer.invoke():
                output = nnsight.save(tracer.result)
    n_prompt = model.tokenizer(list(prompts), padding=True, return_tensors="pt")["input_ids"].shape[1]
    return output[:, n_prompt:]


def prefix_cache(model, ids: torch.Tensor):
    """The key/value cache of token ids [1, seq] (one plain forward pass, no edits)."""
    with torch.no_grad():
        return models.torch_model(model)(ids, use_cache=True).past_key_values


def last_token_logits(model, ids: torch.Tensor, edits: Sequence[Edit] = (), rows: int = 1, prefix=None) -> torch.Tensor:
    """Next-token logits [rows, vocab] (float32, CPU) after ``ids`` [1, seq] repeated ``rows`` times, with
    ``edits``. Given ``prefix``, the ``prefix_cache`` of all but the last token, only the last token runs,
    once per row: every row shares the prompt, so edits must touch the last position only (``tokens="last"``)."""
    if prefix is None:
        logits, _ = forward_with_edits(model, ids.expand(rows, -1), edits, logits_to_keep=1)
        return logits[:, -1].float().cpu()
    cache = copy.deepcopy(prefix)
    cache.batch_repeat_interleave(rows)
    last = ids.shape[1] - 1
    logits, _ = forward_with_edits(model, ids[:, -1:].expand(rows, 1), edits, past_key_values=cache, use_cache=True,
                                   position_ids=torch.full((rows, 1), last, device=ids.device),
                                   cache_position=torch.tensor([last], device=ids.device))
    return logits[:, -1].float().cpu()


def batches(items: Sequence, size: int):
    """Consecutive chunks of ``items`` of at most ``size`` (the last may be shorter)."""
    it = iter(items)
    while chunk := list(itertools.islice(it, size)):
        yield chunk
