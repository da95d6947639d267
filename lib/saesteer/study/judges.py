"""The coherence model: the model that scores the perplexity of steered text, never the steered model itself.

A model grading its own edited writing is a circular judge, so chapters C and D
score coherence under another model: on the organism the second organism
(``organism.second``, same tokenizer); on a real model one named in the parameter
file, e.g. SmolLM2-135M-Instruct from the package index for Gemma 3 270M, whose
tokenizer differs: the steered text is then decoded and read in the judge's tokens
(``judge_perplexity``). Perplexities are compared only within one judge (steered
against unsteered), never across judges.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from saesteer.core.generation import perplexity
from saesteer.core.interventions import batches
from saesteer.core.models import load_model, model_name_problem, torch_model
from saesteer.organism.second import load_second
from saesteer.study.params import ParameterError

SECOND = "organism-second"  # the coherence model's name for the second organism (organism.second)


def check_coherence_model(params: dict) -> None:
    """Parameter ``coherence_model`` must name a model, and not the steered one (a model scoring its own edited
    text is a circular judge)."""
    if params["coherence_model"] == params["model"]:
        raise ParameterError(f"Parameter 'coherence_model' must name a model other than the steered one; got {params['model']!r}.")
    problem = None if params["coherence_model"] == SECOND else model_name_problem(params["coherence_model"])
    if problem:
        raise ParameterError(f"Parameter 'coherence_model' is {params['coherence_model']!r}, which is not a model; {problem}.")


def load_judge(params: dict, lm):
    """The coherence model: the second organism, or a model by name (in the chapter's dtype)."""
    if params["coherence_model"] == SECOND:
        return load_second(str(lm.device))
    return load_model(params["coherence_model"], str(lm.device), params["dtype"], seed=params["seed"] + 1)


def judge_perplexity(judge, lm, prompts: Sequence[str], continuations: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """Per row, ``judge``'s perplexity of a continuation the steered model ``lm`` wrote ([rows, new] ids in
    ``lm``'s vocabulary, padded with its pad id) given its prompt: directly when the two share a vocabulary,
    else after decoding the continuation and tokenizing the text with the judge's tokenizer. Re-tokenized rows
    differ in length (20 Gemma 3 tokens of odd text can be 80 SmolLM2 tokens), so they are scored in batches
    of ``batch_size`` rows of similar length: one batch padded to its longest row was about two thirds padding."""
    if judge.tokenizer.get_vocab() == lm.tokenizer.get_vocab():
        return perplexity(judge, prompts, continuations)
    pad = lm.tokenizer.pad_token_id
    texts = [lm.tokenizer.decode([t for t in row if t != pad], skip_special_tokens=True) for row in continuations.tolist()]
    ids = [judge.tokenizer(text, add_special_tokens=False)["input_ids"] for text in texts]
    judge_pad = judge.tokenizer.pad_token_id if judge.tokenizer.pad_token_id is not None else judge.tokenizer.eos_token_id
    length = [len(judge.tokenizer(p)["input_ids"]) + len(row) for p, row in zip(prompts, ids)]
    out = torch.empty(len(ids))
    for chunk in batches(sorted(range(len(ids)), key=length.__getitem__), batch_size):
        width = max(1, *(len(ids[i]) for i in chunk))
        rows = torch.tensor([ids[i] + [judge_pad] * (width - len(ids[i])) for i in chunk])
        out[chunk] = perplexity(judge, [prompts[i] for i in chunk], rows)
    return out


def describe_judge(params: dict, judge) -> str:
    """One line on the coherence model: its name, size and layers."""
    model = torch_model(judge)
    return (f"coherence model {params['coherence_model']}: {sum(p.numel() for p in model.parameters()):,} parameters, "
            f"{model.config.num_hidden_layers} layers")
