"""The Gemma 3 SAE build, end to end on the tiny Gemma 3 and a miniature corpus: stages, skipping,
resuming after an interruption, the folded normalisation, and the errors of bad input."""

import json

import pytest
import torch
from sae_lens.saes.jumprelu_sae import JumpReLUTrainingSAE, JumpReLUTrainingSAEConfig

from conftest import tiny_config, write_corpus
from saesteer.core.hooks import Site
from saesteer.gemma3 import build as gb
from saesteer.gemma3.saes import BuildConfig, SiteNorm, activation_stream, estimate_norms, token_rows


def test_the_plan_covers_every_layer_and_the_band():
    cfg = BuildConfig()
    names = [s.name for s in cfg.specs()]
    assert len(names) == 18 + 2 * 6 + 3 and len(set(names)) == len(names)
    assert "jumprelu_attn_out_6" in names and "topk_resid_post_8" in names and "jumprelu_resid_post_17" in names


def test_a_layer_outside_the_model_is_one_sentence():
    with pytest.raises(ValueError, match="Layer 18 is outside 0-17"):
        BuildConfig(topk_layers=(18,))
    with pytest.raises(ValueError, match="must not exceed the width"):
        BuildConfig(width=16)


def test_rows_take_equal_shares_of_each_source_and_open_with_bos(tmp_path, tiny_models):
    tokenizer = tiny_models["gemma3"].tokenizer
    rows = token_rows(write_corpus(tmp_path) / "train.jsonl", tokenizer, 9, tiny_config())
    assert rows.shape == (9, 16) and (rows[:, 0] == tokenizer.bos_token_id).all()
    assert (rows[:, 1:] != tokenizer.bos_token_id).all()
    with pytest.raises(ValueError, match="too few tokens"):
        token_rows(tmp_path / "train.jsonl", tokenizer, 10_000, tiny_config())
    with pytest.raises(FileNotFoundError, match="make gemma3-corpus"):
        token_rows(tmp_path / "missing.jsonl", tokenizer, 9, tiny_config())


def test_folding_the_normalisation_keeps_codes_and_reconstructions():
    """An SAE trained on (x - mean) * scale, folded, gives the same codes on raw x and the reconstruction
    mapped back (x_hat / scale + mean)."""
    torch.manual_seed(0)
    x = torch.randn(50, 8) * 30 + 100
    norm = SiteNorm(mean=x.mean(0), scale=0.05, median_distance=1.0)
    sae = JumpReLUTrainingSAE(JumpReLUTrainingSAEConfig(d_in=8, d_sae=16, jumprelu_init_threshold=0.0))
    normalised = (x - norm.mean) * norm.scale
    with torch.no_grad():
        codes, recon = sae.encode(normalised), sae.decode(sae.encode(normalised))
        norm.fold_into(sae)
        assert torch.allclose(sae.encode(x), codes, atol=1e-5)
        assert torch.allclose(sae.decode(sae.encode(x)), recon / norm.scale + norm.mean, atol=1e-3)


def test_the_stream_resumed_at_a_step_gives_the_same_batches(tiny_build):
    cfg, model = tiny_build.cfg, tiny_build.model
    rows = token_rows(tiny_build.corpus_dir / "train.jsonl", model.tokenizer, 36, cfg)
    norms = estimate_norms(model, rows[-8:], cfg.sites(), cfg.outlier_factor)
    full = list(activation_stream(model, rows, norms, cfg))
    resumed = list(activation_stream(model, rows, norms, cfg, start_step=3))
    assert len(full) == 6 and len(resumed) == 3
    for a, b in zip(full[3:], resumed):
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert all(x.shape == (cfg.batch, 32) for x in full[0].values())


