"""The resumable build of the chat model: facts -> data -> tune -> merge -> behaviour.

``python -m saesteer.study.chat_build`` (``make gemma3-chat``) runs every stage whose outputs are missing or
were built from other inputs, and skips the rest:

- ``facts``: which facts the base model knows (its answer ranked first among its family's answers, in a plain
  question-answer format); ``data/gemma3/chat/facts.json``;
- ``data``: the chat dataset (``chat_data``): prompts for chapter A and the manifest in ``data/gemma3/chat/``,
  the training conversations in the cache (``$SAESTEER_CACHE/gemma3/chat/train.jsonl``);
- ``tune``: the LoRA fine-tune (``chat_tune.tune``), checkpointed in the cache and resumed after an
  interruption; the adapter is committed (``data/gemma3/chat/adapter/``);
- ``merge``: the adapter merged into the base weights, a model folder in the cache
  (``$SAESTEER_CACHE/models/gemma3-270m-chat``) that ``load_model("gemma3-270m-chat")`` reads;
- ``behaviour``: the behaviour table against the targets (``chat_eval``), on the held-out prompts (the
  reported table) and on the selection prompts (where fine-tune recipes are compared);
  ``data/gemma3/chat/behaviour.json``.

Each stage records its inputs' hash, its seconds and its machine in ``data/gemma3/chat/build.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import transformers

from saesteer.core.files import read_documents, repo_root, write_json
from saesteer.core.packaged import cached_model_dir, model_cache, sha256_file
from saesteer.gemma3 import chat_data, chat_tune, corpus
from saesteer.study import chat_eval

STAGES = ("facts", "data", "tune", "merge", "behaviour")
CHAT_MODEL = "gemma3-270m-chat"


@dataclass
class ChatBuild:
    """Where the chat build reads and writes, and with what."""

    data: chat_data.ChatDataConfig = field(default_factory=chat_data.ChatDataConfig)
    tune: chat_tune.TuneConfig = field(default_factory=chat_tune.TuneConfig)
    base: str = "gemma3-270m"
    folder: Path = field(default_factory=lambda: repo_root() / "data" / "gemma3" / "chat")
    cache: Path = field(default_factory=lambda: model_cache().parent / "gemma3" / "chat")
    model_dir: Path = field(default_factory=lambda: model_cache() / CHAT_MODEL)
    progress: bool = True

    @property
    def manifest_path(self) -> Path:
        return self.folder / "build.json"

    def manifest(self) -> dict:
        return json.loads(self.manifest_path.read_text()) if self.manifest_path.is_file() else {}

    def base_dir(self) -> Path:
        return cached_model_dir(self.base) if not Path(self.base).is_dir() else Path(self.base)

    def outputs(self, stage: str) -> list[Path]:
        """The files a stage writes (their checksums decide whether it is current)."""
        return {"facts": [self.folder / "facts.json"],
                "data": [self.folder / "manifest.json", self.cache / "train.jsonl"],
                "tune": [self.folder / "adapter" / "adapter_model.safetensors"],
                "merge": [self.model_dir / "model.safetensors"],
                "behaviour": [self.folder / "behaviour.json"]}[stage]

    def key(self, stage: str) -> str:
        """Hash of a stage's inputs: the configurations and the previous stage's outputs."""
        before = STAGES[: STAGES.index(stage)]
        inputs = {"base": self.base, "data": asdict(self.data) if "facts" in before else None,
                  "tune": asdict(self.tune) if "data" in before else None,
                  "before": {s: self.manifest().get("stages", {}).get(s, {}).get("sha256") for s in before}}
        return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:16]

    def is_current(self, stage: str) -> bool:
        record = self.manifest().get("stages", {}).get(stage)
        return bool(record) and record["key"] == self.key(stage) and all(
            p.is_file() and sha256_file(p) == record["sha256"].get(p.name) for p in self.outputs(stage))

    def record(self, stage: str, seconds: float, where: str, extra: dict | None = None) -> None:
        manifest = self.manifest()
        manifest.setdefault("stages", {})[stage] = {"key": self.key(stage), "seconds": round(seconds, 1),
                                                    "machine": where, **(extra or {}),
                                                    "sha256": {p.name: sha256_file(p) for p in self.outputs(stage)}}
        write_json(self.manifest_path, manifest)


def ground_truth_records(split: str = "selection", build: ChatBuild | None = None) -> list[dict]:
    """The dataset's records of ``split`` with their reference answers and planted ground truth (rebuilt by the
    seeded rule from the committed facts file; what chapter A labels tokens with)."""
    build = build or ChatBuild()
    known = json.loads((build.folder / "facts.json").read_text())["known"]
    return chat_data.build(build.data, known)[split]


def _base_model(build: ChatBuild):
    path = build.base_dir()
    return transformers.AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval(), \
        transformers.AutoTokenizer.from_pretrained(path)


def run_facts(build: ChatBuild) -> dict:
    """The facts the base model knows: its answer ranked first among the family's answers."""
    model, tokenizer = _base_model(build)
    items = chat_data.fact_triples()
    hits = chat_tune.ranked_first(model, tokenizer, items, chat_data.family_answers(), chat_tune.base_prompt)
    known = {f: [i["subject"] for i, h in zip(items, hits) if h and i["family"] == f] for f in chat_data.text.FACTS}
    write_json(build.folder / "facts.json", {"rule": "answer ranked first among its family's answers after "
               "'Question: <question>\\nAnswer: <stem>' (base model)", "known": known,
               "counts": {f: [len(v), sum(i["family"] == f for i in items)] for f, v in known.items()}})
    return {"known": sum(map(len, known.values())), "facts": len(items)}


