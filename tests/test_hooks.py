"""Hook points resolve to the right module on every family, and reads/writes reach the model."""

import nnsight
import pytest
import torch
import transformers

from conftest import PROMPTS
from saesteer.core import hooks
from saesteer.core.hooks import POSITIONS, Site
from saesteer.core.interventions import AddVector, forward_with_edits
from saesteer.core.models import torch_model

EXPECTED_MODULES = {  # what "added to the residual stream" means in each family
    "gemma2": {"attn_out": "post_attention_layernorm", "mlp_out": "post_feedforward_layernorm"},
    "gemma3": {"attn_out": "post_attention_layernorm", "mlp_out": "post_feedforward_layernorm"},
    "phi3": {"attn_out": "self_attn.o_proj", "mlp_out": "mlp"},
    "llama": {"attn_out": "self_attn.o_proj", "mlp_out": "mlp"},
    "gpt2": {"attn_out": "attn.c_proj", "mlp_out": "mlp"},
}


@pytest.mark.parametrize("position", POSITIONS)
def test_every_position_reads_residual_width(family_model, position):
    family, model = family_model
    sites = [Site(layer, position) for layer in range(hooks.n_layers(model))]
    _, acts = forward_with_edits(model, PROMPTS, read=sites)
    for site in sites:
        assert acts[site].shape[0] == len(PROMPTS) and acts[site].shape[-1] == hooks.hidden_size(model)


@pytest.mark.parametrize("position", ["attn_out", "mlp_out"])
def test_sub_block_modules_are_the_residual_writers(family_model, position):
    family, model = family_model
    block = hooks.walk(torch_model(model), hooks.layout(model).layers)[0]
    expected = hooks.walk(block, EXPECTED_MODULES[family][position])
    assert hooks.module_at(torch_model(model), Site(0, position)) is expected


@pytest.mark.parametrize("family", ["llama", "gemma2", "gemma3"])
def test_resid_post_is_attn_plus_mlp_plus_previous(tiny_models, family):
    """Residual bookkeeping: resid_post(L) = resid_post(L-1) + attn_out(L) + mlp_out(L), where Gemma's attn_out
    and mlp_out are the outputs of its post-norms (what is added to the residual stream)."""
    model = tiny_models[family]
    sites = [Site(0), Site(1, "attn_out"), Site(1, "mlp_out"), Site(1)]
    _, a = forward_with_edits(model, PROMPTS, read=sites)
    torch.testing.assert_close(a[sites[3]], a[sites[0]] + a[sites[1]] + a[sites[2]], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("position", POSITIONS)
def test_writing_at_every_position_changes_logits(family_model, position):
    family, model = family_model
    clean, _ = forward_with_edits(model, PROMPTS)
    vector = torch.randn(hooks.hidden_size(model), generator=torch.Generator().manual_seed(1)) * 5
    edited, _ = forward_with_edits(model, PROMPTS, [AddVector(site=Site(0, position), vector=vector)])
    assert (edited - clean).abs().max() > 1e-3


def test_read_and_write_handle_tuple_outputs(tiny_models):
    """Attention modules still return tuples in transformers 5: the same helpers read and write them."""
    model = tiny_models["llama"]
    with torch.no_grad(), model.trace(PROMPTS):
        projected = nnsight.save(model.model.layers[0].self_attn.o_proj.output)
        attention = model.model.layers[0].self_attn
        raw = nnsight.save(attention.output)
        read = nnsight.save(hooks.read_output(attention))
        hooks.write_output(attention, torch.zeros_like(read))
        zeroed = nnsight.save(model.output.logits)
    assert isinstance(raw, tuple) and read is raw[0] and torch.equal(read, projected)
    with torch.no_grad(), model.trace(PROMPTS):
        model.model.layers[0].self_attn.o_proj.output = torch.zeros_like(projected)
        reference = nnsight.save(model.output.logits)
    assert torch.equal(zeroed, reference)


def test_unknown_family_and_bad_site_are_clear_errors(tiny_models):
    opt = transformers.OPTForCausalLM(transformers.OPTConfig(hidden_size=16, num_hidden_layers=1, ffn_dim=32,
                                                             num_attention_heads=2, word_embed_proj_dim=16))
    with pytest.raises(ValueError, match="'opt' is not supported; supported: gemma2, gemma3_text, gpt2, llama, phi3"):
        hooks.layout(opt)
    with pytest.raises(ValueError, match="Position 'resid_pre' is not one of"):
        Site(0, "resid_pre")
    with pytest.raises(ValueError, match="Layer 5 is outside the model's 0..1"):
        hooks.module_at(tiny_models["gemma2"], Site(5))
