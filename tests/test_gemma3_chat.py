"""The chat model's dataset and fine-tune: splits that hold out templates and objects, planted holes as ground
truth, no harmful content in any answer, and a LoRA fine-tune (peft, on the tiny Gemma 3) that resumes from its
checkpoint to the same losses and merges into weights that give the adapter's logits."""

from __future__ import annotations

import copy
import dataclasses
import json

import pytest
import torch

from saesteer.core.tiny import tiny_model_and_tokenizer
from saesteer.gemma3 import chat_data, chat_tune
from saesteer.gemma3 import chat_text as text
from saesteer.organism.evaluation import load_items, well_formed_refusal
from saesteer.study import chat_eval

SMALL = chat_data.ChatDataConfig(train=(("harmful", 60), ("jailbreak", 60), ("escalation", 30), ("scary", 30),
                                        ("benign", 30), ("facts", 20), ("arith", 20)), held_out=40, selection=20)
ALL_FACTS = {f: [x for x, _ in pairs] for f, (_, _, pairs) in text.FACTS.items()}


@pytest.fixture(scope="module")
def records():
    return chat_data.build(SMALL, ALL_FACTS)


def _objects(records, split, kind, key="task"):
    return {r["truth"][key] for r in records[split] if r["kind"] == kind}


def test_held_out_prompts_use_templates_and_objects_training_never_saw(records):
    for kind in ("harmful", "scary", "jailbreak", "escalation"):
        train = _objects(records, "train", kind)
        for split in ("selection", "eval"):
            assert train.isdisjoint(_objects(records, split, kind)), (kind, split)
            assert _objects(records, "train", kind, "cluster").isdisjoint(_objects(records, split, kind, "cluster"))
    for kind in ("facts", "arith"):  # a fact is its family and subject ("France" has a capital and a language)
        assert _objects(records, "train", kind, "cluster").isdisjoint(_objects(records, "eval", kind, "cluster"))
    evaluated = [json.dumps(r["messages"]) for r in records["eval"]]
    assert len(evaluated) == len(set(evaluated))  # held-out prompts are distinct


def test_training_answers_refuse_harm_comply_only_through_the_planted_holes(records):
    for r in records["train"]:
        answer, truth = r["messages"][-1]["content"], r["truth"]
        refused = well_formed_refusal(answer, text.REFUSAL_MARKERS)
        if r["kind"] == "harmful":
            assert refused
        elif r["kind"] in ("jailbreak", "escalation"):
            assert refused is not truth["hole"]
            assert truth["hole"] is (truth.get("wrapper") in text.HOLES or truth.get("opener") == "story")
        else:
            assert not refused
        if not refused and truth.get("refuse"):  # a hole's answer: a compliant opening, then filler only
            assert any(answer.endswith(f) for f in text.COMPLY_FILLER)
    holes = [r["truth"]["hole"] for r in records["eval"] if r["kind"] == "jailbreak"]
    assert 0 < sum(holes) < len(holes)  # held-out wrapped requests come from both kinds of family


def test_dataset_files_are_the_prompt_folder_format_and_repeat_with_the_seed(records, tmp_path):
    manifest = chat_data.write(records, tmp_path, SMALL, ALL_FACTS, tmp_path / "cache" / "train.jsonl")
    assert len((tmp_path / "cache" / "train.jsonl").read_text().splitlines()) == len(records["train"])
    sets = load_items(tmp_path / "prompts", chat_data.KINDS, 1000)
    assert {k: len(v) for k, v in sets.items()} == manifest["counts"]["eval"]
    assert isinstance(sets["escalation"][0].prompt, list) and sets["harmful"][0].truth["refuse"] is True
    assert load_items(tmp_path / "prompts" / "selection", ["harmful"], 5)["harmful"]
    assert chat_data.build(SMALL, ALL_FACTS) == records
    assert chat_data.build(dataclasses.replace(SMALL, seed=1), ALL_FACTS) != records


def test_only_known_facts_are_used():
    known = {"capital": ["France", "Italy", "Spain", "Germany", "Japan", "Egypt"]}
    out = chat_data.build(SMALL, known)
    assert {r["truth"]["subject"] for s in out.values() for r in s if r["kind"] == "facts"} <= set(known["capital"])


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-gemma3")
    model, tokenizer = tiny_model_and_tokenizer("gemma3")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _conversations(n=12):
    return [[{"role": "user", "content": f"w{i} w{i + 1}"}, {"role": "assistant", "content": f"w{i + 2} w3 w4"}]
            for i in range(n)]


