"""TopK SAEs (k = 32, as paper A) on the chat model's residual stream, at the layers chapter A searches.

``python -m saesteer.gemma3.chat_saes`` (``make gemma3-chat-saes``) writes the SAEs' corpus, then runs the
Gemma 3 SAE build (``gemma3.build``: token rows -> normalisation -> SAEs -> quality, resumable, each stage
skipped when current) with the chat model and this plan. The corpus is the real-text corpus's three sources
plus a fourth, ``chat``: the training conversations in the turn format (held-out rows: the evaluation
conversations with their reference answers), each source an equal share of the rows, so the SAEs see both
the text the model was pretrained on and the conversations it was tuned on. Manifest and quality table:
``data/gemma3/chat/saes.json`` and ``quality.json``; the SAEs: ``$SAESTEER_CACHE/gemma3/chat/sae-build/saes/``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import transformers

from saesteer.core.files import repo_root
from saesteer.core.packaged import model_cache
from saesteer.gemma3 import chat_data, chat_tune, corpus
from saesteer.gemma3.build import Build, StaleArtifacts, run
from saesteer.gemma3.saes import BuildConfig

SEARCH_LAYERS = (4, 6, 8, 10, 12)  # chapter A's layer search on the chat model (its parameter file)
PLAN = BuildConfig(jumprelu=False, topk_layers=SEARCH_LAYERS, width=5120, samples=400_000,
                   sources=("fortunes", "wordnet", "python-docs", "chat"))


def chat_corpus_dir() -> Path:
    return model_cache().parent / "gemma3" / "chat" / "corpus"


def transcript(tokenizer, messages) -> str:
    """A conversation in the turn format, without the leading ``<bos>`` (token rows add their own)."""
    return tokenizer.apply_chat_template(list(messages), tokenize=False).removeprefix(tokenizer.bos_token)


def write_corpus(folder: Path, tokenizer, data: chat_data.ChatDataConfig, known: dict[str, list[str]]) -> Path:
    """The base corpus's files with the ``chat`` source added: training conversations (train) and evaluation
    conversations with their reference answers (held out)."""
    records = chat_data.build(data, known)
    folder.mkdir(parents=True, exist_ok=True)
    for split, part in (("train", "train"), ("heldout", "eval")):
        lines = (corpus.corpus_dir() / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()
        chats = [transcript(tokenizer, r["messages"] if part == "train" else
                            r["messages"] + [{"role": "assistant", "content": r["answer"]}]) for r in records[part]]
        lines += [json.dumps({"source": "chat", "text": t}, ensure_ascii=False) for t in chats]
        partial = folder / f"{split}.jsonl.partial"
        partial.write_text("\n".join(lines) + "\n", encoding="utf-8")
        partial.replace(folder / f"{split}.jsonl")
    return folder


def chat_build(plan: BuildConfig = PLAN, force: bool = False, device: str = "auto") -> Build:
    """The Gemma 3 SAE build pointed at the chat model, this plan and the chat corpus."""
    folder = repo_root() / "data" / "gemma3" / "chat"
    return Build(cfg=plan, model_name="gemma3-270m-chat", device=device, force=force,
                 cache=model_cache().parent / "gemma3" / "chat" / "sae-build", corpus_dir=chat_corpus_dir(),
                 manifest_path=folder / "saes.json", quality_path=folder / "quality.json")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Train the chat model's TopK SAEs (resumable; skips current stages).")
    parser.add_argument("--force", action="store_true", help="replace artifacts built from another configuration")
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto (a GPU when there is one)")
    args = parser.parse_args(argv)
    try:
        folder = repo_root() / "data" / "gemma3" / "chat"
        known = json.loads((folder / "facts.json").read_text())["known"]
        tokenizer = chat_tune.chat_tokenizer(transformers.AutoTokenizer.from_pretrained(model_cache() / "gemma3-270m-chat"))
        write_corpus(chat_corpus_dir(), tokenizer, chat_data.ChatDataConfig(), known)
        run(chat_build(force=args.force, device=args.device))
    except (ValueError, FileNotFoundError, MemoryError, StaleArtifacts, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
