"""Loading SAEs (local directory, sae-lens release) and checking their width, offline."""

from pathlib import Path

import pytest
import torch
import yaml

from saesteer.core import saes
from saesteer.core.hooks import Site
from saesteer.core.tiny import random_sae

ROOT = Path(__file__).resolve().parents[1]
REAL_IDS = [  # ids the real-model parameter files use (see shared REAL-MODELS notes)
    ("gemma-scope-2b-pt-res-canonical", "layer_14/width_16k/canonical"),
    ("gemma-scope-2b-pt-mlp-canonical", "layer_3/width_16k/canonical"),
    ("gemma-scope-9b-it-res-canonical", "layer_20/width_16k/canonical"),
    ("goodfire-llama-3.1-8b-instruct", "layer_19"),
    ("gemma-scope-2-270m-pt-res-all", "layer_17_width_16k_l0_small"),  # Gemma Scope 2: every layer 0-17
    ("gemma-scope-2-270m-pt-mlp-all", "layer_0_width_16k_l0_small"),
    ("gemma-scope-2-270m-pt-att-all", "layer_9_width_16k_l0_small"),  # named in the feature_flow file's header only
    ("gemma-scope-2-270m-it-res-all", "layer_12_width_16k_l0_small"),
]


def test_local_directory_round_trip(tmp_path, sae):
    sae.save_model(str(tmp_path))
    loaded = saes.load_sae(path=str(tmp_path))
    x = torch.randn(4, 32)
    assert torch.equal(loaded.encode(x), sae.encode(x))


def test_missing_directory_and_missing_spec_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="has no cfg.json"):
        saes.load_sae(path=str(tmp_path / "nowhere"))
    with pytest.raises(ValueError, match="either as a local path or as a sae-lens release"):
        saes.load_sae(release="gemma-scope-2b-pt-res-canonical")


@pytest.mark.parametrize("release, sae_id", REAL_IDS)
def test_real_release_ids_exist_in_sae_lens_directory(release, sae_id):
    saes.check_release(release, sae_id)


def test_unknown_release_or_id_is_a_clear_error():
    with pytest.raises(ValueError, match="release 'gemma-scope-3b' is not in sae-lens"):
        saes.check_release("gemma-scope-3b", "layer_0")
    with pytest.raises(ValueError, match="SAE id 'layer_99/width_16k/canonical' is not in release"):
        saes.check_release("gemma-scope-2b-pt-res-canonical", "layer_99/width_16k/canonical")


def test_pretrained_offline_says_what_is_missing():
    with pytest.raises(FileNotFoundError, match="not in the Hugging Face cache and the hub cannot be reached"):
        saes.load_sae("gemma-scope-2b-pt-res-canonical", "layer_14/width_16k/canonical")


def _layers(values: dict) -> list[int]:
    """The layers a parameter file names (its ``layer``, ``layers``, ``search_layers``, ``seed_layer``); layer 0 if none
    (an empty list means every layer, which the file alone cannot enumerate)."""
    found = set()
    for key in ("layer", "layers", "search_layers", "seed_layer"):
        value = values.get(key)
        found |= set(value) if isinstance(value, list) else {value} if isinstance(value, int) else set()
    return sorted(found) or [0]


def test_every_parameter_file_names_existing_sae_ids():
    """Every sae-lens release a parameter file names (``sae_release``, ``mlp_sae_release``, ...) with its id template,
    expanded at the file's layers, must be in sae-lens's bundled directory (check_release raises otherwise)."""
    checked = 0
    for path in sorted((ROOT / "notebooks" / "params").rglob("*.yaml")):
        values = yaml.safe_load(path.read_text())
        for key in [k for k in values if k.endswith("sae_release") and values[k]]:
            template = values[key.removesuffix("release") + "id"]
            for layer in _layers(values):
                saes.check_release(values[key], template.format(layer=layer))
                checked += 1
    assert checked >= 5  # the real-model files of chapter A (Gemma) at least


def test_width_mismatch_is_a_clear_error(tiny_models):
    wide = random_sae(48)
    with pytest.raises(ValueError, match=r"SAE d_in 48 does not match the width 32 of resid_post@1"):
        saes.check_fits(wide, tiny_models["gemma2"], Site(1))
    saes.check_fits(random_sae(32), tiny_models["gemma2"], Site(1))