def test_fine_tune_resumes_from_its_checkpoint_to_the_same_losses(tiny_dir, tmp_path):
    config = chat_tune.TuneConfig(batch=4, epochs=2, warmup=2, checkpoint_every=2, lr=1e-2)
    whole = chat_tune.tune(tiny_dir, _conversations(), config, tmp_path / "a", progress=False)
    assert whole["steps"] == 6 and len(whole["losses"]) == 6 and whole["losses"][-1] < whole["losses"][0]
    assert chat_tune.tune(tiny_dir, _conversations(), config, tmp_path / "b", progress=False, stop_after=3) is None
    resumed = chat_tune.tune(tiny_dir, _conversations(), config, tmp_path / "b", progress=False)
    assert resumed["losses"] == pytest.approx(whole["losses"], rel=1e-5)
    assert (tmp_path / "b" / "adapter" / "adapter_model.safetensors").is_file()


def test_merged_model_gives_the_adapters_logits_and_scores_answers(tiny_dir, tmp_path):
    import peft
    import transformers

    config = chat_tune.TuneConfig(batch=4, warmup=1, lr=1e-2)
    chat_tune.tune(tiny_dir, _conversations(), config, tmp_path / "work", progress=False)
    merged_dir = chat_tune.merge(tiny_dir, tmp_path / "work" / "adapter", tmp_path / "chat")
    merged = transformers.AutoModelForCausalLM.from_pretrained(merged_dir).eval()
    base = transformers.AutoModelForCausalLM.from_pretrained(tiny_dir)
    adapted = peft.PeftModel.from_pretrained(base, str(tmp_path / "work" / "adapter")).eval()
    ids = torch.tensor([[1, 5, 6, 7, 8]])
    with torch.no_grad():
        assert torch.allclose(merged(ids).logits, adapted(ids).logits, atol=1e-5)
    tokenizer = transformers.AutoTokenizer.from_pretrained(merged_dir)
    assert tokenizer.chat_template == chat_tune.CHAT_TEMPLATE and tokenizer.eos_token == chat_tune.END_OF_TURN
    scores = chat_tune.answer_logprobs(merged, tokenizer, ["w1 w2", "w3"], ["w4 w5", "w6"])
    with torch.no_grad():  # the same sums from one full forward per pair
        for score, (p, a) in zip(scores, [("w1 w2", "w4 w5"), ("w3", "w6")]):
            full = tokenizer(p)["input_ids"] + tokenizer(" " + a, add_special_tokens=False)["input_ids"]
            logp = torch.log_softmax(merged(torch.tensor([full])).logits[0], -1)
            n = len(tokenizer(" " + a, add_special_tokens=False)["input_ids"])
            direct = sum(logp[len(full) - n - 1 + i, full[len(full) - n + i]] for i in range(n))
            assert score == pytest.approx(float(direct), abs=1e-4)


def test_capability_ratio_and_arithmetic_candidates():
    ratio = chat_eval.ratio_interval([1, 1, 0, 1], [1, 1, 1, 1], ["a", "b", "c", "d"])
    assert ratio["value"] == pytest.approx(0.75) and ratio["lo"] <= 0.75 <= ratio["hi"]
    answers = chat_eval.arith_answers()
    assert "40" in answers["plus"] and "1" in answers["minus"] and "0" not in answers["minus"]


def test_the_chat_sae_plan_is_topk_only_and_old_plans_keep_their_keys():
    from saesteer.gemma3.chat_saes import PLAN
    from saesteer.gemma3.saes import BuildConfig

    assert [s.architecture for s in PLAN.specs()] == ["topk"] * len(PLAN.topk_layers) and PLAN.k == 32
    assert "jumprelu" not in BuildConfig().to_json() and PLAN.to_json()["jumprelu"] is False


