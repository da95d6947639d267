"""nnsight interventions: exact splice, each edit against an independent torch-hook reference, generation."""

import pytest
import torch

from conftest import PROMPTS
from saesteer.core import generation, hooks
from saesteer.core.hooks import POSITIONS, Site
from saesteer.core.interventions import (
    AddVector,
    BoostEach,
    Clamp,
    Scale,
    ScaleRows,
    batches,
    forward_with_edits,
    generate_with_edits,
    last_token_logits,
    prefix_cache,
    read_activations,
)
from saesteer.core.models import torch_model


def _vector(seed=1, scale=4.0):
    return torch.randn(32, generator=torch.Generator().manual_seed(seed)) * scale


def _reference(model, prompts, additions: dict, new_tokens=0):
    """Plain transformers + torch forward hooks that add ``additions[site]`` (the reference, no nnsight)."""
    base = torch_model(model)
    handles = []
    for site, vector in additions.items():
        add = lambda module, inputs, output, v=vector: output + v  # tensor outputs in transformers 5
        handles.append(hooks.module_at(base, site).register_forward_hook(add))
    batch = model.tokenizer(list(prompts), padding=True, return_tensors="pt")
    try:
        with torch.no_grad():
            if new_tokens:
                out = base.generate(**batch, max_new_tokens=new_tokens, do_sample=False,
                                    pad_token_id=model.tokenizer.pad_token_id)
                return out[:, batch["input_ids"].shape[1]:]
            positions = (batch["attention_mask"].cumsum(-1) - 1).clamp(min=0)  # left padding, as nnsight does
            return base(**batch, position_ids=positions).logits
    finally:
        for handle in handles:
            handle.remove()


def test_splice_without_edit_is_exact_everywhere(family_model, sae):
    family, model = family_model
    sites = [Site(layer, p) for layer in range(hooks.n_layers(model)) for p in POSITIONS]
    clean, _ = forward_with_edits(model, PROMPTS)
    identity = [Scale(site=s, sae=sae, features=list(range(64)), factor=1.0) for s in sites]
    spliced, _ = forward_with_edits(model, PROMPTS, identity)
    assert torch.equal(clean, spliced)


def test_add_vector_matches_torch_hooks(family_model):
    family, model = family_model
    site = Site(1, "resid_post") if family == "gpt2" else Site(0, "mlp_out")
    edited, _ = forward_with_edits(model, PROMPTS, [AddVector(site=site, vector=_vector(), coeff=1.0)])
    torch.testing.assert_close(edited, _reference(model, PROMPTS, {site: _vector()}))


def test_edits_at_several_layers_at_once_match_torch_hooks(tiny_models):
    model = tiny_models["gemma2"]
    additions = {Site(1, "attn_out"): _vector(2), Site(0, "resid_post"): _vector(3)}  # given out of order on purpose
    edits = [AddVector(site=s, vector=v) for s, v in additions.items()]
    edited, _ = forward_with_edits(model, PROMPTS, edits)
    torch.testing.assert_close(edited, _reference(model, PROMPTS, additions))


def test_clamp_moves_along_decoder_direction_by_c_minus_z(family_model, sae):
    family, model = family_model
    site, feature, value = Site(1, "resid_post"), 5, 7.5
    _, clean = forward_with_edits(model, PROMPTS, read=[site])
    _, edited = forward_with_edits(model, PROMPTS, [Clamp(site=site, sae=sae, features=[feature], value=value)], read=[site])
    z = sae.encode(clean[site])[..., feature]
    expected = clean[site] + (value - z)[..., None] * sae.W_dec[feature]
    torch.testing.assert_close(edited[site], expected, atol=1e-5, rtol=1e-5)


def test_clamp_several_features_to_own_values(tiny_models, sae):
    model, site = tiny_models["phi3"], Site(0)
    _, clean = forward_with_edits(model, PROMPTS, read=[site])
    edit = Clamp(site=site, sae=sae, features=[1, 2], value=[3.0, -1.0])
    _, edited = forward_with_edits(model, PROMPTS, [edit], read=[site])
    z = sae.encode(clean[site])
    expected = clean[site] + (3.0 - z[..., 1:2]) * sae.W_dec[1] + (-1.0 - z[..., 2:3]) * sae.W_dec[2]
    torch.testing.assert_close(edited[site], expected, atol=1e-5, rtol=1e-5)


