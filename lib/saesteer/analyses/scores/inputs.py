"""Chapter D, step 2: the input score. From the SAE codes of a text corpus, each feature's top-activating
documents and the token where it peaks in each; S_in is the share of those peak tokens that lie in its logit lens.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from saesteer.core.codes import sae_codes
from saesteer.core.files import read_documents
from saesteer.core.hooks import Site
from saesteer.core.interventions import batches
from saesteer.core.progress import bar
from saesteer.study.params import ParameterError


# --- 2. input score ------------------------------------------------------------------------------
def corpus_documents(subject, n_docs: int, corpus_text: str | None, seed: int) -> list[str]:
    """Documents for the activation cache: the documents of ``corpus_text`` (``files.read_documents``), or the organism's training-distribution
    dialogues (a fresh seed, so the texts are new draws of the language, not the SAEs' training rows)."""
    if corpus_text is not None:
        return read_documents(corpus_text)[:n_docs]
    if subject.language is None:
        raise ParameterError("Parameter 'corpus_text' must name a text file when the model is not the organism.")
    return [d.text() for d in subject.language.corpus(n_docs, seed=10_000 + seed)]


def by_length(docs: Sequence[str]) -> list[str]:
    """Documents sorted by length, so batches carry little padding (document order does not enter any score)."""
    return sorted(docs, key=lambda d: (len(d.split()), d))


@dataclass
class ActivationStats:
    """Per layer and feature, its top documents: each one's largest code over its tokens and the token id there."""

    peak: dict[int, torch.Tensor]  # layer -> [n_top, d_sae] max activation per top document, largest first
    token: dict[int, torch.Tensor]  # layer -> [n_top, d_sae] token id at that max


def activation_stats(subject, docs: Sequence[str], layers: Sequence[int], n_top: int = 100, batch_size: int = 64,
                     max_len: int = 128) -> ActivationStats:
    """SAE codes of every document at every ``layers`` site in one forward pass per batch, reduced to each
    document's peak per feature, of which a running top ``n_top`` per feature is kept (memory stays
    [n_top, d_sae] per layer, so a real model's 16k-wide SAEs and long corpora fit). Tokens count by
    ``core.codes``'s rule: padding and the opening <bos> (it carries a huge norm) are left out."""
    sites = [Site(layer) for layer in layers]
    peak: dict[int, torch.Tensor] = {}
    token: dict[int, torch.Tensor] = {}
    for chunk in bar(list(batches(by_length(docs), batch_size)), "corpus codes"):
        # right padding: under the causal mask no real token sees a pad and positions start at 0 in every row,
        # so a document's codes do not depend on the batch it shares
        batch = sae_codes(subject.lm, {s: subject.sae(s) for s in sites}, chunk, padding_side="right", max_length=max_len)
        ids, mask = batch.ids, batch.mask
        for site in sites:
            z = batch.codes[site].cpu()
            value, where = z.masked_fill(~mask[..., None], -1.0).max(dim=1)
            values = torch.cat([peak.get(site.layer, value[:0]), value.clamp_min(0)])
            tokens = torch.cat([token.get(site.layer, where[:0]), torch.gather(ids, 1, where)])
            top, rows = values.topk(min(n_top, len(values)), dim=0)
            peak[site.layer], token[site.layer] = top, torch.gather(tokens, 0, rows)
    return ActivationStats(peak, token)


def input_scores(peak: torch.Tensor, token: torch.Tensor, lens: torch.Tensor, min_examples: int,
                 max_examples: int) -> dict:
    """S_in per feature: the share of its top-activating documents (at most ``max_examples``, active ones only)
    whose peak token is in its logit lens; NaN when fewer than ``min_examples`` documents activate it."""
    n = min(max_examples, peak.shape[0])
    top_vals, top_docs = peak.topk(n, dim=0)  # [n, d_sae]
    top_tokens = torch.gather(token, 0, top_docs)  # [n, d_sae]
    in_lens = (top_tokens.T[:, :, None] == lens[:, None, :]).any(-1)  # [d_sae, n]
    active = (top_vals.T > 0)
    count = active.sum(1)
    score = (in_lens & active).sum(1).float() / count.clamp_min(1)
    score[count < min_examples] = float("nan")
    common = [Counter(top_tokens[: int(c), f].tolist()).most_common(3) for f, c in enumerate(count)]
    return {"score": score.tolist(), "examples": count.tolist(), "peak_tokens": [[t for t, _ in c] for c in common]}
