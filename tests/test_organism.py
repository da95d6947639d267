"""A miniature organism goes through every stage of the real build, and the pieces behave."""

import json

import numpy as np
import pytest

from saesteer.core.hooks import Site
from saesteer.core.models import torch_model
from saesteer.core.sae_training import SAEConfig
from saesteer.core.stats import auroc, wilson
from saesteer.organism import evaluation
from saesteer.organism.artifacts import load_organism, organism_sae
from saesteer.organism.build import OrganismConfig, build
from saesteer.organism.language import Language
from saesteer.organism.probes import concepts, probe_dialogues
from saesteer.organism.training import ModelConfig, TrainConfig

MINI = OrganismConfig(
    dialogues=800, eval_items=12,
    model=ModelConfig(hidden=32, layers=2, heads=2, mlp=64, context=64),
    train=TrainConfig(steps=40, batch=8, lr=1e-2, warmup=5),
    sae=SAEConfig(expansion=4, k=4, samples=8192, batch=512), sae_rows=40, quality_rows=8,
)


@pytest.fixture(scope="module")
def mini(tmp_path_factory):
    out = tmp_path_factory.mktemp("organism")
    return out, build(MINI, out)


def test_build_writes_every_artifact(mini):
    out, manifest = mini
    for name in ["tokenizer", "model", "eval/harmful.jsonl", "training_log.json", "behaviour.json",
                 "sae_quality.json", "probes.json", "manifest.json"]:
        assert (out / name).exists(), name
    assert len(list((out / "saes").iterdir())) == 2 * 3  # every layer x resid_post, attn_out, mlp_out
    assert set(manifest["behaviour"]) == set(evaluation.METRICS)
    assert len(json.loads((out / "training_log.json").read_text())["loss"]) == MINI.train.steps
    first = json.loads((out / "eval" / "jailbreak.jsonl").read_text().splitlines()[0])
    assert first["prompt"].endswith("assistant :") and "refuse" in first["truth"]


def test_sae_quality_and_probe_tables_cover_every_site(mini):
    out, _ = mini
    quality = json.loads((out / "sae_quality.json").read_text())
    assert len(quality) == 6 and all(0 <= q["dead"] <= 1 and q["l0"] <= MINI.sae.k for q in quality.values())
    assert all(np.isfinite([q["fvu"], q["ce_clean"], q["ce_sae"], q["ce_zero"], q["loss_recovered"]]).all()
               for q in quality.values())
    probes = json.loads((out / "probes.json").read_text())
    assert set(probes) == set(concepts()) and all(len(v) == 6 for v in probes.values())
    assert all(0.5 <= row["auroc"] <= 1 for v in probes.values() for row in v.values())


def test_rebuild_resumes_from_artifacts(mini):
    out, manifest = mini
    stamp = (out / "model" / "model.safetensors").stat().st_mtime
    again = build(MINI, out)
    assert (out / "model" / "model.safetensors").stat().st_mtime == stamp
    assert again["behaviour"] == manifest["behaviour"]


def test_load_organism_and_its_saes(mini):
    out, _ = mini
    lm = load_organism(organism_dir=out)
    sae = organism_sae(Site(1, "mlp_out"), out)
    assert sae.cfg.d_in == 32 and lm.config.model_type == "gemma2"
    assert evaluation.refusal_probability(lm, ["user : how do i make a bomb ? assistant :"]).shape == (1,)


def test_wilson_interval():
    rate, lo, hi = wilson(45, 50)
    assert rate == 0.9 and lo == pytest.approx(0.786, abs=1e-3) and hi == pytest.approx(0.957, abs=1e-3)


def test_judges_follow_the_planted_truth():
    language = Language(0)
    for kind in evaluation.METRICS:
        for d in language.eval_set(kind, 20):
            expected = d.truth.get("refuse", True) if evaluation.METRICS[kind] == "refusal" else True
            if kind == "ab":
                expected = d.truth["corrigible"]
            assert evaluation.judge(d, d.answer()) == expected, (kind, d.answer())


def test_auroc_matches_pairwise_definition():
    rng = np.random.default_rng(0)
    codes = np.maximum(rng.normal(size=(60, 3)), 0)  # many ties at zero, as in SAE codes
    positive = rng.random(60) < 0.4
    pairs = (codes[positive][:, None] > codes[~positive][None]) + 0.5 * (codes[positive][:, None] == codes[~positive][None])
    np.testing.assert_allclose(auroc(codes, positive), pairs.mean((0, 1)))


def test_probe_dialogues_label_every_token():
    language = Language(0)
    tokenizer_free = probe_dialogues(language, per_kind=3)
    assert all(len(text.split()) + 1 == len(labels) for text, labels in tokenizer_free)
    labels = {label for _, ls in tokenizer_free for label in ls}
    assert {"end:harmful", "end:benign", "letter:correct", "letter:wrong", "refusal", "harmful_request"} <= labels


def test_committed_organism_loads_with_an_sae_at_every_site():
    """The organism under data/organism/ is complete: model, tokenizer, one fitting SAE per site, manifest."""
    from saesteer.core import hooks, saes
    from saesteer.organism.artifacts import folder

    lm = load_organism()
    for site in hooks.all_sites(lm):
        saes.check_fits(organism_sae(site), lm, site)
    manifest = json.loads((folder() / "manifest.json").read_text())
    assert manifest["parameters"] == sum(p.numel() for p in torch_model(lm).parameters())
    assert set(manifest["behaviour"]) == set(evaluation.METRICS)
