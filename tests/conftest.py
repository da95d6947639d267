"""Shared fixtures: tiny real models and SAEs, and a guard that keeps every test off the network."""

from __future__ import annotations

import ipaddress
import json
import os
import random
import socket
import sys
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"  # before transformers / huggingface_hub are imported
os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# matplotlib's font cache per environment: a cache shared between environments names font files of another
# (perhaps deleted) one, and its rebuild logs "findfont" lines to a notebook cell's stderr
os.environ.setdefault("MPLCONFIGDIR", str(Path(sys.prefix) / "matplotlib"))

import pytest  # noqa: E402

from saesteer.core.models import load_model  # noqa: E402
from saesteer.core.tiny import FAMILIES, random_sae  # noqa: E402
from saesteer.gemma3 import build as gemma3_build  # noqa: E402
from saesteer.gemma3.saes import BuildConfig  # noqa: E402

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


GEMMA3_SOURCES = ("fortunes", "wordnet", "python-docs")


def tiny_config(**changes) -> BuildConfig:
    """The Gemma 3 SAE build sized for the tiny Gemma 3 (2 layers, width 32): seconds, not an hour."""
    values = dict(n_layers=2, band=(0, 1), topk_layers=(1,), width=64, target_l0=8, k=4, samples=64 * 6, batch=64,
                  context=16, chunk_rows=12, batches_per_chunk=2, norm_rows=8, heldout_rows=8, loss_rows=4,
                  loss_positions=4, checkpoints=2)
    return BuildConfig(**(values | changes))


def write_corpus(folder, docs_per_source: int = 60):
    """A miniature corpus in the real one's format: documents of the tiny tokenizer's words."""
    rng = random.Random(0)
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", docs_per_source), ("heldout", docs_per_source // 3)):
        with open(folder / f"{split}.jsonl", "w") as handle:
            for source in GEMMA3_SOURCES:
                for _ in range(n):
                    text = " ".join(f"w{rng.randrange(60)}" for _ in range(rng.randrange(8, 30)))
                    handle.write(json.dumps({"source": source, "text": text}) + "\n")
    return folder


@pytest.fixture
def tiny_build(tmp_path, tiny_models):
    """The Gemma 3 SAE build on the tiny Gemma 3 and a miniature corpus, writing only under ``tmp_path``."""
    return gemma3_build.Build(cfg=tiny_config(), model_name="tiny:gemma3", device="cpu", cache=tmp_path / "cache",
                              corpus_dir=write_corpus(tmp_path / "corpus"), manifest_path=tmp_path / "saes.json",
                              quality_path=tmp_path / "quality.json", progress=False)
