"""The safety fine-tune of Gemma 3 270M: its chat format, answer likelihoods, and a resumable LoRA fine-tune.

The base model learns Gemma 3's turn format, to answer and to refuse from ``gemma3.chat_data``'s training
conversations, with a LoRA adapter (``peft``) on every attention and MLP projection; the loss counts the final
answer's tokens only (and ``<end_of_turn>`` after it, so the model learns to stop), and the unembedding
(262,144 x 640) runs at those positions only. Plain text from the base model's own corpus is replayed
alongside (``replay`` rows of up to ``replay_tokens`` tokens, loss on every token), the usual guard against the
fine-tune forgetting general language modelling. Training saves a checkpoint every
``checkpoint_every`` steps and resumes from the last one: batches are a fixed function of the seed and the step.

Answer likelihood (``answer_logprobs``) is also how facts and sums are scored, for the base model in a plain
question-answer format and for the chat model in its turn format: the sum of the answer's token log-probabilities
after the same answer stem, ranked among the answers of the fact's family.
"""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import transformers

from saesteer.core.interventions import batches
from saesteer.core.progress import bar

# Gemma 3's turn format (as in its instruction-tuned release, without the system-turn folding), with no <bos> in
# the text: the tokenizer adds it, so a formatted prompt tokenizes with exactly one, as in training.
CHAT_TEMPLATE = (
    "{% for message in messages %}<start_of_turn>"
    "{{ 'model' if message['role'] == 'assistant' else message['role'] }}\n{{ message['content'] | trim }}"
    "<end_of_turn>\n{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)
END_OF_TURN = "<end_of_turn>"
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def chat_tokenizer(tokenizer):
    """The base tokenizer with the turn format as its chat template and ``<end_of_turn>`` as its end token (so
    generation and the answer decoder stop at the end of the model's turn); padding on the right."""
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.eos_token = END_OF_TURN
    tokenizer.padding_side = "right"
    return tokenizer


def prompt_text(tokenizer, messages: Sequence[dict]) -> str:
    """The conversation up to the model's next turn, in the turn format."""
    return tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)


# --- answer likelihood -------------------------------------------------------------------------------------
def _answer_logits(model, ids: torch.Tensor, mask: torch.Tensor, where: torch.Tensor) -> torch.Tensor:
    """Next-token logits [n, vocab] at the positions ``where`` ([n, 2]: row, position) only: the decoder layers
    run on every token, the unembedding on these positions (final logit soft-capping applied when the
    config has it)."""
    core = model.get_decoder() if hasattr(model, "get_decoder") else model.model
    hidden = core(input_ids=ids, attention_mask=mask).last_hidden_state
    logits = model.get_output_embeddings()(hidden[where[:, 0], where[:, 1]])
    cap = getattr(model.config, "final_logit_softcapping", None)
    return torch.tanh(logits / cap) * cap if cap else logits


def _rows(pairs: Sequence[tuple[list[int], list[int]]], pad: int):
    """Right-padded ids and mask of prompt + answer rows, the positions that predict answer tokens and the
    answer tokens themselves (flattened), and each row's share of them."""
    width = max(len(p) + len(a) for p, a in pairs)
    ids = torch.full((len(pairs), width), pad)
    mask = torch.zeros((len(pairs), width), dtype=torch.long)
    where, targets, owner = [], [], []
    for row, (p, a) in enumerate(pairs):
        ids[row, : len(p) + len(a)] = torch.tensor(p + a)
        mask[row, : len(p) + len(a)] = 1
        where += [(row, len(p) - 1 + i) for i in range(len(a))]
        targets += a
        owner += [row] * len(a)
    return ids, mask, torch.tensor(where), torch.tensor(targets), torch.tensor(owner)


def answer_logprobs(model, tokenizer, prompts: Sequence[str], answers: Sequence[str], batch_size: int = 32) -> torch.Tensor:
    """Per (prompt, answer) pair, the sum of the answer's token log-probabilities after the prompt (the answer
    is tokenized on its own, with a leading space, and appended to the prompt's tokens)."""
    out = []
    with torch.no_grad():
        for chunk in batches(list(zip(prompts, answers)), batch_size):
            pairs = [(tokenizer(p)["input_ids"], tokenizer(" " + a, add_special_tokens=False)["input_ids"]) for p, a in chunk]
            ids, mask, where, targets, owner = _rows(pairs, tokenizer.pad_token_id)
            logp = torch.log_softmax(_answer_logits(model, ids, mask, where).float(), -1)
            token = logp.gather(1, targets[:, None]).squeeze(1)
            out.append(torch.zeros(len(chunk)).index_add_(0, owner, token))
    return torch.cat(out)


