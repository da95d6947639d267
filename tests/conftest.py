"""Shared fixtures: tiny real models and SAEs, and a guard that keeps every test off the network."""

from __future__ import annotations

import ipaddress
import os
import socket
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"  # before transformers / huggingface_hub are imported
os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402

from saesteer.core.models import load_model  # noqa: E402
from saesteer.core.tiny import FAMILIES, random_sae  # noqa: E402

_real_connect = socket.socket.connect


class NetworkBlocked(RuntimeError):
    """Raised when a test tries to reach anything but this machine."""


def _guarded_connect(sock, address):
    """Allow loopback and Unix sockets (kernels, the book server); refuse everything else."""
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        host = address[0]
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = host == "localhost"
        if not loopback:
            raise NetworkBlocked(f"test tried to connect to {address!r}")
    return _real_connect(sock, address)


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Every test runs with outbound connections refused (loopback stays open)."""
    monkeypatch.setattr(socket.socket, "connect", _guarded_connect)


@pytest.fixture(scope="session")
def tiny_models():
    """One tiny random nnsight-wrapped model per supported family."""
    return {family: load_model(f"tiny:{family}") for family in FAMILIES}


@pytest.fixture(params=FAMILIES)
def family_model(request, tiny_models):
    """(family, model), parametrized over every supported family."""
    return request.param, tiny_models[request.param]


@pytest.fixture(scope="session")
def sae():
    """A random TopK SAE (sae-lens) of the tiny models' width."""
    return random_sae(32, d_sae=64, k=8)


PROMPTS = ["w1 w2 w3 w4", "w5 w6", "w7 w8 w9"]


def run_results(root: Path, chapter: str) -> Path:
    """The results file of the one papermill run of ``chapter`` under a results root: a run that is not the
    pipeline's writes to ``runs/<chapter>/<setting>-<hash>/`` (never over the book's results)."""
    found = sorted((root / "runs" / chapter).glob("*/results.json"))
    assert len(found) == 1, f"expected one run of {chapter} under {root}, found {found}"
    return found[0]
