"""The resumable build of Gemma 3 270M's SAEs: corpus -> token rows -> normalisation -> SAEs -> quality.

``python -m saesteer.gemma3`` (``make gemma3``) runs every stage whose artifact is missing or does not
match the manifest (``data/gemma3/saes.json``, committed) and skips the rest; a second run does nothing
and says so. Artifacts live outside the repository under ``$SAESTEER_CACHE/gemma3/`` (default
``~/.cache/saesteer/gemma3/``); every file is written through a temporary name and a rename, and the
training writes sae-lens checkpoints (kept only when complete), so an interrupted build resumes from its
last finished stage or checkpoint. The quality table (``data/gemma3/quality.json``) is committed with
the manifest. A stage whose artifacts came from another configuration is rebuilt only with ``--force``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from sae_lens import SAE
from sae_lens.training.multi_sae_trainer import MultiSAETrainer

from saesteer.core.files import repo_root, write_json
from saesteer.core.models import BUILT, load_model
from saesteer.core.packaged import PACKAGED, SOURCE_FILE, model_cache, sha256_file
from saesteer.core.progress import bar
from saesteer.gemma3 import corpus
from saesteer.gemma3.saes import (
    BuildConfig,
    LossProbe,
    activation_stream,
    calibrate_threshold,
    estimate_norms,
    load_norms,
    norms_to_dict,
    sae_memory_bytes,
    site_quality,
    site_tokens,
    token_rows,
    trainer_config,
    training_sae,
)

STAGES = ("tokens", "norms", "train", "quality")
COMPLETE = "complete"  # marker file of a fully written checkpoint


class StaleArtifacts(RuntimeError):
    """Artifacts of another configuration exist and replacing them was not asked for."""


@dataclass
class Build:
    """Where one build reads and writes, and with what."""

    cfg: BuildConfig = field(default_factory=BuildConfig)
    model_name: str = "gemma3-270m"
    device: str = "auto"
    cache: Path = field(default_factory=lambda: model_cache().parent / "gemma3")
    corpus_dir: Path = field(default_factory=corpus.corpus_dir)
    manifest_path: Path = field(default_factory=lambda: repo_root() / "data" / "gemma3" / "saes.json")
    quality_path: Path = field(default_factory=lambda: repo_root() / "data" / "gemma3" / "quality.json")
    force: bool = False
    progress: bool = True
    _model: object = None

    @property
    def model(self):
        if self._model is None:
            device = self.device if self.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
            self._model = load_model(self.model_name, device=device, dtype=self.cfg.dtype, seed=self.cfg.seed)
        return self._model

    def manifest(self) -> dict:
        return json.loads(self.manifest_path.read_text()) if self.manifest_path.is_file() else {}

    def inputs_key(self) -> str:
        """Hash of what every stage depends on: the configuration, the model (for a model the study builds,
        its weights: a rebuilt chat model makes its SAEs stale) and the corpus files."""
        corpus_hashes = {s: sha256_file(self.corpus_dir / f"{s}.jsonl") for s in ("train", "heldout")
                         if (self.corpus_dir / f"{s}.jsonl").is_file()}
        inputs = {"config": self.cfg.to_json(), "model": self.model_name, "corpus": corpus_hashes}
        if self.model_name in BUILT:
            inputs["weights"] = sha256_file(model_cache() / self.model_name / "model.safetensors")
        text = json.dumps(inputs, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def artifacts(self, stage: str) -> list[Path]:
        """The files a stage writes."""
        if stage == "tokens":
            return [self.cache / "tokens.pt"]
        if stage == "norms":
            return [self.cache / "norms.pt"]
        if stage == "train":
            return [self.cache / "saes" / spec.name / "sae_weights.safetensors" for spec in self.cfg.specs()]
        return [self.quality_path]

    def is_current(self, stage: str) -> bool:
        """Whether the stage ran with these inputs and its files still match their recorded checksums."""
        record = self.manifest().get("stages", {}).get(stage)
        if not record or record["key"] != self.inputs_key():
            return False
        return all(p.is_file() and sha256_file(p) == record["sha256"].get(str(p.relative_to(self.root(p))))
                   for p in self.artifacts(stage))

    def root(self, path: Path) -> Path:
        return self.cache if self.cache in path.parents else self.quality_path.parent

    def check_replace(self, stage: str) -> None:
        """Refuse to overwrite a stage's artifacts of another configuration unless ``force``."""
        record = self.manifest().get("stages", {}).get(stage)
        if record and record["key"] != self.inputs_key() and not self.force and any(p.exists() for p in self.artifacts(stage)):
            raise StaleArtifacts(f"The {stage} stage's artifacts were built from another configuration, model or "
                                 f"corpus; pass --force to rebuild and replace them.")

    def with_inputs(self) -> dict:
        """The manifest with what the stages were built from: the model and its checksums, the corpus
        files' hashes and the configuration (seeds included)."""
        return self.manifest() | {"model": self.model_name, "model_checksums": model_checksums(self.model_name),
                                  "config": self.cfg.to_json(), "corpus": corpus_record(self.corpus_dir)}

    def record(self, stage: str, seconds: float) -> None:
        manifest = self.with_inputs()
        manifest.setdefault("stages", {})[stage] = {
            "key": self.inputs_key(), "seconds": round(seconds, 1), "machine": machine(self.model),
            "sha256": {str(p.relative_to(self.root(p))): sha256_file(p) for p in self.artifacts(stage)}}
        write_json(self.manifest_path, manifest)