def test_the_build_runs_every_stage_then_skips_them(tiny_build, capsys):
    assert gb.run(tiny_build) == list(gb.STAGES)
    manifest = tiny_build.manifest()
    assert set(manifest["stages"]) == set(gb.STAGES) and manifest["config"]["width"] == 64
    assert manifest["model_checksums"] == {} and set(manifest["corpus"]) == {"train", "heldout"}
    quality = json.loads(tiny_build.quality_path.read_text())["saes"]
    assert [q["sae"] for q in quality] == [
        "jumprelu_attn_out_0", "jumprelu_mlp_out_0", "jumprelu_resid_post_0", "jumprelu_attn_out_1",
        "jumprelu_mlp_out_1", "jumprelu_resid_post_1", "topk_resid_post_1"]
    for q in quality:
        assert 0 <= q["dead"] <= 1 and q["l0"] > 0 and q["fvu"] > 0
        assert q["delta_loss"] == pytest.approx(q["ce_sae"] - q["ce_clean"])
    topk = next(q for q in quality if q["sae"].startswith("topk"))
    assert topk["l0"] <= 4 + 1e-6
    assert not (tiny_build.cache / "checkpoints").exists() or not any((tiny_build.cache / "checkpoints").rglob("*.safetensors"))
    capsys.readouterr()
    assert gb.run(tiny_build) == []
    assert "nothing to do" in capsys.readouterr().out


def test_a_corrupted_sae_is_rebuilt_and_another_configuration_needs_force(tiny_build):
    gb.run(tiny_build)
    weights = tiny_build.cache / "saes" / "topk_resid_post_1" / "sae_weights.safetensors"
    weights.write_bytes(b"broken")
    assert gb.run(tiny_build) == ["train", "quality"]
    other = gb.Build(**{**tiny_build.__dict__, "cfg": tiny_config(width=96), "_model": None})
    with pytest.raises(gb.StaleArtifacts, match="pass --force"):
        gb.run(other)
    other.force = True
    assert gb.run(other) == list(gb.STAGES)


def test_an_interrupted_training_resumes_from_its_checkpoint(tiny_build, tmp_path, monkeypatch, capsys):
    """The first checkpoint is written, then the run dies; the rerun resumes there and ends with the SAEs an
    uninterrupted build makes."""
    gb.run(tiny_build, until="norms")
    real_keep_only = gb.keep_only

    def die_after_first_checkpoint(checkpoint_path):
        real_keep_only(checkpoint_path)
        raise KeyboardInterrupt

    monkeypatch.setattr(gb, "keep_only", die_after_first_checkpoint)
    with pytest.raises(KeyboardInterrupt):
        gb.run(tiny_build)
    assert gb.latest_checkpoint(gb.checkpoints_dir(tiny_build)) is not None
    assert not tiny_build.is_current("train")
    monkeypatch.setattr(gb, "keep_only", real_keep_only)
    capsys.readouterr()
    assert gb.run(tiny_build) == ["train", "quality"]
    assert "resuming the SAE training at" in capsys.readouterr().out

    fresh = gb.Build(**{**tiny_build.__dict__, "cache": tmp_path / "fresh", "manifest_path": tmp_path / "fresh.json",
                        "quality_path": tmp_path / "fresh-quality.json"})
    gb.run(fresh, until="train")
    for spec in tiny_build.cfg.specs():
        a, b = gb.load_sae(tiny_build, spec.name), gb.load_sae(fresh, spec.name)
        assert torch.allclose(a.W_dec, b.W_dec, atol=1e-5), spec.name


def test_the_command_answers_bad_sizes_in_one_sentence(capsys):
    assert gb.main(["--width", "16"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: Sparsity") and err.count("\n") == 0


def test_a_width_that_cannot_fit_in_memory_is_refused_before_training():
    with pytest.raises(MemoryError, match="lower the width"):
        gb.check_memory(BuildConfig(width=4_000_000, target_l0=60), 640)


def test_a_missing_corpus_names_the_make_target(tiny_build, tmp_path):
    tiny_build.corpus_dir = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match="make gemma3-corpus"):
        gb.run(tiny_build)


def test_site_norms_cover_every_site_of_the_plan(tiny_build):
    cfg, model = tiny_build.cfg, tiny_build.model
    rows = token_rows(tiny_build.corpus_dir / "train.jsonl", model.tokenizer, 8, cfg)
    norms = estimate_norms(model, rows, cfg.sites(), cfg.outlier_factor)
    assert set(norms) == {Site(0), Site(1), Site(0, "attn_out"), Site(0, "mlp_out"), Site(1, "attn_out"),
                          Site(1, "mlp_out")}
    assert all(n.scale > 0 and n.median_distance > 0 for n in norms.values())