def test_clamp_per_row_values_equal_separate_runs_and_nan_leaves_row(tiny_models, sae):
    """A sweep batched along rows gives what each value gives alone; NaN rows are the clean model."""
    model, site = tiny_models["gemma2"], Site(1)
    prompt, values = PROMPTS[0], [float("nan"), 2.0, 9.0]
    per_row = Clamp(site=site, sae=sae, features=[4], value=torch.tensor(values)[:, None])
    batched, _ = forward_with_edits(model, [prompt] * 3, [per_row])
    clean, _ = forward_with_edits(model, [prompt])
    torch.testing.assert_close(batched[0], clean[0])
    for row, value in enumerate(values[1:], start=1):
        alone, _ = forward_with_edits(model, [prompt], [Clamp(site=site, sae=sae, features=[4], value=value)])
        torch.testing.assert_close(batched[row], alone[0], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(batched[1], batched[2])


@pytest.mark.parametrize("factor", [0.0, -2.0])
def test_scale_is_h_plus_r_minus_1_a_d(tiny_models, sae, factor):
    model, site = tiny_models["llama"], Site(1, "attn_out")
    _, clean = forward_with_edits(model, PROMPTS, read=[site])
    z = sae.encode(clean[site])
    active = int(z.sum(dim=(0, 1)).argmax())  # a feature that is active somewhere
    _, edited = forward_with_edits(model, PROMPTS, [Scale(site=site, sae=sae, features=[active], factor=factor)], read=[site])
    expected = clean[site] + (factor - 1) * z[..., active : active + 1] * sae.W_dec[active]
    torch.testing.assert_close(edited[site], expected, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(edited[site], clean[site])


def test_last_token_edit_leaves_earlier_positions(tiny_models):
    model, site = tiny_models["gemma2"], Site(0)
    _, clean = forward_with_edits(model, PROMPTS, read=[site])
    _, edited = forward_with_edits(model, PROMPTS, [AddVector(site=site, vector=_vector(), tokens="last")], read=[site])
    assert torch.equal(edited[site][:, :-1], clean[site][:, :-1])
    torch.testing.assert_close(edited[site][:, -1], clean[site][:, -1] + _vector())


def test_generate_edit_reaches_every_token_and_matches_torch_hooks(family_model):
    family, model = family_model
    site, n = Site(0, "resid_post"), 6
    edit = AddVector(site=site, vector=_vector(scale=8.0))
    steered = generate_with_edits(model, PROMPTS, [edit], max_new_tokens=n, min_new_tokens=n)
    assert edit.steps_seen == list(range(n))
    assert torch.equal(steered, _reference(model, PROMPTS, {site: _vector(scale=8.0)}, new_tokens=n))


def test_generate_without_edits_matches_plain_generate(tiny_models):
    model = tiny_models["phi3"]
    assert torch.equal(generate_with_edits(model, PROMPTS, max_new_tokens=5, min_new_tokens=5),
                       _reference(model, PROMPTS, {}, new_tokens=5))


def test_generate_token_modes(tiny_models, sae):
    model, site, n = tiny_models["gemma2"], Site(1), 5
    prompt_only = Clamp(site=site, sae=sae, features=[0], value=20.0, tokens="prompt")
    generated_only = Clamp(site=site, sae=sae, features=[1], value=20.0, tokens="generated")
    generate_with_edits(model, PROMPTS, [prompt_only, generated_only], max_new_tokens=n, min_new_tokens=n)
    assert prompt_only.steps_seen == generated_only.steps_seen == list(range(n))  # both visited every step ...
    clean = generate_with_edits(model, PROMPTS, max_new_tokens=n, min_new_tokens=n)
    first_only = generate_with_edits(model, PROMPTS, [AddVector(site=site, vector=_vector(scale=50), tokens="prompt")],
                                     max_new_tokens=n, min_new_tokens=n)
    later_only = generate_with_edits(model, PROMPTS, [AddVector(site=site, vector=_vector(scale=50), tokens="generated")],
                                     max_new_tokens=n, min_new_tokens=n)
    assert not torch.equal(first_only[:, 0], clean[:, 0])  # ... but a prompt-only edit changes the first token
    assert torch.equal(later_only[:, 0], clean[:, 0])  # and a generated-only edit cannot


def test_bad_token_mode_is_a_clear_error():
    with pytest.raises(ValueError, match="tokens='every' is not one of all, prompt, generated, last"):
        AddVector(site=Site(0), vector=torch.zeros(32), tokens="every")


def test_batches():
    assert list(batches(range(5), 2)) == [[0, 1], [2, 3], [4]]


def test_fp32_sae_edits_a_bf16_model(sae):
    from saesteer.core.models import load_model

    model = load_model("tiny:llama", dtype="bfloat16")
    edit = Clamp(site=Site(1), sae=sae, features=[3], value=5.0)
    logits, _ = forward_with_edits(model, PROMPTS, [edit])
    tokens = generate_with_edits(model, PROMPTS, [edit], max_new_tokens=3, min_new_tokens=3)
    assert logits.dtype == torch.bfloat16 and tokens.shape == (len(PROMPTS), 3)


def test_reconstruct_and_ablate_replace_the_activation(tiny_models, sae):
    from saesteer.core.interventions import Ablate, Reconstruct

    model, site = tiny_models["gemma2"], Site(0, "mlp_out")
    _, clean = forward_with_edits(model, PROMPTS, read=[site])
    _, rebuilt = forward_with_edits(model, PROMPTS, [Reconstruct(site=site, sae=sae)], read=[site])
    _, zeroed = forward_with_edits(model, PROMPTS, [Ablate(site=site)], read=[site])
    torch.testing.assert_close(rebuilt[site], sae.decode(sae.encode(clean[site])))
    assert not zeroed[site].any()


def test_forward_accepts_token_ids(tiny_models):
    model = tiny_models["llama"]
    ids = torch.randint(4, 60, (2, 7), generator=torch.Generator().manual_seed(0))
    logits, _ = forward_with_edits(model, ids)
    with torch.no_grad():
        torch.testing.assert_close(logits, torch_model(model)(ids).logits)


def test_nan_leaves_the_row_alone_in_every_per_row_edit(sae):
    x = torch.randn(3, 4, 32)
    nan = float("nan")
    on = int(sae.encode(x)[0, 0].argmax())  # active in row 0, so scaling it changes row 0
    edits = [Clamp(site=Site(0), sae=sae, features=[5], value=torch.tensor([[2.0], [nan], [3.0]])),
             ScaleRows(site=Site(0), sae=sae, features=[on, 9], factors=torch.tensor([[0.0, 2.0], [nan, nan], [nan, 0.5]])),
             BoostEach(site=Site(0), sae=sae, features=[5, 7, 9], factors=torch.tensor([2.0, nan, 1.0])),
             AddVector(site=Site(0), vector=torch.stack([torch.ones(1, 32), torch.full((1, 32), nan), torch.ones(1, 32)]))]
    for edit in edits:
        out = edit.apply(x)
        assert torch.equal(out[1], x[1]), type(edit).__name__
        assert not torch.equal(out[0], x[0]), type(edit).__name__


def test_boost_each_adds_its_own_feature_per_row(sae):
    x = torch.randn(3, 4, 32)
    edit = BoostEach(site=Site(0), sae=sae, features=[5, 0, 9], factors=[2.0, float("nan"), 2.0])
    z = sae.encode(x)
    delta = edit.apply(x) - x
    for row, f in ((0, 5), (2, 9)):
        boosted = z[row].clone()
        boosted[:, f] += 2.0 * z[row].amax(-1)
        assert torch.allclose(delta[row], sae.decode(boosted) - sae.decode(z[row]), atol=1e-5)


def test_scale_rows_matches_scale_on_its_rows(tiny_models, sae):
    model, site = tiny_models["gemma2"], Site(1)
    rows = ScaleRows(site=site, sae=sae, features=[3, 4], factors=torch.tensor([[0.0, 0.0], [float("nan")] * 2]))
    _, both = forward_with_edits(model, PROMPTS[:2], [rows], read=[site])
    _, scaled = forward_with_edits(model, PROMPTS[:2], [Scale(site=site, sae=sae, features=[3, 4], factor=0.0)], read=[site])
    _, clean = forward_with_edits(model, PROMPTS[:2], read=[site])
    assert torch.equal(both[site][0], scaled[site][0]) and torch.equal(both[site][1], clean[site][1])


def test_last_token_logits_with_a_prefix_cache_match_the_full_forward(tiny_models, sae):
    model = tiny_models["gemma2"]
    ids = model.tokenizer("w1 w2 w3 w4", return_tensors="pt")["input_ids"]
    edit = BoostEach(site=Site(1), sae=sae, features=[3, 8], factors=2.0, tokens="last")
    full = last_token_logits(model, ids, [edit], rows=2)
    cached = last_token_logits(model, ids, [edit], rows=2, prefix=prefix_cache(model, ids[:, :-1]))
    torch.testing.assert_close(cached, full, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(full[0], last_token_logits(model, ids)[0])


def test_one_generation_loop_batches_edits_per_batch_and_seeds_per_batch(tiny_models):
    model, site = tiny_models["gemma2"], Site(0)
    prompts = PROMPTS + PROMPTS[:2]
    seen = []

    def edits_for(rows):
        seen.append(rows)
        return [AddVector(site=site, vector=_vector(scale=8.0), tokens="all")]

    batched = generation.generate(model, prompts, edits_for, max_new_tokens=4, batch_size=2, min_new_tokens=4)
    assert seen == [[0, 1], [2, 3], [4]] and [len(ids) for ids in batched] == [2, 2, 1]
    for rows, ids in zip(seen, batched):  # each batch is one generate call with its own edits
        alone = generate_with_edits(model, [prompts[i] for i in rows], edits_for(rows), max_new_tokens=4, min_new_tokens=4)
        assert torch.equal(ids, alone.cpu())
    sampled = dict(do_sample=True, temperature=1.0, top_k=0, max_new_tokens=4, min_new_tokens=4)
    first = generation.generate(model, prompts, (), batch_size=2, seed=7, **sampled)
    assert all(torch.equal(a, b) for a, b in zip(first, generation.generate(model, prompts, (), batch_size=2, seed=7, **sampled)))
    torch.manual_seed(7 + 2)  # the second batch is seeded with seed + its first row
    assert torch.equal(first[1], generate_with_edits(model, prompts[2:4], **sampled).cpu())
    greedy = generation.generate(model, prompts, (), max_new_tokens=4, batch_size=2)
    assert generation.generate_text(model, prompts, (), max_new_tokens=4, batch_size=2) == [
        text for ids in greedy for text in generation.answer_text(model.tokenizer, ids)]


@pytest.mark.parametrize("family", ["gemma3", "gpt2"])
def test_read_activations_stops_early_and_equals_a_full_forward(tiny_models, family):
    model = tiny_models[family]
    ids = model.tokenizer(["w1 w2 w3 w4", "w5 w6 w7 w8"], return_tensors="pt")["input_ids"]
    sites = [Site(0, "mlp_out"), Site(0), Site(1, "attn_out")]
    _, full = forward_with_edits(model, ids, read=sites)
    early = read_activations(model, ids, sites)
    for site in sites:
        assert torch.equal(early[site], full[site])


def test_inverse_cdf_sampler_draws_from_the_tempered_softmax():
    scores = torch.tensor([[2.0, 1.0, 0.0, -1.0, float("-inf")]]).expand(40_000, -1)
    torch.manual_seed(0)
    picked = generation.InverseCdfSampler(0.7)(None, scores)
    token = picked.argmax(-1)
    assert torch.isfinite(picked).sum(1).eq(1).all()  # greedy decoding can only take the drawn token
    frequency = torch.bincount(token, minlength=5) / len(token)
    assert (frequency - torch.softmax(scores[0] / 0.7, -1)).abs().max() < 0.01 and frequency[4] == 0
    with pytest.raises(ValueError, match="temperature must be positive"):
        generation.InverseCdfSampler(0.0)


def test_sampled_generation_repeats_with_its_seed_and_follows_the_edits(tiny_models, sae):
    model = tiny_models["gemma3"]
    edits = [AddVector(site=Site(0), vector=_vector(scale=8.0), tokens="all")]
    run = lambda e: generation.generate(model, PROMPTS * 4, e, max_new_tokens=4, batch_size=5, seed=3,  # noqa: E731
                                        min_new_tokens=4, **generation.sample_at(1.0))
    first, again, steered = run(()), run(()), run(edits)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not all(torch.equal(a, b) for a, b in zip(first, steered))
    assert len(torch.cat(first).unique()) > 3  # sampled, not one greedy answer repeated
