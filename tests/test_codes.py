"""core.codes: one forward pass, SAE codes and the one token rule (real tokens, opening <bos> only when asked)."""

from __future__ import annotations

import pytest
import torch

from saesteer.core.codes import encode, sae_codes
from saesteer.core.hooks import Site
from saesteer.core.interventions import Scale

TEXTS = ["w1 w2 w3 w4 w5", "w6 w7", "w8 w9 w10"]


def test_mask_is_the_padded_batch_without_the_opening_bos(tiny_models, sae):
    model, site = tiny_models["gemma2"], Site(1)
    batch = sae_codes(model, {site: sae}, TEXTS)
    enc = model.tokenizer(TEXTS, padding=True, return_tensors="pt")
    assert torch.equal(batch.ids, enc["input_ids"])
    assert batch.mask.sum(1).tolist() == [5, 2, 3]  # words only
    assert not batch.mask[batch.ids == model.tokenizer.bos_token_id].any()
    with_bos = sae_codes(model, {site: sae}, TEXTS, bos=True)
    assert torch.equal(with_bos.mask, enc["attention_mask"].bool())
    assert torch.equal(batch.tokens(site), batch.codes[site][batch.mask])


@pytest.mark.parametrize("side", ["left", "right"])
def test_counted_codes_do_not_depend_on_the_batch(tiny_models, sae, side):
    model, site = tiny_models["gemma2"], Site(1)
    together = sae_codes(model, {site: sae}, TEXTS, padding_side=side).tokens(site)
    alone = torch.cat([sae_codes(model, {site: sae}, [t], padding_side=side).tokens(site) for t in TEXTS])
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-5)


def test_token_ids_count_every_token_but_a_row_opening_bos(tiny_models, sae):
    model, site = tiny_models["llama"], Site(0)
    ids = model.tokenizer(["w1 w2 w3"], return_tensors="pt")["input_ids"]
    packed = torch.cat([ids, ids], dim=1)  # a packed row: the second <bos> is an ordinary token
    batch = sae_codes(model, {site: sae}, packed)
    assert batch.mask.tolist() == [[False, True, True, True, True, True, True, True]]
    assert sae_codes(model, {site: sae}, packed, bos=True).mask.all()


def test_codes_are_the_sae_encoding_of_the_edited_activation(tiny_models, sae):
    model, site = tiny_models["gemma2"], Site(1)
    edit = Scale(site=site, sae=sae, features=list(range(64)), factor=0.0)
    batch = sae_codes(model, {site: sae}, TEXTS, edits=[edit])
    torch.testing.assert_close(batch.codes[site], encode(sae, batch.acts[site]))
    assert not torch.allclose(batch.tokens(site), sae_codes(model, {site: sae}, TEXTS).tokens(site))


def test_pack_rows_cuts_full_rows_and_drops_the_tail():
    from saesteer.core.tokenizer import pack_rows

    rows = pack_rows([[1, 2, 3], [4, 5], [6, 7, 8, 9]], 4)
    assert rows.tolist() == [[1, 2, 3, 4], [5, 6, 7, 8]]
    assert pack_rows([[1, 2, 3]], 4).shape == (0, 4) and len(pack_rows([list(range(20))], 4, max_rows=2)) == 2
