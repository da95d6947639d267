"""The committed organism as chapters use it: its folder, manifest, model, SAEs and language.

Loading imports no training code: ``build`` makes the artifacts, this module only reads them.
"""

from __future__ import annotations

from pathlib import Path

import transformers

from saesteer.core.files import repo_root
from saesteer.core.hooks import Site
from saesteer.core.models import wrap
from saesteer.core.saes import load_sae


def folder() -> Path:
    """``data/organism/`` of this repository."""
    return repo_root() / "data" / "organism"


def load_organism(device: str = "cpu", organism_dir: Path | None = None):
    """The committed organism's model and tokenizer, wrapped for nnsight."""
    out = organism_dir or folder()
    tokenizer = transformers.PreTrainedTokenizerFast.from_pretrained(out / "tokenizer")
    model = transformers.AutoModelForCausalLM.from_pretrained(out / "model").to(device).eval()
    return wrap(model, tokenizer)


def organism_sae(site: Site, organism_dir: Path | None = None):
    """The organism's SAE at ``site``."""
    return load_sae(path=str((organism_dir or folder()) / "saes" / site.slug))
