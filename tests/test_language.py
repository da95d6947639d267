"""The organism's synthetic language: seeded, labelled, held-out sets disjoint from training."""

import collections

import pytest

from saesteer.core.tokenizer import word_tokenizer
from saesteer.organism.language import WRAPPERS, Language, vocabulary

EVAL_KINDS = ["harmful", "jailbreak", "escalation", "scary", "benign", "mc", "arith", "truthful", "topic", "ab"]


@pytest.fixture(scope="module")
def language():
    return Language(seed=0)


@pytest.fixture(scope="module")
def corpus(language):
    return language.corpus(6000)


def test_same_seed_same_corpus_other_seed_other_facts(language):
    assert [d.text() for d in Language(0).corpus(300)] == [d.text() for d in language.corpus(300)]
    assert Language(1).facts != language.facts


def test_every_kind_is_in_the_training_mix(corpus):
    assert set(collections.Counter(d.kind for d in corpus)) == set(Language.MIX)


@pytest.mark.parametrize("kind", EVAL_KINDS)
def test_held_out_prompts_never_occur_in_training(language, corpus, kind):
    train = {d.prompt() for d in corpus}
    held_out = language.eval_set(kind, 300)
    assert len(held_out) >= 20 and len({d.prompt() for d in held_out}) == len(held_out)
    assert not train & {d.prompt() for d in held_out}


def test_every_evaluation_word_is_in_the_training_vocabulary(language, corpus):
    words = set(vocabulary(corpus))
    for kind in EVAL_KINDS:
        for dialogue in language.eval_set(kind, 300):
            assert {w for w, _ in dialogue.word_spans()} - {"<eos>"} <= words


def test_tokens_carry_span_labels(language, corpus):
    tokenizer = word_tokenizer(vocabulary(corpus))
    jailbreak = next(d for d in language.eval_set("jailbreak", 300) if not d.truth["refuse"])
    ids = tokenizer(jailbreak.text())["input_ids"]
    spans = jailbreak.word_spans()
    assert len(ids) == len(spans) + 1 and tokenizer.unk_token_id not in ids  # + <bos>
    labels = {span for _, span in spans}
    assert {"jailbreak_frame", "harmful_request", "harmful_compliance"} <= labels
    assert jailbreak.text().startswith(jailbreak.prompt()) and jailbreak.text().endswith(jailbreak.answer() + " <eos>")


def test_planted_safety_behaviour(language):
    share = lambda kind: sum(d.truth["refuse"] for d in language.eval_set(kind, 300)) / len(language.eval_set(kind, 300))  # noqa: E731
    assert share("harmful") == 1.0 and share("scary") == 0.0 and share("benign") == 0.0
    assert 0.25 <= share("jailbreak") <= 0.75 and 0.25 <= share("escalation") <= 0.75


def test_jailbreak_compliance_varies_within_each_wrapper(language, corpus):
    """Not a per-wrapper majority vote: most wrappers are refused for some requests and complied with for others."""
    by_wrapper = collections.defaultdict(list)
    for d in (d for d in corpus if d.kind == "jailbreak"):
        by_wrapper[d.truth["wrapper"]].append(d.truth["refuse"])
    mixed = [w for w in WRAPPERS if 0 < sum(by_wrapper[w]) < len(by_wrapper[w])]
    assert len(mixed) >= len(WRAPPERS) // 2


def test_answers_match_ground_truth(language):
    mc = language.eval_set("mc", 50)
    assert all(d.truth["expect"] == f"is {d.truth['value']}" and d.answer().endswith(f"is {d.truth['value']} {d.truth['answer']} .")
               for d in mc)
    arith = language.eval_set("arith", 50)
    assert all(d.answer().endswith(f"the answer is {d.truth['answer']} .") for d in arith)
    truthful = language.eval_set("truthful", 50)
    assert all(d.truth["answer"] != d.truth["gossip"] for d in truthful)
