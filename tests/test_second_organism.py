"""The second organism (the coherence judge): trained on the organism's language with its own seeds, saved
atomically, skipped when present, and loaded with the organism's tokenizer for perplexity scoring."""

import torch

from saesteer.core.generation import perplexity
from saesteer.organism.artifacts import load_organism
from saesteer.organism.second import SecondConfig, build_second, load_second, organism_tokenizer
from saesteer.organism.training import ModelConfig, TrainConfig

TINY = SecondConfig(dialogues=300, held_out_rows=4, model=ModelConfig(hidden=16, layers=1, heads=2, mlp=32, context=64),
                    train=TrainConfig(steps=4, batch=4, lr=3e-3, warmup=1))


def test_second_organism_trains_saves_skips_and_loads(tmp_path):
    out = tmp_path / "second"
    manifest = build_second(TINY, out=out, progress=False)
    assert (out / "model").is_dir() and not (tmp_path / "second.partial").exists()
    assert manifest["config"]["seed"] != 0 and manifest["config"]["corpus_seed"] != manifest["organism_seed"]
    assert manifest["parameters"] > 0 and manifest["held_out_loss"] > 0 and len(manifest["data_hash"]) == 16
    stamp = (out / "manifest.json").stat().st_mtime_ns
    assert build_second(TINY, out=out, progress=False) == manifest  # present: skipped, not retrained
    assert (out / "manifest.json").stat().st_mtime_ns == stamp
    judge = load_second(out=out)
    assert judge.tokenizer.get_vocab() == organism_tokenizer().get_vocab()
    organism = load_organism()
    prompt = "user : tell me about the sea . assistant :"
    ids = organism.tokenizer(" the sea is", add_special_tokens=False, return_tensors="pt")["input_ids"]
    ppl = perplexity(judge, [prompt], ids)  # the judge scores the organism's token ids
    assert torch.isfinite(ppl).all() and (ppl > 1).all()


def test_second_organism_seeds_differ_from_the_organisms():
    cfg = SecondConfig()
    assert cfg.seed != 0 and cfg.model.layers < 6 and cfg.model.hidden < 192