def ranked_first(model, tokenizer, items: Sequence[dict], candidates: dict[str, list[str]], prompt_of,
                 batch_size: int = 64) -> list[bool]:
    """Per fact item (``{family, stem, answer, ...}``), whether its answer has the highest likelihood among its
    family's ``candidates`` after ``prompt_of(item)`` (the prompt up to and including the answer stem)."""
    jobs = [(i, c) for i, item in enumerate(items) for c in candidates[item["family"]]]
    scores = answer_logprobs(model, tokenizer, [prompt_of(items[i]) for i, _ in jobs], [c for _, c in jobs], batch_size)
    best: dict[int, tuple[float, str]] = {}
    for (i, c), s in zip(jobs, scores.tolist()):
        if i not in best or s > best[i][0]:
            best[i] = (s, c)
    return [best[i][1] == item["answer"] for i, item in enumerate(items)]


def base_prompt(item: dict) -> str:
    """A fact in the base model's plain question-answer format, up to the answer."""
    return f"Question: {item['question']}\nAnswer: {item['stem']}"


def chat_prompt(tokenizer):
    """A fact in the chat model's turn format, up to the answer (the answer sentence opens with the stem)."""
    return lambda item: prompt_text(tokenizer, [{"role": "user", "content": item["question"]}]) + item["stem"]


# --- the fine-tune -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TuneConfig:
    """LoRA rank and scale, optimiser and schedule, batch, length limit and checkpoint interval."""

    seed: int = 0
    rank: int = 8
    alpha: int = 16
    lr: float = 5e-4
    warmup: int = 20
    epochs: int = 2
    batch: int = 8
    max_tokens: int = 192
    checkpoint_every: int = 25
    replay: int = 200  # corpus rows replayed each epoch
    replay_tokens: int = 96


def encode(tokenizer, messages: Sequence[dict], max_tokens: int) -> tuple[list[int], list[int]]:
    """A training conversation as (prompt ids, answer ids): ``<bos>`` and everything up to the model's last
    turn, and that turn's answer followed by ``<end_of_turn>``; the prompt is cut from the left to fit
    ``max_tokens``."""
    prompt = tokenizer(prompt_text(tokenizer, messages[:-1]))["input_ids"]
    answer = tokenizer(messages[-1]["content"].strip() + END_OF_TURN, add_special_tokens=False)["input_ids"]
    return prompt[max(0, len(prompt) + len(answer) - max_tokens) :], answer


def encode_text(tokenizer, text: str, max_tokens: int) -> tuple[list[int], list[int]]:
    """A replayed plain-text row as (``<bos>``, the rest): the loss counts every token of the text."""
    ids = tokenizer(text)["input_ids"][:max_tokens]
    return ids[:1], ids[1:]


def lora_model(model, config: TuneConfig):
    """``model`` with a LoRA adapter on every attention and MLP projection (peft)."""
    import peft

    lora = peft.LoraConfig(r=config.rank, lora_alpha=config.alpha, lora_dropout=0.0, target_modules=list(LORA_TARGETS),
                           task_type="CAUSAL_LM")
    return peft.get_peft_model(model, lora)


def batch_order(n: int, config: TuneConfig) -> list[list[int]]:
    """The training batches of every epoch, a fixed function of the seed."""
    g = torch.Generator().manual_seed(config.seed)
    order = [i for _ in range(config.epochs) for i in torch.randperm(n, generator=g).tolist()]
    return list(batches(order, config.batch))


def schedule(config: TuneConfig, steps: int):
    """Linear warm-up, then cosine decay to zero: the learning-rate multiplier at each step."""
    return lambda s: min(1.0, (s + 1) / config.warmup) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps))


def loss_of(model, examples: Sequence[tuple[list[int], list[int]]], pad: int) -> torch.Tensor:
    """Mean next-token cross-entropy over the answers' tokens of a batch of (prompt ids, answer ids)."""
    ids, mask, where, targets, _ = _rows(examples, pad)
    return torch.nn.functional.cross_entropy(_answer_logits(model, ids, mask, where).float(), targets)