def model_checksums(name: str) -> dict:
    """The packaged model's GGUF sha256 and its de-quantised weights' sha256 (empty for other models)."""
    source = model_cache() / name / SOURCE_FILE
    return json.loads(source.read_text()) if name in PACKAGED and source.is_file() else {}


def corpus_record(folder: Path) -> dict:
    return {s: sha256_file(folder / f"{s}.jsonl") for s in ("train", "heldout")}


def machine(model) -> str:
    """The machine a stage ran on, in words."""
    if model.device.type == "cuda":
        return torch.cuda.get_device_name(model.device)
    return f"{platform.machine()} CPU, {torch.get_num_threads()} threads"


def save_tensor(obj, path: Path) -> None:
    """``torch.save`` through a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    torch.save(obj, partial)
    os.replace(partial, path)


# --- stages ---------------------------------------------------------------------------------------------

def run_tokens(build: Build) -> None:
    """Training and held-out token rows, equal shares from each source."""
    tokenizer = build.model.tokenizer
    cfg = build.cfg
    train = token_rows(build.corpus_dir / "train.jsonl", tokenizer, cfg.train_rows() + cfg.norm_rows, cfg)
    heldout = token_rows(build.corpus_dir / "heldout.jsonl", tokenizer, max(cfg.heldout_rows, cfg.loss_rows), cfg)
    save_tensor({"train": train, "heldout": heldout}, build.cache / "tokens.pt")


def run_norms(build: Build) -> None:
    """Each site's mean and scale, from the last ``norm_rows`` training rows (the stream never reads them)."""
    rows = torch.load(build.cache / "tokens.pt")["train"][-build.cfg.norm_rows:]
    norms = estimate_norms(build.model, rows, build.cfg.sites(), build.cfg.outlier_factor)
    save_tensor(norms_to_dict(norms), build.cache / "norms.pt")


def check_memory(cfg: BuildConfig, d_in: int) -> None:
    """One sentence when the SAEs' training state cannot fit in this machine's free memory."""
    need = sae_memory_bytes(cfg, d_in)
    free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    if need > 0.8 * free:
        raise MemoryError(f"Training {len(cfg.specs())} SAEs of width {cfg.width:,} needs about {need / 2**30:.1f} GiB "
                          f"but {free / 2**30:.1f} GiB is free; lower the width (--width) or train fewer SAEs.")


def checkpoints_dir(build: Build) -> Path:
    return build.cache / "checkpoints" / build.inputs_key()


def latest_checkpoint(folder: Path) -> Path | None:
    """The newest fully written checkpoint, or None."""
    done = [p for p in folder.glob("*") if (p / COMPLETE).is_file()] if folder.is_dir() else []
    return max(done, key=lambda p: int(p.name), default=None)


def keep_only(checkpoint_path: Path | None) -> None:
    """Mark a just-written checkpoint complete and delete the older ones (each holds every SAE's Adam state)."""
    if checkpoint_path is None:
        return
    (checkpoint_path / COMPLETE).touch()
    for other in checkpoint_path.parent.glob("*"):
        if other != checkpoint_path:
            shutil.rmtree(other, ignore_errors=True)


