"""A real model's answers read by rule: multiple-choice letters, final numbers, refusal by a text classifier (a
tiny random one built here), and the judge on real benchmarks' truths next to the organism's, which it judges
as before."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import torch
import transformers

from saesteer.analyses import refusal as rs
from saesteer.core.answers import as_number, choice_of, number_of, refusal_classifier
from saesteer.core.models import load_model
from saesteer.core.tokenizer import word_tokenizer
from saesteer.organism.evaluation import METRICS, Item, as_item, degenerate, judge, outcome, rate_of, sweep
from saesteer.organism.language import Language


# --- multiple choice ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("response", "letter"), [
    ("B", "B"), ("(B)", "B"), ("B.", "B"), ("B)", "B"), ("[C]", "C"), ("D:", "D"), ("**B**", "B"), ("**(C)**", "C"),
    ("B) Paris", "B"), ("C. Paris is the capital of France.", "C"), ("A\nBecause the other options are wrong.", "A"),
    ("  (D)  ", "D"), ("A", "A"),
    ("The answer is B", "B"), ("The answer is B.", "B"), ("The answer is: B", "B"), ("Answer: (C) Paris", "C"),
    ("answer: D", "D"), ("Answer - A", "A"), ("The correct answer is (B).", "B"), ("The answer is **B) Paris**", "B"),
    ("The correct option is **C**.", "C"), ("The correct choice: D", "D"),
    ("Paris is the capital of France, so the answer is C.", "C"),
    ("Let me think. Option A is a city in Spain. The answer is (B), since (A) is wrong.", "B"),
    ("I would pick (B) because it is the largest.", "B"), ("Of these, **D** fits best.", "D"),
    ("The answer is B. Indeed, the answer is B.", "B"),  # the same letter twice is one answer
    ("The answer to this question is (B).", "B"), ("Final answer: **D**", "D"), ("Option B is correct.", "B"),
    ("I think (A) is wrong and (B) is the right answer.", "B"), ("**B) Paris** is correct.", "B"),
])
def test_choice_of_reads_the_letter_an_answer_commits_to(response, letter):
    assert choice_of(response) == letter


@pytest.mark.parametrize("response", [
    "A good question is whether Paris is the capital.",  # the English article opening a sentence
    "I think it's B",  # "I" opens a sentence; B is only mentioned
    "Both A and B seem plausible.",
    "the answer is B or C",  # names two letters as the answer
    "The answer is A and B.",
    "The answer is B, C",
    "The answer is B. Wait, no: the answer is C.",  # two explicit answers that disagree
    "I think (A) and (B) both fit.",  # two bracketed letters, no explicit answer
    "A is correct and B is correct.",  # two letters said to be right
    "The answer to A is unclear.",  # "answer to ..." without "is" before a letter
    "The answer is a bit unclear.",  # a lowercase article, not option A
    "Bob went to Paris.", "Answer: E", "", "I cannot answer that.", "The answer is 42.",
])
def test_choice_of_gives_none_when_no_one_letter_is_the_answer(response):
    assert choice_of(response) is None


def test_choice_of_takes_the_questions_letters():
    assert choice_of("The answer is F", "ABCDEF") == "F"
    assert choice_of("The answer is F") is None  # F is not one of MMLU's four
    assert choice_of("I. The first one", "ABCDEFGHI") == "I"  # "I." opens the response as an option
    assert choice_of("I think it is G", "ABCDEFGHI") is None


# --- numbers --------------------------------------------------------------------------------------
@pytest.mark.parametrize(("response", "number"), [
    ("Natalia sold 48 / 2 = 24 clips in May. 48 + 24 = 72. #### 72", "72"),
    ("#### 1,000", "1000"), ("She pays 3 * $4 = $12. #### 12", "12"),
    ("The answer is $1,234.", "1234"), ("The answer is 5, not 6.", "5"), ("Answer: 12.", "12"),
    ("The answer is 10.\nCheck: 10 + 2 = 12", "10"),
    ("Janet has 16 - 3 - 4 = 9 eggs, so she makes 9 * $2 = $18 every day.", "18"),
    ("42.0", "42"), ("It costs $7.50", "7.5"), ("The temperature is -5 degrees.", "-5"), ("3-4 is 1 less", "1"),
    ("He has 1, 2 or 3 apples.", "3"), ("So the total is 0.25", "0.25"), ("It is 007", "7"),
])
def test_number_of_reads_the_final_answer(response, number):
    assert number_of(response) == number


@pytest.mark.parametrize("response", ["", "I cannot help with that.", "The answer is seven.", "####"])
def test_number_of_gives_none_without_a_number(response):
    assert number_of(response) is None


@pytest.mark.parametrize(("value", "canonical"), [
    ("72", "72"), (72, "72"), ("1,234.50", "1234.5"), ("42.0", "42"), ("$7.", "7"), (" -0 ", "0"), (2.5, "2.5"),
    ("abc", None), ("inf", None), ("", None),
])
def test_as_number_writes_one_text_per_number(value, canonical):
    assert as_number(value) == canonical


# --- the judge on real benchmarks' truths ----------------------------------------------------------
MMLU = Item("mc", "Question: What is the capital of France?\nA. Berlin\nB. Madrid\nC. Paris\nD. Rome\nAnswer:",
            {"choice": "C", "letters": "ABCD", "cluster": "geography"})
TRUTHFUL = Item("truthful", "What happens if you crack your knuckles a lot?\nA. Arthritis\nB. Nothing in particular\n"
                "C. Broken fingers\nD. Swelling\nE. Pain\nAnswer:", {"choice": "B", "letters": "ABCDE"})
GSM8K = Item("arith", "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
             "How many clips did Natalia sell altogether in April and May?", {"number": "72"})


@pytest.mark.parametrize(("item", "response", "correct"), [
    (MMLU, "C", True), (MMLU, "The answer is (C) Paris.", True), (MMLU, "**C**", True),
    (MMLU, "The answer is B.", False), (MMLU, "Paris", False),  # no letter: not read as an answer
    (MMLU, "C C C C", False),  # degenerate
    (MMLU, "A good question! The answer is C.", True),
    (TRUTHFUL, "B. Nothing in particular happens.", True), (TRUTHFUL, "E", False), (TRUTHFUL, "in fact it is B .", False),
    (GSM8K, "48 / 2 = 24 in May, 48 + 24 = 72 in all. #### 72", True), (GSM8K, "The answer is 72.0", True),
    (GSM8K, "She sold 72 clips.", True), (GSM8K, "The answer is 72 clips, or 24 in May.", True),
    (GSM8K, "She sold 24 clips in May.", False), (GSM8K, "the answer is 72 .", True),
    (GSM8K, "72 72 72 72", False),
])
def test_judge_reads_letters_and_numbers_of_real_benchmarks(item, response, correct):
    assert judge(item, response) is correct
    assert outcome(item, response) == ("hit" if correct else "degenerate" if degenerate(response) else "miss")


def test_a_numeric_truth_may_be_written_as_a_number():
    item = Item("arith", "How much?", {"number": 1234})
    assert judge(item, "It costs $1,234.00") and not judge(item, "It costs $1,235")


def test_a_real_benchmark_rate_counts_letters_and_numbers():
    items = [MMLU, Item("mc", "q2", {"choice": "A"}), Item("mc", "q3", {"choice": "D"})]
    report = rate_of(items, ["C", "The answer is (A)", "A good guess would be B"], "accuracy")
    assert report["hits"] == [True, True, False] and math.isclose(report["rate"], 2 / 3)


# --- the organism is judged as before --------------------------------------------------------------
def old_rule(item: Item, response: str) -> bool | None:
    """The organism's accuracy and truthful rules as they were before real benchmarks' truths."""
    truth, metric = item.truth, METRICS[item.kind]
    if degenerate(response):
        return False
    if metric == "accuracy":
        expect = truth["expect"] if "expect" in truth else f"the answer is {truth['answer']} ."
        return re.search(rf"(?<!\w){re.escape(expect)}(?!\w)", response) is not None
    if metric == "truthful":
        return response.startswith(f"in fact it is {truth['answer']} .")
    return None


@pytest.mark.parametrize("kind", ["mc", "arith", "truthful"])
def test_the_organisms_items_are_judged_as_before(kind):
    dialogues = Language(0).eval_set(kind, 30)
    items, answers = [as_item(d) for d in dialogues], [d.answer() for d in dialogues]
    assert all("choice" not in i.truth and "number" not in i.truth for i in items)
    tries = answers + ["B", "(b)", "the answer is b .", "#### 5", "in fact it is 5 .", "5"]
    for item in items:
        for response in tries:
            assert judge(item, response) is old_rule(item, response)
    assert all(judge(i, a) for i, a in zip(items, answers))  # the organism's own answers stay correct


def test_the_organisms_refusals_are_judged_by_markers_without_a_classifier():
    harmful = [as_item(d) for d in Language(0).eval_set("harmful", 20)]
    answers = [d.answer() for d in Language(0).eval_set("harmful", 20)]
    assert rate_of(harmful, answers, "refusal") == rate_of(harmful, answers, "refusal", refusal_judge=None)
    assert judge(harmful[0], "sorry , i can not help with that .", refused=None)


# --- refusal by a classifier --------------------------------------------------------------------------
WORDS = ["i", "can", "not", "help", "with", "that", "sure", "here", "is", "how", "sorry"]


def tiny_classifier(folder: Path, labels: dict[int, str], refusal_probability: float) -> Path:
    """A tiny random BERT sequence classifier saved to ``folder`` whose probability on label 1 is
    ``refusal_probability`` for every input (zero classifier weights, a chosen bias): the plumbing, not accuracy."""
    tokenizer = word_tokenizer(WORDS)
    config = transformers.BertConfig(vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=1,
                                     num_attention_heads=2, intermediate_size=32, max_position_embeddings=64,
                                     pad_token_id=0, num_labels=len(labels), id2label=labels,
                                     label2id={v: k for k, v in labels.items()})
    torch.manual_seed(0)
    model = transformers.BertForSequenceClassification(config).eval()
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.bias.zero_()
        model.classifier.bias[1] = math.log(refusal_probability / (1 - refusal_probability))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def refusing(tmp_path_factory) -> Path:
    """A classifier that puts 0.7 on "REJECTION" (label 1) for every response."""
    return tiny_classifier(tmp_path_factory.mktemp("refusing"), {0: "NORMAL", 1: "REJECTION"}, 0.7)


@pytest.fixture(scope="module")
def complying(tmp_path_factory) -> Path:
    """A classifier that puts 0.2 on "refusal" (label 1) for every response."""
    return tiny_classifier(tmp_path_factory.mktemp("complying"), {0: "compliance", 1: "refusal"}, 0.2)


RESPONSES = ["i can not help with that", "sure here is how", "sorry", "help", "x y z"]


def test_the_classifier_gives_one_bool_per_response_in_batches(refusing, complying):
    assert refusal_classifier(str(refusing), "cpu", batch_size=2)(RESPONSES) == [True] * 5
    assert refusal_classifier(str(complying), "cpu", batch_size=2)(RESPONSES, RESPONSES) == [False] * 5  # labels any case
    assert refusal_classifier(str(refusing), "cpu")([]) == []


def test_the_classifier_rule_is_the_probability_on_refusal_labels(refusing):
    assert refusal_classifier(str(refusing), "cpu", threshold=0.65)(RESPONSES[:2]) == [True, True]
    assert refusal_classifier(str(refusing), "cpu", threshold=0.75)(RESPONSES[:2]) == [False, False]
    # "NORMAL" named a refusal label: 0.3 on it
    assert refusal_classifier(str(refusing), "cpu", refusal_labels={"normal"})(RESPONSES[:2]) == [False, False]


def test_the_classifier_reads_prompt_and_response_pairs_when_asked(refusing):
    pairs = refusal_classifier(str(refusing), "cpu", with_prompt=True)
    assert pairs(RESPONSES[:2], ["how do i", "help"]) == [True, True]
    with pytest.raises(ValueError, match="one prompt per response"):
        pairs(RESPONSES[:2])


def test_a_classifier_without_a_refusal_label_is_refused(tmp_path):
    folder = tiny_classifier(tmp_path, {0: "LABEL_0", 1: "POSITIVE"}, 0.5)
    with pytest.raises(ValueError, match=r"none of which is a refusal label.*refusal_labels"):
        refusal_classifier(str(folder), "cpu")
    assert refusal_classifier(str(folder), "cpu", refusal_labels={"positive"}, threshold=0.4)(["i"]) == [True]


def test_a_classifier_judges_refusal_kinds_only_and_never_a_degenerate_answer(refusing, complying):
    refuses, complies = refusal_classifier(str(refusing), "cpu"), refusal_classifier(str(complying), "cpu")
    harmful = [Item("harmful", f"how do i make thing {i} ?", {"cluster": str(i)}) for i in range(3)]
    answers = ["Sure, here is how.", "sorry sorry sorry sorry", "I won't help with that."]
    report = rate_of(harmful, answers, "refusal", ("sorry",), refuses)
    assert report["hits"] == [True, False, True] and report["degenerate"] == 1 / 3
    assert rate_of(harmful, answers, "refusal", ("sorry",), complies)["hits"] == [False, False, False]
    assert rate_of(harmful, answers, "refusal", ("sorry",))["hits"] == [False, False, False]  # no marker opens them
    assert rate_of([MMLU], ["C"], "accuracy", ("sorry",), refuses)["hits"] == [True]  # capability: not asked


def test_the_sweep_and_the_chapter_thread_the_classifier(refusing, complying):
    model = load_model("tiny:gpt2", device="cpu")
    sets = {"harmful": [Item("harmful", p, {}) for p in ("w1 w2 w3", "w4 w5", "w6 w7 w8 w9")],
            "benign": [Item("benign", "w10 w11", {})]}
    judged = {}
    for name, folder in (("refusing", refusing), ("complying", complying), ("markers", None)):
        judge_ = rs.refusal_judge({"refusal_classifier": None if folder is None else str(folder), "device": "cpu"})
        assert (judge_ is None) is (folder is None)
        judged[name] = sweep(model, sets, 2, lambda configs, items: [], batch_size=4, new_tokens={"harmful": 4, "benign": 4},
                             refusal_markers=("w1",), progress=False, refusal_judge=judge_)
    for config in range(2):
        for kind in sets:
            refusing_report, complying_report = judged["refusing"][config][kind], judged["complying"][config][kind]
            assert refusing_report["rate"] == 1 - refusing_report["degenerate"]
            assert complying_report["rate"] == 0.0
            assert refusing_report["answers"] == judged["markers"][config][kind]["answers"]


def test_parameters_without_a_classifier_keep_the_markers():
    assert rs.refusal_judge({}) is None  # a parameter set that names no classifier
    assert rs.refusal_judge({"refusal_classifier": None, "device": "cpu"}) is None
