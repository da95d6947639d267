"""Chapter C: feature flow across layers (Laptev et al., 2025), matched without data, checked with data.

One module per section of the chapter (``from saesteer.analyses import flow as ff`` reaches every name):

- ``matching``: the SAEs of the three positions, data-free matching of decoder directions and the
  cosine categories (steps 1-2);
- ``corpus``: the corpus, its SAE codes and the data check of co-active predecessors (step 3);
- ``validation``: causal validation by deactivation against the Pearson baseline (step 4);
- ``graphs``: flow graphs and their seeds (step 5);
- ``steering``: multi-layer steering and graph deactivation, scored by topic share and coherence (step 6).

The paper's route, step by step:

1. ``match_layer``: for every feature of the ``resid_post`` SAE at layer L, its top-k cosine
   matches among the decoder directions of ``resid_post`` at L-1 (``resid_prev``), ``attn_out``
   at L and ``mlp_out`` at L; chunked (``top_matches``) so Gemma-2-2B's 16k x 16k similarities
   never sit in memory at once;
2. ``categories``: translated / processed / newborn / unexplained from the top-1 similarities;
3. ``group_counts``: on a corpus, which top-1 predecessors are active on the same token as an
   active feature (the paper's 7 groups plus "From nowhere");
4. ``deactivation_table``: remove a predecessor (h + (r-1) a d, r = 0) and measure the feature's
   activation change 1 - z_new/z_old, for top-1 cosine, Pearson, a random pick among the top 5,
   and exhaustive search over the candidates;
5. ``flow_graph``: chain top-1 residual matches backward and forward from a seed feature, cut
   where the similarity drops below 0.5, attach module predecessors with similarity >= 0.15;
6. ``steer``/``deactivate_graph``: multi-layer steering with a graph (single layer vs cumulative,
   constant / linear / exponential schedules at the same total added norm), the single-layer check of
   every chain layer, and graph deactivation over a sweep of r, scored with the organism's ground truth
   (topic share) and a scoring model's perplexity (coherence, the unsteered model by default);
The claims table is built by the chapter module, ``saesteer.chapters.feature_flow``.

Layer 0 has no previous residual SAE (its input is the embedding): its ``resid_prev`` match is
missing and counts as similarity 0 / inactive everywhere.
"""

from saesteer.analyses.flow.corpus import (
    GROUPS,
    Corpus,
    agreement_gap,
    agreement_rows,
    corpus_codes,
    depth_band,
    flow_sites,
    group_counts,
    group_rows,
    group_shares,
    nowhere_margin,
    organism_corpus,
    peak_gap,
    row_bootstrap,
    row_tables,
    text_corpus,
    threshold_grid,
)
from saesteer.analyses.flow.graphs import (
    FlowGraph,
    corpus_probes,
    flow_graph,
    label_graph,
    node_id,
    node_site,
    parse_seed,
    refusal_seed,
    residual_chain,
    seeds,
    selection_probes,
    top_tokens,
)
from saesteer.analyses.flow.matching import (
    CATEGORIES,
    PREDECESSORS,
    SHORT,
    FlowSAEs,
    categories,
    category_rows,
    decoder,
    match_layer,
    match_predecessors,
    predecessor_site,
    similarity_rows,
    top1,
    top_matches,
)
from saesteer.analyses.flow.steering import (
    SCHEDULES,
    add_edits,
    against_baseline,
    coherence,
    cumulative_gaps,
    deactivate_graph,
    generate_rows,
    layer_configs,
    matched_schedule,
    paired,
    product,
    residual_norms,
    schedule,
    steer,
    steer_configs,
    steering_prompts,
    steering_summary,
    topic_prompts,
    topic_share,
    topic_vocabulary,
    well_formed,
    word_token_ids,
    writer_scores,
)
from saesteer.analyses.flow.validation import (
    METHODS,
    choose_targets,
    deactivation_changes,
    deactivation_layer,
    deactivation_table,
    method_gaps,
    pearson_matches,
    picks,
    scale_edits,
    share_gap,
    success_curve,
)

__all__ = [
    "add_edits",
    "against_baseline",
    "agreement_gap",
    "agreement_rows",
    "CATEGORIES",
    "categories",
    "category_rows",
    "choose_targets",
    "coherence",
    "Corpus",
    "corpus_codes",
    "corpus_probes",
    "cumulative_gaps",
    "deactivate_graph",
    "deactivation_changes",
    "deactivation_layer",
    "deactivation_table",
    "decoder",
    "depth_band",
    "flow_graph",
    "flow_sites",
    "FlowGraph",
    "FlowSAEs",
    "generate_rows",
    "group_counts",
    "group_rows",
    "group_shares",
    "GROUPS",
    "label_graph",
    "layer_configs",
    "match_layer",
    "match_predecessors",
    "matched_schedule",
    "method_gaps",
    "share_gap",
    "METHODS",
    "node_id",
    "node_site",
    "nowhere_margin",
    "organism_corpus",
    "paired",
    "parse_seed",
    "peak_gap",
    "pearson_matches",
    "picks",
    "predecessor_site",
    "PREDECESSORS",
    "product",
    "refusal_seed",
    "residual_chain",
    "residual_norms",
    "row_bootstrap",
    "row_tables",
    "scale_edits",
    "schedule",
    "SCHEDULES",
    "seeds",
    "selection_probes",
    "SHORT",
    "similarity_rows",
    "steer",
    "steer_configs",
    "steering_prompts",
    "steering_summary",
    "success_curve",
    "text_corpus",
    "threshold_grid",
    "top1",
    "top_matches",
    "top_tokens",
    "topic_prompts",
    "topic_share",
    "topic_vocabulary",
    "well_formed",
    "word_token_ids",
    "writer_scores",
]