def run_train(build: Build) -> None:
    """Every SAE of the plan in lockstep from one activation stream, resumed from the last checkpoint."""
    cfg, model = build.cfg, build.model
    d_in = model.config.hidden_size
    check_memory(cfg, d_in)
    train_rows = torch.load(build.cache / "tokens.pt")["train"]
    rows = train_rows[:cfg.train_rows()]
    norms = load_norms(build.cache / "norms.pt", cfg.sites())
    torch.manual_seed(cfg.seed)
    specs = cfg.specs()
    saes = {spec.name: training_sae(spec, d_in, cfg) for spec in specs}
    start_thresholds(saes, specs, model, train_rows[-cfg.norm_rows:], norms, cfg)
    folder = checkpoints_dir(build)
    trainer = MultiSAETrainer(trainer_config(cfg, model.device.type, folder), saes,
                              {spec.name: str(spec.site) for spec in specs}, iter(()), save_checkpoint_fn=keep_only)
    resume = latest_checkpoint(folder)
    if resume is not None:
        trainer.load_checkpoint(resume)
        trainer.checkpoint_thresholds = [t for t in trainer.checkpoint_thresholds if t > trainer.n_training_samples]
        print(f"resuming the SAE training at {trainer.n_training_samples:,} of {cfg.steps() * cfg.batch:,} samples")
    trainer.data_provider = activation_stream(model, rows, norms, cfg, start_step=trainer.n_training_samples // cfg.batch)
    trained = trainer.fit()
    for spec in specs:
        norms[spec.site].fold_into(trained[spec.name])
        save_sae(trained[spec.name], build.cache / "saes" / spec.name)
    shutil.rmtree(folder, ignore_errors=True)


def start_thresholds(saes: dict, specs, model, rows: torch.Tensor, norms: dict, cfg: BuildConfig) -> None:
    """Every JumpReLU SAE's starting threshold, calibrated on the normalisation rows (see ``calibrate_threshold``)."""
    jump = [spec for spec in specs if spec.architecture == "jumprelu"]
    acts = site_tokens(model, rows, sorted({spec.site for spec in jump}, key=lambda s: s.order))
    for spec in jump:
        x = norms[spec.site].apply(acts[spec.site], cfg.outlier_factor)  # on the CPU, like the fresh SAEs
        calibrate_threshold(saes[spec.name], x[:4096], cfg.target_l0)


def save_sae(sae, folder: Path) -> None:
    """The inference SAE in sae-lens's format, written to a temporary folder and renamed into place."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.partial-"))
    try:
        sae.save_inference_model(str(partial))
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(partial, folder)
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def load_sae(build: Build, name: str) -> SAE:
    return SAE.load_from_disk(str(build.cache / "saes" / name), device=str(build.model.device)).eval()


def run_quality(build: Build) -> None:
    """FVU, L0, dead fraction and delta loss of every SAE on held-out rows (see ``saes.site_quality``)."""
    cfg, model = build.cfg, build.model
    heldout = torch.load(build.cache / "tokens.pt")["heldout"]
    probe = LossProbe.sample(heldout[:cfg.loss_rows], cfg.loss_positions, cfg.seed)
    clean = probe.loss(model)
    acts = site_tokens(model, heldout[:cfg.heldout_rows], cfg.sites())
    rows = []
    for site in bar(cfg.sites(), "SAE quality", build.progress):
        names = [spec.name for spec in cfg.specs() if spec.site == site]
        saes = {n: load_sae(build, n) for n in names}
        rows += site_quality(model, probe, site, saes, acts.pop(site).to(model.device), clean)
    write_json(build.quality_path, {"heldout_tokens": int(cfg.heldout_rows * (cfg.context - 1)),
                                    "loss_tokens": int(cfg.loss_rows * cfg.loss_positions), "saes": rows})


RUNNERS = {"tokens": run_tokens, "norms": run_norms, "train": run_train, "quality": run_quality}


def run(build: Build, until: str = "quality") -> list[str]:
    """Run the stages up to ``until`` that are not current; returns the ones that ran."""
    if not (build.corpus_dir / "train.jsonl").is_file():
        raise FileNotFoundError(f"Corpus file {build.corpus_dir / 'train.jsonl'} is missing; run `make gemma3-corpus`.")
    ran = []
    for stage in STAGES[: STAGES.index(until) + 1]:
        if build.is_current(stage) and not ran:
            print(f"{stage}: current, skipped")
            continue
        build.check_replace(stage)
        print(f"{stage}: running", flush=True)
        start = time.perf_counter()
        RUNNERS[stage](build)
        build.record(stage, time.perf_counter() - start)
        print(f"{stage}: done in {time.perf_counter() - start:,.0f} s", flush=True)
        ran.append(stage)
    if not ran:
        print("every stage is current: nothing to do")
        if build.manifest().get("model_checksums") != model_checksums(build.model_name):
            write_json(build.manifest_path, build.with_inputs())
    return ran


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build Gemma 3 270M's SAEs (resumable; skips current stages).")
    parser.add_argument("--until", choices=STAGES, default="quality", help="the last stage to run")
    parser.add_argument("--force", action="store_true", help="replace artifacts built from another configuration")
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto (a GPU when there is one)")
    parser.add_argument("--width", type=int, help="features per SAE (default 2,560)")
    parser.add_argument("--samples", type=int, help="training activations per SAE (default 500,000)")
    args = parser.parse_args(argv)
    overrides = {k: v for k, v in (("width", args.width), ("samples", args.samples)) if v is not None}
    try:
        build = Build(cfg=BuildConfig(**overrides), device=args.device, force=args.force)
        corpus.build(tokenizer=corpus.gemma3_tokenizer())
        run(build, args.until)
    except (ValueError, FileNotFoundError, MemoryError, StaleArtifacts, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0