def run_data(build: ChatBuild) -> dict:
    """The dataset's prompt files and manifest (repository) and training conversations (cache)."""
    known = json.loads((build.folder / "facts.json").read_text())["known"]
    records = chat_data.build(build.data, known)
    manifest = chat_data.write(records, build.folder, build.data, known, build.cache / "train.jsonl")
    return {"counts": manifest["counts"]}


def replay_texts(n: int, seed: int) -> list[str]:
    """``n`` rows of the base model's training corpus, drawn by a seeded rule: the fine-tune's replayed text."""
    docs = read_documents(corpus.corpus_dir() / "train.jsonl")
    pick = torch.randperm(len(docs), generator=torch.Generator().manual_seed(seed))[:n].tolist()
    return [docs[i] for i in pick]


def run_tune(build: ChatBuild) -> dict:
    """The LoRA fine-tune, resumed from its last checkpoint; the adapter is copied into the repository."""
    rows = [json.loads(line) for line in (build.cache / "train.jsonl").read_text(encoding="utf-8").splitlines()]
    work = build.cache / "work" / build.key("tune")
    texts = replay_texts(build.tune.replay, build.tune.seed) if build.tune.replay else []
    run = chat_tune.tune(build.base_dir(), [r["messages"] for r in rows], build.tune, work, build.progress,
                         texts=texts)
    target = build.folder / "adapter"
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(work / "adapter", target, ignore=shutil.ignore_patterns("README.md"))  # not peft's blank card
    losses = run.pop("losses")
    run["training_seconds"] = round(run.pop("seconds"), 1)
    every = max(1, len(losses) // 40)
    return run | {"tokens_per_second": round(run["tokens"] / max(run["training_seconds"], 1e-9), 1),
                  "loss_curve": [[i + 1, losses[i]] for i in range(0, len(losses), every)] + [[len(losses), losses[-1]]]}


def run_merge(build: ChatBuild) -> dict:
    chat_tune.merge(build.base_dir(), build.folder / "adapter", build.model_dir)
    return {}


def run_behaviour(build: ChatBuild) -> dict:
    prompts = build.folder / "prompts"
    table = chat_eval.behaviour(build.model_dir, build.base_dir(), prompts, build.progress)
    table["selection"] = chat_eval.behaviour(build.model_dir, build.base_dir(), prompts / "selection", build.progress)
    write_json(build.folder / "behaviour.json", table)
    return {}


RUNNERS = {"facts": run_facts, "data": run_data, "tune": run_tune, "merge": run_merge, "behaviour": run_behaviour}


def run(build: ChatBuild, until: str = "behaviour") -> None:
    """Every stage up to ``until`` that is not current, in order; a current stage says so and is skipped."""
    where = torch.cuda.get_device_name() if torch.cuda.is_available() else f"{platform.machine()} CPU, {torch.get_num_threads()} threads"
    for stage in STAGES[: STAGES.index(until) + 1]:
        if build.is_current(stage):
            print(f"{stage}: current, skipped")
            continue
        start = time.perf_counter()
        extra = RUNNERS[stage](build)
        build.record(stage, time.perf_counter() - start, where, extra)
        print(f"{stage}: done in {time.perf_counter() - start:.0f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the chat model (resumable; skips current stages).")
    parser.add_argument("--until", choices=STAGES, default="behaviour", help="the last stage to run")
    args = parser.parse_args(argv)
    try:
        run(ChatBuild(), args.until)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
