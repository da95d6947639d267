"""Loading models: nothing touches the network: the guard refuses outside connections, and hub names fail offline, clearly."""

import os
import socket

import pytest

from conftest import NetworkBlocked
from saesteer.core.models import load_model, torch_model


def test_hub_is_offline_and_outside_connections_are_refused():
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    with pytest.raises(NetworkBlocked):
        socket.create_connection(("192.0.2.1", 443), timeout=1)


def test_hub_model_name_fails_offline_with_a_clear_message():
    with pytest.raises(FileNotFoundError) as err:
        load_model("google/gemma-2-2b")
    message = str(err.value)
    assert message.startswith("Model 'google/gemma-2-2b' is not in the Hugging Face cache (")
    assert "huggingface.co/google/gemma-2-2b if it is gated" in message and "huggingface-cli download google/gemma-2-2b" in message


def test_local_directory_loads_without_network(tmp_path, tiny_models):
    model = tiny_models["phi3"]
    torch_model(model).save_pretrained(tmp_path)
    model.tokenizer.save_pretrained(tmp_path)
    reloaded = load_model(str(tmp_path))
    assert reloaded.config.model_type == "phi3"
    assert reloaded.tokenizer("w1 w2")["input_ids"] == model.tokenizer("w1 w2")["input_ids"]


def test_a_model_the_study_builds_loads_from_its_cache_or_names_its_command(tmp_path, monkeypatch, tiny_models):
    monkeypatch.setenv("SAESTEER_CACHE", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"built by the study .* run `make gemma3-chat`"):
        load_model("gemma3-270m-chat")
    model = tiny_models["gemma3"]
    torch_model(model).save_pretrained(tmp_path / "models" / "gemma3-270m-chat")
    model.tokenizer.save_pretrained(tmp_path / "models" / "gemma3-270m-chat")
    assert load_model("gemma3-270m-chat").config.model_type == model.config.model_type


def test_dtype_and_device_parameters():
    model = load_model("tiny:gemma2", device="cpu", dtype="bfloat16")
    assert next(torch_model(model).parameters()).dtype.is_floating_point
    assert str(next(torch_model(model).parameters()).dtype) == "torch.bfloat16"
    with pytest.raises(ValueError, match="dtype 'float64' is not one of float32, bfloat16, float16"):
        load_model("tiny:gemma2", dtype="float64")
    with pytest.raises(ValueError, match="Model 'tiny:mamba' is not a model; the tiny families are gemma2, gemma3, phi3, llama, gpt2."):
        load_model("tiny:mamba")
