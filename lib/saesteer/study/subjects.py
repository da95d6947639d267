"""The subject of a chapter: a model, its SAEs by layer, and its prompt sets, from notebook parameters.

A chapter names its subject with a few parameters: ``model`` ("organism", a hub
id, a local path or ``tiny:<family>``); the SAEs as a sae-lens release with an
id template, or a local directory template (``{layer}`` and ``{position}`` are
filled in), optionally trained with sae-lens on a text file when missing; and
the prompts as a folder of ``<kind>.jsonl`` files ("organism" = the organism's
held-out sets, with selection sets drawn from its training distribution).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from sae_lens import SAE

from saesteer.core import hooks
from saesteer.core.files import fill, read_documents, resolve
from saesteer.core.hooks import Site
from saesteer.core.models import load_model, model_name_problem, resolve_device
from saesteer.core.progress import bar
from saesteer.core.sae_training import SAEConfig, collect, train_sae
from saesteer.core.saes import check_fits, load_sae
from saesteer.core.tokenizer import pack_rows
from saesteer.organism.artifacts import folder as organism_folder
from saesteer.organism.artifacts import language as organism_language
from saesteer.organism.artifacts import load_organism, organism_sae
from saesteer.organism.artifacts import probes as organism_probes
from saesteer.organism.evaluation import Item, as_item, load_items
from saesteer.organism.language import Language
from saesteer.study.params import Param, ParameterError

SUBJECT_PARAMS = {  # the parameters every chapter uses to name its subject
    "model": Param(str),  # "organism", a hub id, a local directory or tiny:<family>
    "device": Param(str, choices=("auto", "cpu", "cuda")),
    "dtype": Param(str, choices=("float32", "bfloat16", "float16")),
    "sae_release": Param(str, optional=True),  # a sae-lens release (real models)
    "sae_id": Param(str, optional=True),  # its id, with {layer}: e.g. layer_{layer}/width_16k/canonical
    "sae_path": Param(str, optional=True),  # or a local SAE directory, with {layer} and {position}
    "sae_train_text": Param(str, optional=True, exists=True),  # text file to train missing local SAEs on
    "prompts": Param(str),  # "organism", or a folder of <kind>.jsonl (+ selection/<kind>.jsonl)
    "chat_template": Param(bool),  # wrap prompts in the tokenizer's chat template (instruct models)
}


@dataclass
class Subject:
    """A loaded model with its SAE source and prompt source."""

    lm: object
    params: dict
    language: Language | None = None  # the organism's language (ground truth), else None
    _saes: dict = field(default_factory=dict, repr=False)

    @property
    def is_organism(self) -> bool:
        return self.params["model"] == "organism"

    @property
    def n_layers(self) -> int:
        return hooks.n_layers(self.lm)

    def sae(self, site: Site, architecture: str | None = None) -> SAE:
        """The SAE at ``site``, loaded once (``architecture`` fills an ``{architecture}`` field of ``sae_path``).
        Loading never trains: a local SAE that is missing is an error that says how to make it
        (``prepare_saes`` is the explicit training stage)."""
        if (site, architecture) not in self._saes:
            self._saes[site, architecture] = self._load_sae(site, architecture)
        return self._saes[site, architecture]

    def sae_dir(self, site: Site, architecture: str | None = None) -> Path | None:
        """The local folder of the SAE at ``site`` (``sae_path``), or None for the organism's and releases'."""
        template = self.params["sae_path"]
        if not template:
            return None
        if "{architecture}" in template and architecture is None:
            raise ParameterError("Parameter 'sae_path' has an {architecture} field, which this chapter does not fill; "
                                 "name one architecture's folders.")
        return fill(template, layer=site.layer, position=site.position, architecture=architecture)

    def prepare_saes(self, sites: Sequence[Site], progress: bool = True) -> list[Site]:
        """The training stage: train (with sae-lens, on ``sae_train_text``) each local SAE of ``sites`` that is
        missing, and check the others exist; returns the sites trained. A no-op for the organism and releases."""
        missing = [s for s in sites if self.sae_dir(s) is not None and not (self.sae_dir(s) / "cfg.json").is_file()]
        if missing and not self.params["sae_train_text"]:
            raise self._missing_sae(missing[0], self.sae_dir(missing[0]))
        for site in bar(missing, "training SAEs", progress):
            train_sae_on_text(self.lm, site, Path(self.params["sae_train_text"]), self.sae_dir(site))
        return missing

    def _load_sae(self, site: Site, architecture: str | None) -> SAE:
        p = self.params
        if self.is_organism and not p["sae_path"] and not p["sae_release"]:
            return organism_sae(site)
        if p["sae_release"]:
            sae = load_sae(p["sae_release"], p["sae_id"].format(layer=site.layer, position=site.position))
        else:
            path = self.sae_dir(site, architecture)
            if not (path / "cfg.json").is_file():
                raise self._missing_sae(site, path)
            sae = load_sae(path=str(path))
        check_fits(sae, self.lm, site)
        return sae.to(device_of(self.lm))

    def _missing_sae(self, site: Site, path: Path) -> ParameterError:
        """The one sentence for a local SAE folder without an SAE: how to make it."""
        todo = ("train it first with subject.prepare_saes (the explicit training stage)" if self.params["sae_train_text"]
                else "fix the path, or give 'sae_train_text' to train the missing SAEs")
        return ParameterError(f"Parameter 'sae_path' names {str(path)!r} for {site}, which holds no SAE "
                              f"(cfg.json); {todo}.")

    def probes(self) -> dict | None:
        """The organism's ground-truth probe table, or None for a model without planted ground truth."""
        return organism_probes() if self.is_organism else None

    def format(self, prompt: str | list) -> str:
        """A prompt as the model reads it: through the chat template when asked (a list = several turns)."""
        if not self.params["chat_template"]:
            return prompt if isinstance(prompt, str) else " ".join(m["content"] for m in prompt)
        tokenizer = self.lm.tokenizer
        if not getattr(tokenizer, "chat_template", None):
            raise ParameterError("Parameter 'chat_template' is true but this tokenizer has no chat template.")
        messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def eval_sets(self, kinds: Sequence[str], n: int) -> dict[str, list[Item]]:
        """Held-out evaluation items per kind (at most ``n`` each)."""
        folder = organism_folder() / "eval" if self.params["prompts"] == "organism" else resolve(self.params["prompts"])
        return self._formatted(load_items(folder, kinds, n))

    def selection_sets(self, kinds: Sequence[str], n: int) -> dict[str, list[Item]]:
        """Items for choosing features, disjoint from the evaluation sets: the organism's training
        distribution, or ``<prompts>/selection/<kind>.jsonl`` for a real model."""
        if self.params["prompts"] == "organism":
            language = self.language or organism_language()
            return {kind: [as_item(d) for d in language.selection_set(kind, n)] for kind in kinds}
        return self._formatted(load_items(resolve(self.params["prompts"]) / "selection", kinds, n))

    def _formatted(self, sets: dict[str, list[Item]]) -> dict[str, list[Item]]:
        return {k: [Item(i.kind, self.format(i.prompt), i.truth) for i in items] for k, items in sets.items()}