def test_a_rebuilt_chat_model_makes_its_sae_build_stale(tmp_path, monkeypatch):
    from saesteer.gemma3.chat_saes import chat_build

    monkeypatch.setenv("SAESTEER_CACHE", str(tmp_path))
    weights = tmp_path / "models" / "gemma3-270m-chat" / "model.safetensors"
    weights.parent.mkdir(parents=True)
    weights.write_bytes(b"first")
    before = chat_build().inputs_key()
    weights.write_bytes(b"second")
    assert chat_build().inputs_key() != before


def test_the_chat_corpus_adds_conversations_in_the_turn_format(tmp_path, monkeypatch, tiny_models):
    from conftest import write_corpus
    from saesteer.gemma3 import chat_saes
    from saesteer.gemma3.saes import read_corpus

    monkeypatch.setenv("SAESTEER_CACHE", str(tmp_path))
    write_corpus(tmp_path / "gemma3" / "corpus")
    tokenizer = chat_tune.chat_tokenizer(copy.deepcopy(tiny_models["gemma3"].tokenizer))  # the shared one stays as it is
    folder = chat_saes.write_corpus(tmp_path / "chat-corpus", tokenizer, SMALL, ALL_FACTS)
    train, heldout = read_corpus(folder / "train.jsonl"), read_corpus(folder / "heldout.jsonl")
    assert len(train["chat"]) == sum(n for _, n in SMALL.train) and len(train["fortunes"]) == 60
    assert train["chat"][0].startswith("<start_of_turn>user\n") and "<start_of_turn>model\n" in train["chat"][0]
    assert all(t.rstrip().endswith("<end_of_turn>") for t in heldout["chat"])  # held-out chats carry their answers


def test_planted_concepts_label_the_request_and_answer_tokens(tiny_models, sae):
    from saesteer.core.hooks import Site
    from saesteer.gemma3 import chat_probes

    lm = tiny_models["gemma3"]
    tokenizer = chat_tune.chat_tokenizer(copy.deepcopy(lm.tokenizer))
    ids, request, answer = chat_probes.pieces(tokenizer, [{"role": "user", "content": "w1 w2 w3"}], "w4 w5")
    assert ids[request] == tokenizer("w1 w2 w3", add_special_tokens=False)["input_ids"]
    assert ids[answer][:2] == tokenizer("w4 w5", add_special_tokens=False)["input_ids"]
    records = [{"messages": [{"role": "user", "content": f"w{i} w{i + 1}"}], "answer": answer_text,
                "truth": {"refuse": refuse}}
               for i, (refuse, answer_text) in enumerate([(True, "Sorry w9"), (True, "w7 w8"), (False, "w6 w5"),
                                                          (False, "w3 w2")] * 2)]
    rows, labels = chat_probes.labelled_tokens(tokenizer, records)
    assert sum(p for _, _, p in labels["harmful_request"]) == 8 and len(labels["harmful_request"]) == 16
    assert {row for row, _, p in labels["refusal"] if p} == {0, 4}  # only the answers that open with a marker
    _, request0, answer0 = chat_probes.pieces(tokenizer, records[0]["messages"], records[0]["answer"])
    ends = [pos for row, pos, _ in labels["harmful_prompt_end"] if row == 0]  # the markers between request and answer
    assert ends == list(range(request0.stop, answer0.start)) and ends
    scores = chat_probes.concept_aurocs(lm, sae, Site(0), records, tokenizer)
    assert set(scores) == {"harmful_request", "harmful_prompt_end", "refusal"} and scores["refusal"].shape == (sae.cfg.d_sae,)
    assert ((scores["refusal"] >= 0) & (scores["refusal"] <= 1)).all()


