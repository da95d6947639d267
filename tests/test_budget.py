"""Memory estimates of the real-model runs, and the rerun page's table of them."""

import re
from pathlib import Path

import pytest
import torch
import transformers

from saesteer.core.packaged import model_cache
from saesteer.study import budget

ROOT = Path(__file__).resolve().parents[1]


def test_parameter_counts_match_the_published_model_sizes():
    """Counted on the meta device from the recorded shapes: Gemma-2-2B has 2.61B parameters, Phi-3 Mini 3.82B,
    Gemma 3 270M 268M (its safetensors hold 268,098,176, the embedding tied to the unembedding)."""
    assert budget.n_parameters("google/gemma-2-2b") == 2_614_341_888
    assert budget.n_parameters("microsoft/Phi-3-mini-4k-instruct") == 3_821_079_552
    assert budget.n_parameters("google/gemma-3-270m") == budget.n_parameters("google/gemma-3-270m-it") == 268_098_176


def test_gemma3_shape_is_the_real_configs():
    """The recorded Gemma 3 270M shape is that of the real config.json, where the packaged model's cache has one
    (``make gemma3-model``): same shape fields, same parameter count."""
    cached = model_cache() / "gemma3-270m"
    if not (cached / "config.json").is_file():
        pytest.skip("no de-quantised Gemma 3 270M in the cache (make gemma3-model)")
    real = transformers.AutoConfig.from_pretrained(cached)
    name, shape = budget.ARCHITECTURES["google/gemma-3-270m"]
    assert type(real).__name__ == name and {k: getattr(real, k) for k in shape} == shape
    with torch.device("meta"):
        net = transformers.AutoModelForCausalLM.from_config(real)
    assert sum(p.numel() for p in net.parameters()) == budget.n_parameters("google/gemma-3-270m")


def test_sae_sites_follow_the_parameter_file():
    assert len(budget.sae_sites("feature_flow", {"layers": []}, 26)) == 78
    assert budget.sae_sites("refusal_steering", {"search_layers": [6, 9], "layer": 12}, 26) == [
        (6, "resid_post"), (9, "resid_post"), (12, "resid_post")]
    assert budget.sae_width({"sae_id": "layer_3/width_65k/canonical"}, 2304) == 65 * 1024
    assert budget.sae_width({"sae_id": "layer_{layer}_width_16k_l0_small"}, 640) == 16 * 1024  # Gemma Scope 2
    assert budget.sae_width({"sae_id": None}, 3072) == 8 * 3072


def test_every_real_model_parameter_file_has_an_estimate():
    files = budget.real_model_files(ROOT)
    assert len(files) == 9
    rows = {(r["chapter"], Path(r["parameter file"]).stem): r for r in map(budget.estimate, files)}
    flow = rows["feature_flow", "gemma2-2b"]
    assert flow["SAEs"] == 78 and flow["total GiB"] == pytest.approx(
        flow["weights GiB"] + flow["SAEs GiB"] + flow["KV cache GiB"])
    assert rows["feature_flow", "gemma3-270m-scope2"]["SAEs"] == 54  # 3 positions x 18 layers
    for row in rows.values():  # Gemma-2-2B in bfloat16, Gemma 3 270M in float32
        if "gemma-2" in row["model"]:
            assert row["weights GiB"] == pytest.approx(2_614_341_888 * 2 / 2**30)
        if "gemma-3" in row["model"]:
            assert row["weights GiB"] == pytest.approx(268_098_176 * 4 / 2**30) and row["SAE width"] == 16_384


def test_an_unknown_model_is_named_in_the_error():
    with pytest.raises(ValueError, match="no architecture recorded for 'acme/model'"):
        budget.config("acme/model")


def test_the_rerun_page_shows_the_current_table():
    page = (ROOT / "book" / "rerun.md").read_text()
    shown = re.search(r"<!-- budget-table: start.*?-->\n:::\{table\}[^\n]*\n(.*?)\n:::\n<!-- budget-table: end -->", page, re.S)
    assert shown and shown.group(1) == budget.markdown_table(ROOT), (
        "book/rerun.md's memory table is out of date: paste the output of `python -m saesteer.study.budget`")


def test_the_memory_table_is_narrow_with_its_key_columns_first():
    """The table fits the book's text column: chapter, model and GPU memory first, short cells, the file's name only."""
    lines = budget.markdown_table(ROOT).splitlines()
    assert lines[0].startswith("| ch. | model | GPU memory |") and lines[0].endswith("| file |")
    assert max(map(len, lines)) <= 100
    assert any(line.startswith("| A | Phi-3-mini-4k-instruct | **20 GiB** |") for line in lines)
    assert not any("notebooks/params" in line for line in lines)


def test_sae_training_projections_follow_their_stated_rule():
    """Measured: the two Gemma 3 270M builds, read from their records (33 SAEs in 4,830 s; 5 in 877 s). Projected:
    FLOPs = 2 x non-embedding parameters per layer x layers x tokens + 12 x d x width x activations x SAEs."""
    book, chat = budget.measured_training()
    assert (book["saes"], book["width"], book["seconds"]) == (33, 2560, 4830.2)
    assert (chat["saes"], chat["width"], chat["seconds"]) == (5, 5120, 877.1)
    flops = budget.sae_training_flops("google/gemma-2-2b", 26, 1000, 2, 500, 16_384)
    per_layer = (2_614_341_888 - 256_000 * 2304) / 26
    assert flops["forward"] == pytest.approx(2 * per_layer * 26 * 1000)
    assert flops["sae"] == 12 * 2304 * 16_384 * 500 * 2
    phi3 = budget.projected_training()[0]
    state = 5 * (2 * 3072 * 24_576 + 24_576 + 3072) * 16 / 2**30
    assert phi3["state GiB"] == pytest.approx(state) and phi3["memory GiB"] > state + 7  # + bfloat16 weights
    assert budget.duration(90) == "90 s" and budget.duration(4830) == "80 min" and budget.duration(2e6) == "23 days"


def test_the_rerun_page_shows_the_current_training_table():
    page = (ROOT / "book" / "rerun.md").read_text()
    shown = re.search(r"<!-- training-table: start.*?-->\n:::\{table\}[^\n]*\n(.*?)\n:::\n<!-- training-table: end -->", page, re.S)
    assert shown and shown.group(1) == budget.training_table(), (
        "book/rerun.md's SAE-training table is out of date: paste the output of `python -m saesteer.study.budget --training`")


def test_every_real_model_parameter_file_is_run_by_a_tiny_model_test():
    """Each real-model parameter file is named by a chapter's test module, which runs it on a tiny model of
    the same architecture (a new parameter file without such a test fails here)."""
    tests = {p: p.read_text() for p in (ROOT / "tests").glob("test_*.py") if p.name != Path(__file__).name}
    for param_file in budget.real_model_files(ROOT):
        chapter_tests = tests.get(ROOT / "tests" / f"test_{param_file.parent.name}.py", "")
        assert f'"{param_file.name}"' in chapter_tests, f"no tiny-model test runs {param_file.relative_to(ROOT)}"
