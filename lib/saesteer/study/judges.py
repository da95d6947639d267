"""The coherence model: the model that scores the perplexity of steered text, never the steered model itself.

A model grading its own edited writing is a circular judge, so chapters C and D
score coherence under another model with the same tokenizer: on the organism
the second organism (``organism.second``), on a real model a larger one of its
family named in the parameter file.
"""

from __future__ import annotations

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
    """The coherence model: the second organism, or a model by name; it must share the steered model's vocabulary,
    since it scores the steered model's token ids."""
    if params["coherence_model"] == SECOND:
        judge = load_second(str(lm.device))
    else:
        judge = load_model(params["coherence_model"], str(lm.device), params["dtype"], seed=params["seed"] + 1)
    if judge.tokenizer.get_vocab() != lm.tokenizer.get_vocab():
        raise ParameterError(f"Parameter 'coherence_model' ({params['coherence_model']!r}) must share the steered "
                             "model's tokenizer.")
    return judge


def describe_judge(params: dict, judge) -> str:
    """One line on the coherence model: its name, size and layers."""
    model = torch_model(judge)
    return (f"coherence model {params['coherence_model']}: {sum(p.numel() for p in model.parameters()):,} parameters, "
            f"{model.config.num_hidden_layers} layers")