def tune(base_dir: Path, conversations: Sequence[Sequence[dict]], config: TuneConfig, work: Path,
         progress: bool = True, stop_after: int | None = None, texts: Sequence[str] = ()) -> dict | None:
    """Fine-tune the model in ``base_dir`` on ``conversations`` (and the replayed plain ``texts``, at most
    ``config.replay`` of them) with LoRA, checkpointing into ``work`` and
    resuming from its last checkpoint; writes the adapter to ``work / "adapter"`` and returns the run's record
    (the loss of every step, seconds, tokens). ``stop_after``: stop after that many steps of this call, with a
    checkpoint, and return None (the next call resumes there)."""
    torch.manual_seed(config.seed)
    tokenizer = chat_tokenizer(transformers.AutoTokenizer.from_pretrained(base_dir))
    model = lora_model(transformers.AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32), config)
    examples = [encode(tokenizer, c, config.max_tokens) for c in conversations]
    examples += [encode_text(tokenizer, t, config.replay_tokens) for t in texts[: config.replay]]
    steps = batch_order(len(examples), config)
    optimiser = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=config.lr, weight_decay=0.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimiser, schedule(config, len(steps)))
    state = resume(model, optimiser, scheduler, work)
    model.train()
    last = len(steps) if stop_after is None else min(len(steps), state["step"] + stop_after)
    with bar(None, "fine-tuning", progress, total=len(steps), initial=state["step"]) as shown:
        for step in range(state["step"], last):
            start = time.perf_counter()
            loss = loss_of(model, [examples[i] for i in steps[step]], tokenizer.pad_token_id)
            loss.backward()
            optimiser.step(), scheduler.step(), optimiser.zero_grad()
            state["seconds"] += time.perf_counter() - start
            state["tokens"] += sum(len(p) + len(a) for p, a in (examples[i] for i in steps[step]))
            state["losses"].append(round(float(loss.detach()), 4))
            state["step"] = step + 1
            shown.update(1)
            if state["step"] % config.checkpoint_every == 0 or state["step"] == last:
                checkpoint(model, optimiser, scheduler, state, work)
    if state["step"] < len(steps):
        return None
    model.save_pretrained(str(work / "adapter"))
    return {"config": asdict(config), "steps": len(steps), "examples": len(examples), **state}


def resume(model, optimiser, scheduler, work: Path) -> dict:
    """The state of the last checkpoint in ``work`` loaded into the model, optimiser and scheduler (or a fresh
    state when there is none)."""
    import peft

    path = work / "checkpoint.pt"
    if not path.is_file():
        return {"step": 0, "seconds": 0.0, "tokens": 0, "losses": []}
    saved = torch.load(path, weights_only=False)
    peft.set_peft_model_state_dict(model, saved["adapter"])
    optimiser.load_state_dict(saved["optimiser"])
    scheduler.load_state_dict(saved["scheduler"])
    return saved["state"]


def checkpoint(model, optimiser, scheduler, state: dict, work: Path) -> None:
    """Save the adapter, optimiser, scheduler and run state atomically (write, then rename)."""
    import peft

    work.mkdir(parents=True, exist_ok=True)
    partial = work / "checkpoint.pt.partial"
    torch.save({"adapter": peft.get_peft_model_state_dict(model), "optimiser": optimiser.state_dict(),
                "scheduler": scheduler.state_dict(), "state": state}, partial)
    partial.replace(work / "checkpoint.pt")


def merge(base_dir: Path, adapter_dir: Path, out: Path) -> Path:
    """The base model with the adapter merged into its weights, saved with the chat tokenizer and a generation
    config that stops at ``<end_of_turn>``: a model folder ``core.models.load_model`` reads like any other."""
    import peft

    tokenizer = chat_tokenizer(transformers.AutoTokenizer.from_pretrained(base_dir))
    model = transformers.AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    merged = peft.PeftModel.from_pretrained(model, str(adapter_dir)).merge_and_unload()
    merged.generation_config.eos_token_id = tokenizer.convert_tokens_to_ids(END_OF_TURN)
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    merged.save_pretrained(str(partial))
    tokenizer.save_pretrained(str(partial))
    shutil.rmtree(out, ignore_errors=True)  # the caller decided to rebuild it
    partial.replace(out)
    return out
