"""Chapter D: input features versus output features (Arad, Mueller & Belinkov 2025), and steering with the right ones.

One module per section of the chapter (``from saesteer.analyses import scores as io`` reaches every name):

- ``lens``: the logit lens of each feature (step 1);
- ``inputs``: the activation cache of a text corpus and the input score S_in (step 2);
- ``outputs``: the output score S_out, many features along the batch of one forward pass (step 3);
- ``table``: the scores of every feature of every layer, their table, classes and per-layer trend;
- ``success``: GenSuccess of steered continuations, the factor rule and the filter curve (steps 4-5);
- ``ground_truth``: the organism's topic-detecting and topic-writing features (step 6).

The paper's route, step by step:

1. ``logit_lens``: each feature's top-k tokens of softmax(W_U . norm(d_f)), through the
   model's own final norm, unembedding and logit soft-capping;
2. ``activation_stats`` and ``input_scores``: from the SAE codes of a text corpus, each
   feature's top-activating examples (documents) and the token where it peaks in each;
   S_in is the share of those peak tokens that lie in its logit lens;
3. ``output_scores``: steer each feature on a neutral prompt at the last token (add s times
   the largest code at that token, error term kept), many features along the batch
   dimension of one forward pass; S_out = P(steered) - P(unsteered) with
   P = (1 - rank/|V|) * p of the most probable logit-lens token;
4. ``gen_success``: sampled continuations with the feature steered at every new token;
   GenSuccess@k counts logit-lens tokens; ``factor_sweep`` picks the factor with the
   paper's rule (generation success over perplexity under the unsteered model);
5. ``threshold_curve``: mean GenSuccess of the features kept by an output-score threshold,
   against random filters of the same size;
6. ``ground_truth``: the organism's topic-detecting (probe) and topic-writing (lens) features;
The claims table is built by the chapter module, ``saesteer.chapters.input_output_scores``.
"""

from saesteer.analyses.scores.ground_truth import ground_truth_features, group_table, topic_detectors, topic_writers
from saesteer.analyses.scores.inputs import ActivationStats, activation_stats, by_length, corpus_documents, input_scores
from saesteer.analyses.scores.lens import lens_index, logit_lens, unembed
from saesteer.analyses.scores.outputs import lens_probability, output_scores, prompt_prefix
from saesteer.analyses.scores.success import (
    baseline_success,
    continuations,
    gen_success,
    pick_factor,
    prefixes,
    sample_features,
    steering,
    threshold_curve,
    unsteered,
    worked_examples,
)
from saesteer.analyses.scores.table import classify, layer_features, layer_trend, score_all, score_layer, score_table

__all__ = [
    "activation_stats",
    "ActivationStats",
    "baseline_success",
    "by_length",
    "classify",
    "continuations",
    "corpus_documents",
    "gen_success",
    "ground_truth_features",
    "group_table",
    "input_scores",
    "layer_features",
    "layer_trend",
    "lens_index",
    "lens_probability",
    "logit_lens",
    "output_scores",
    "pick_factor",
    "prefixes",
    "prompt_prefix",
    "sample_features",
    "score_all",
    "score_layer",
    "score_table",
    "steering",
    "threshold_curve",
    "topic_detectors",
    "topic_writers",
    "unembed",
    "unsteered",
    "worked_examples",
]
