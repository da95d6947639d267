"""Checks behind the methods page: hook points, the exact SAE splice, and edit responses.

These are the guarantees every chapter relies on, computed (not asserted) on
whatever model and SAE the methods notebook is given.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F

from saesteer.core import hooks
from saesteer.core.hooks import Site
from saesteer.core.interventions import (
    Clamp,
    Scale,
    forward_with_edits,
    generate_with_edits,
)
from saesteer.core.tiny import FAMILIES, TINY_SIZES
from saesteer.study.params import Param, ParameterError, check_feature, check_layer

PARAMS = {  # the methods notebook's parameters
    "setting": Param(str),  # results go to data/results/<setting>/methods/
    "families": Param(list, choices=FAMILIES, nonempty=True),  # tiny model families to check
    "layer": Param(int, min=0),  # layer of the clamp experiment (checked against depth after loading)
    "position": Param(str, choices=hooks.POSITIONS),  # hook position of the clamp experiment
    "d_sae": Param(int, min=1, max=65536),  # width of the random TopK SAE
    "k": Param(int, min=1),  # TopK sparsity
    "feature": Param(int, min=0),  # feature to clamp (checked against d_sae)
    "clamp_values": Param(list, items=float, nonempty=True),  # values to clamp the feature to
    "n_new_tokens": Param(int, min=1, max=64),  # tokens generated in the every-token check
    "seed": Param(int, min=0),  # seed of models and SAEs
}


def check_params(params: dict) -> None:
    """The SAE's sparsity, the feature and the layer against the SAE's width and the tiny models' depth."""
    if params["k"] > params["d_sae"]:
        raise ParameterError(f"Parameter 'k' must be at most d_sae ({params['d_sae']}); got {params['k']!r}.")
    check_feature("feature", params["feature"], params["d_sae"])
    check_layer("layer", params["layer"], TINY_SIZES["layers"])


def hook_table(model) -> list[dict]:
    """One row per hook site: its module path and the width read there (on the prompt ``<bos>`` alone)."""
    lay = hooks.layout(model)
    sites = [Site(layer, pos) for layer in range(hooks.n_layers(model)) for pos in hooks.POSITIONS]
    _, acts = forward_with_edits(model, [""], read=sites)
    rows = []
    for site in sites:
        sub = "" if site.position == "resid_post" else "." + getattr(lay, site.position)
        rows.append({"site": str(site), "module": f"{lay.layers}.{site.layer}{sub}", "width": acts[site].shape[-1]})
    return rows


def splice_error(model, sae, sites: Sequence[Site], prompts: Sequence[str]) -> float:
    """Largest absolute logit difference between the clean model and the SAE spliced in (no edit) at ``sites``."""
    clean, _ = forward_with_edits(model, prompts)
    identity = [Scale(site=s, sae=sae, features=list(range(sae.cfg.d_sae)), factor=1.0) for s in sites]
    spliced, _ = forward_with_edits(model, prompts, identity)
    return (clean - spliced).abs().max().item()


def clamp_response(model, sae, site: Site, feature: int, values: Sequence[float], prompts: Sequence[str]) -> list[dict]:
    """For each clamp value: the mean KL(clean || clamped) of next-token distributions, and how far the
    activation moved along the feature's decoder direction (which should equal ``value - z_f``)."""
    clean, acts = forward_with_edits(model, prompts, read=[site])
    code = sae.encode(acts[site])[..., feature]
    direction = sae.W_dec[feature]
    rows = []
    for value in values:
        edit = Clamp(site=site, sae=sae, features=[feature], value=value)
        logits, edited = forward_with_edits(model, prompts, [edit], read=[site])
        moved = (edited[site] - acts[site]) @ direction / direction.norm() ** 2
        kl = F.kl_div(F.log_softmax(logits, -1), F.log_softmax(clean, -1), log_target=True, reduction="none")
        rows.append({
            "value": value,
            "kl": kl.sum(-1).mean().item(),
            "move_error": (moved - (value - code)).abs().max().item(),
        })
    return rows


def edited_steps(model, sae, site: Site, feature: int, value: float, prompts: Sequence[str], n_new: int) -> dict:
    """Greedy continuations without and with a clamp on every token: the share of tokens that changed
    and the number of forward steps the edit ran at (the prompt pass plus one per generated token)."""
    clean = generate_with_edits(model, prompts, max_new_tokens=n_new, min_new_tokens=n_new)
    edit = Clamp(site=site, sae=sae, features=[feature], value=value)
    steered = generate_with_edits(model, prompts, [edit], max_new_tokens=n_new, min_new_tokens=n_new)
    return {"clean": clean, "steered": steered, "changed": (clean != steered).float().mean().item(),
            "steps": len(edit.steps_seen)}

