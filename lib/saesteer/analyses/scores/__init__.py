"""Chapter D: input features versus output features (Arad, Mueller & Belinkov 2025), and steering with the right ones.

One module per section of the chapter (``from saesteer.analyses import scores as io`` reaches every name):

- ``lens``: the logit lens of each feature (step 1);
- ``inputs``: the activation cache of a text corpus and the input score S_in (step 2);
- ``outputs``: the output score S_out, many features along the batch of one forward pass (step 3);
- ``table``: the scores of every feature of every layer, their table, classes and per-layer trend;
- ``success``: GenSuccess of steered continuations, the selection split and the factor rule (step 4);
- ``filters``: the threshold rule, the filter curve, the filter's effect and the sensitivity grid (step 5);
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
   GenSuccess@k counts logit-lens tokens, coherence is perplexity under a second model;
   ``split_features`` divides each layer's features into selection and evaluation parts,
   and ``pick_factor`` applies the paper's rule (generation success over perplexity) on
   the selection part;
5. ``pick_threshold`` (selection part), ``threshold_curve`` and ``filter_effect`` (evaluation
   part): mean GenSuccess gain of the features kept by an output-score threshold, against
   random filters of the same size; ``sensitivity``: every factor and threshold;
6. ``ground_truth``: the organism's topic-detecting (probe) and topic-writing (lens) features;
The claims table is built by the chapter module, ``saesteer.chapters.input_output_scores``.
"""

from saesteer.analyses.scores.filters import filter_effect, pick_threshold, sensitivity, threshold_curve
from saesteer.analyses.scores.ground_truth import (
    ground_truth_features,
    group_difference,
    group_table,
    topic_detectors,
    topic_writers,
)
from saesteer.analyses.scores.inputs import ActivationStats, activation_stats, by_length, corpus_documents, input_scores
from saesteer.analyses.scores.lens import lens_index, logit_lens, unembed
from saesteer.analyses.scores.outputs import lens_probability, output_scores, prompt_prefix
from saesteer.analyses.scores.success import (
    baseline_success,
    continuations,
    gen_success,
    pick_factor,
    prefixes,
    split_features,
    steering,
    unsteered,
    worked_examples,
)
from saesteer.analyses.scores.table import (
    classify,
    hybrid_ratio,
    layer_features,
    layer_trend,
    mean_difference,
    score_all,
    score_layer,
    score_table,
    trend_difference,
)

__all__ = [
    "activation_stats",
    "ActivationStats",
    "baseline_success",
    "by_length",
    "classify",
    "continuations",
    "corpus_documents",
    "filter_effect",
    "gen_success",
    "ground_truth_features",
    "group_difference",
    "group_table",
    "hybrid_ratio",
    "input_scores",
    "layer_features",
    "layer_trend",
    "lens_index",
    "lens_probability",
    "logit_lens",
    "mean_difference",
    "output_scores",
    "pick_factor",
    "pick_threshold",
    "prefixes",
    "prompt_prefix",
    "score_all",
    "score_layer",
    "score_table",
    "sensitivity",
    "split_features",
    "steering",
    "threshold_curve",
    "topic_detectors",
    "topic_writers",
    "trend_difference",
    "unembed",
    "unsteered",
    "worked_examples",
]