def check_subject_params(params: dict) -> None:
    """The subject parameters that depend on each other, checked before anything loads."""
    problem = model_name_problem(params["model"])
    if problem:
        raise ParameterError(f"Parameter 'model' is {params['model']!r}, which is not a model; {problem}" + ("" if problem.endswith("?") else "."))
    if params["prompts"] != "organism" and not resolve(params["prompts"]).is_dir():
        raise ParameterError(f"Parameter 'prompts' must be 'organism' or an existing folder; got {params['prompts']!r}.")
    if params["sae_release"] and not params["sae_id"]:
        raise ParameterError("Parameter 'sae_id' must name the SAE id template when 'sae_release' is given.")
    if params["model"] != "organism" and not params["sae_release"] and not params["sae_path"]:
        raise ParameterError("Give the SAEs of a model other than the organism as 'sae_release' or 'sae_path'.")


def load_subject(params: dict) -> Subject:
    """The model (nnsight-wrapped) and sources named by the subject parameters."""
    check_subject_params(params)
    if params["model"] == "organism":
        return Subject(load_organism(resolve_device(params["device"])), params, organism_language())
    return Subject(load_model(params["model"], params["device"], params["dtype"]), params)


def train_sae_on_text(lm, site: Site, text_file: Path, out: Path, context: int = 128, rows: int = 2000) -> None:
    """Train a TopK SAE (8x, k=32, as paper A) at ``site`` with sae-lens on ``text_file`` and save it to ``out``.

    The lines are tokenized, joined with end-of-text tokens and cut into full
    rows of ``context`` tokens, so no padding reaches the activations."""
    tokenizer = lm.tokenizer
    lines = read_documents(text_file)
    packed = pack_rows([tokenizer(line)["input_ids"] + [tokenizer.eos_token_id] for line in lines], context, rows)
    if len(packed) == 0:
        raise ParameterError(f"Parameter 'sae_train_text' needs at least {context} tokens of text to train an SAE.")
    acts = collect(lm, packed, [site])[site]
    sae = train_sae(acts, SAEConfig(expansion=8, k=32, samples=max(50_000, 4 * len(acts)), batch=512))
    out.parent.mkdir(parents=True, exist_ok=True)
    sae.save_model(str(out))


def device_of(lm) -> torch.device:
    """The device the model's weights are on."""
    return torch.device(lm.device)


def export_prompts(folder: Path, kinds: Sequence[str], n: int, selection_kinds: Sequence[str] = ()) -> Path:
    """Write the organism's held-out items as ``<folder>/<kind>.jsonl`` and its selection items as
    ``<folder>/selection/<kind>.jsonl``: the prompt-folder format a real model's prompts must follow."""
    language = organism_language()
    subject = Subject(lm=None, params={"prompts": "organism", "chat_template": False}, language=language)
    parts = [(Path(folder), {k: [as_item(d) for d in language.eval_set(k, n)] for k in kinds}),
             (Path(folder) / "selection", subject.selection_sets(selection_kinds, n))]
    for where, sets in parts:
        where.mkdir(parents=True, exist_ok=True)
        for kind, items in sets.items():
            lines = [json.dumps({"prompt": i.prompt, "truth": i.truth}) for i in items]
            (where / f"{kind}.jsonl").write_text("\n".join(lines) + "\n")
    return Path(folder)


def main(argv: list[str] | None = None) -> int:
    """``python -m saesteer.study.subjects --export-prompts DIR``: write the organism's prompts in the prompt-folder format."""
    import argparse

    from saesteer.organism.evaluation import METRICS

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--export-prompts", required=True, metavar="DIR", help="folder to write <kind>.jsonl files into")
    parser.add_argument("--items", type=int, default=300, help="items per kind")
    args = parser.parse_args(argv)
    folder = export_prompts(Path(args.export_prompts), list(METRICS), args.items, list(METRICS))
    print(f"wrote {len(list(folder.rglob('*.jsonl')))} prompt files to {folder}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