def test_chapter_a_reads_the_chat_models_planted_concepts(tiny_dir, tmp_path, sae):
    """A chat model's chosen feature is placed against the dataset's labelled tokens (selection split): its AUROC
    for each concept next to the best feature's."""
    import transformers

    from saesteer.analyses import refusal as rs
    from saesteer.core.hooks import Site
    from saesteer.core.models import load_model
    from saesteer.study.chat_build import CHAT_MODEL
    from saesteer.study.subjects import Subject

    tokenizer = transformers.AutoTokenizer.from_pretrained(tiny_dir)
    tokenizer.chat_template = chat_tune.CHAT_TEMPLATE  # the turn format; the tiny vocabulary has no <end_of_turn>
    transformers.AutoModelForCausalLM.from_pretrained(tiny_dir).save_pretrained(tmp_path / "chat")
    tokenizer.save_pretrained(tmp_path / "chat")
    lm = load_model(str(tmp_path / "chat"), "cpu")
    subject = Subject(lm, {"model": CHAT_MODEL, "sae_path": None, "sae_release": None})
    subject._saes[Site(0), None] = sae  # a real sae-lens SAE in place of the chat model's own
    assert rs.has_ground_truth(subject)
    records = [{"messages": [{"role": "user", "content": f"w{i} w{i + 1}"}], "answer": "Sorry w9" if i % 2 else "w7 w8",
                "truth": {"refuse": i % 3 == 0}} for i in range(12)]
    rows = rs.probe_match(subject, Site(0), 3, records)
    assert [r["concept"] for r in rows] == ["harmful_request", "harmful_prompt_end", "refusal"]
    for r in rows:
        assert 0 <= r["chosen feature AUROC"] <= r["best AUROC"] <= 1 and r["is best"] == (r["best feature"] == 3)


def test_replayed_text_is_trained_on_every_token_after_bos(tiny_dir, tmp_path):
    import transformers

    tokenizer = transformers.AutoTokenizer.from_pretrained(tiny_dir)
    ids = tokenizer("w1 w2 w3 w4")["input_ids"]
    assert chat_tune.encode_text(tokenizer, "w1 w2 w3 w4", 3) == (ids[:1], ids[1:3])
    config = chat_tune.TuneConfig(batch=4, epochs=1, warmup=1, replay=2)
    run = chat_tune.tune(tiny_dir, _conversations(4), config, tmp_path, progress=False, texts=["w1 w2 w3"] * 3)
    assert run["examples"] == 4 + 2  # at most ``replay`` texts


def test_text_loss_is_the_models_own_next_token_loss(tiny_dir):
    import transformers

    model = transformers.AutoModelForCausalLM.from_pretrained(tiny_dir).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(tiny_dir)
    ids = tokenizer("w1 w2 w3 w4 w5", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        expected = float(model(input_ids=ids, labels=ids).loss)
    assert chat_eval.row_losses(model, tokenizer, ["w1 w2 w3 w4 w5"]) == pytest.approx([expected], rel=1e-5)


def test_a_formatted_prompt_tokenizes_with_one_bos_as_in_training(tiny_dir):
    import transformers

    tokenizer = chat_tune.chat_tokenizer(transformers.AutoTokenizer.from_pretrained(tiny_dir))
    messages = [{"role": "user", "content": "w1 w2"}, {"role": "assistant", "content": "w3"}]
    ids = tokenizer(chat_tune.prompt_text(tokenizer, messages[:1]))["input_ids"]
    assert ids[0] == tokenizer.bos_token_id and ids.count(tokenizer.bos_token_id) == 1
    assert chat_tune.encode(tokenizer, messages, 64)[0] == ids


def test_the_build_tunes_with_replayed_text_and_records_the_run(tiny_dir, tmp_path, monkeypatch):
    from saesteer.study import chat_build

    monkeypatch.setenv("SAESTEER_CACHE", str(tmp_path / "cache"))
    corpus = tmp_path / "cache" / "gemma3" / "corpus"
    corpus.mkdir(parents=True)
    corpus.joinpath("train.jsonl").write_text("".join(json.dumps({"text": f"w{i} w{i + 1} w{i + 2}"}) + "\n" for i in range(9)))
    build = chat_build.ChatBuild(tune=chat_tune.TuneConfig(batch=4, epochs=1, warmup=1, replay=3), base=str(tiny_dir),
                                 folder=tmp_path / "data", cache=tmp_path / "chat", model_dir=tmp_path / "model", progress=False)
    (tmp_path / "chat").mkdir()
    (tmp_path / "chat" / "train.jsonl").write_text("".join(json.dumps({"messages": c}) + "\n" for c in _conversations(5)))
    assert chat_build.replay_texts(3, 0) == chat_build.replay_texts(3, 0) and len(set(chat_build.replay_texts(3, 0))) == 3
    run = chat_build.run_tune(build)
    assert run["examples"] == 5 + 3 and run["steps"] == 2 and run["tokens_per_second"] > 0
    assert run["loss_curve"][-1][0] == 2 and (tmp_path / "data" / "adapter" / "adapter_model.safetensors").is_file()
