"""Loading sae-lens SAEs and checking that they fit the hook point they are used on."""

from __future__ import annotations

from pathlib import Path

import torch
from huggingface_hub.errors import LocalEntryNotFoundError
from sae_lens import SAE
from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory

from saesteer.core import hooks


def load_sae(release: str | None = None, sae_id: str | None = None, path: str | None = None, device: str = "cpu") -> SAE:
    """An SAE from a sae-lens release and id, or from a local directory saved by sae-lens.

    Exactly one of (``release`` with ``sae_id``) or ``path`` must be given.
    """
    if path is not None:
        if not Path(path, "cfg.json").is_file():
            raise FileNotFoundError(f"SAE directory {path!r} has no cfg.json; save SAEs with sae-lens's save_model.")
        return SAE.load_from_disk(path, device=device).eval()
    if release is None or sae_id is None:
        raise ValueError("Give an SAE either as a local path or as a sae-lens release with an sae_id.")
    check_release(release, sae_id)
    try:
        return SAE.from_pretrained(release, sae_id, device=device).eval()
    except LocalEntryNotFoundError as err:
        raise FileNotFoundError(
            f"SAE {release}/{sae_id} is not in the Hugging Face cache and the hub cannot be reached; "
            "download it on a machine with hub access, or pass a local SAE directory."
        ) from err


def check_release(release: str, sae_id: str) -> None:
    """Raise a clear error unless ``release``/``sae_id`` is in sae-lens's bundled directory (offline check)."""
    directory = get_pretrained_saes_directory()
    if release not in directory:
        raise ValueError(f"SAE release {release!r} is not in sae-lens's pretrained_saes.yaml.")
    ids = directory[release].saes_map
    if sae_id not in ids:
        raise ValueError(f"SAE id {sae_id!r} is not in release {release!r} (e.g. {next(iter(ids))!r}).")


def check_fits(sae: SAE, model, site: hooks.Site) -> None:
    """Raise a clear error when the SAE's input width differs from the hooked module's width."""
    width = hooks.hidden_size(model)
    if sae.cfg.d_in != width:
        raise ValueError(f"SAE d_in {sae.cfg.d_in} does not match the width {width} of {site} in this model.")


def unit_rows(matrix: torch.Tensor) -> torch.Tensor:
    """Rows scaled to unit norm, as float32 (zero rows stay zero)."""
    matrix = matrix.detach().float()
    return matrix / matrix.norm(dim=1, keepdim=True).clamp_min(1e-12)


def unit_decoder(sae: SAE) -> torch.Tensor:
    """The SAE's decoder directions as unit rows [d_sae, d_in] (float32)."""
    return unit_rows(sae.W_dec)
