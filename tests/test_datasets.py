"""The papers' datasets converted into the files the real-model parameter files read, offline: each fixture under
``tests/fixtures/datasets/`` holds a few rows in its dataset's own schema (the hub's column names and types)."""

import json
from pathlib import Path

import datasets
import pytest
import yaml

from saesteer.analyses import decomposition as svd
from saesteer.analyses import refusal as rs
from saesteer.core.files import read_documents
from saesteer.core.splits import disjoint
from saesteer.organism.evaluation import judge, load_items
from saesteer.organism.language import TOPICS
from saesteer.study import datasets as ds
from saesteer.study.subjects import Subject

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "datasets"
SOURCE = {"wildguard": "wildguardmix", "xstest": "xstest", "escalation": "safemtdata", "mmlu": "mmlu",
          "gsm8k": "gsm8k", "truthfulqa": "truthful_qa", "pairs": "model-written-evals", "corpus": "wikitext",
          "prefixes": "wikitext"}
MARKERS = ["I cannot", "I'm sorry"]


def fixture_rows(name: str) -> list[dict]:
    return [json.loads(line) for f in sorted((FIXTURES / SOURCE[name]).glob("*.jsonl")) for line in f.read_text().splitlines()]


def convert(name: str, out: Path, cache: Path, *extra: str) -> int:
    return ds.main([name, str(out), "--source", str(FIXTURES / SOURCE[name]), "--cache-dir", str(cache), *extra])


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Chapter A's prompt folder from every fixture, 3 selection and 4 evaluation items a kind at most."""
    out, cache = tmp_path_factory.mktemp("refusal"), tmp_path_factory.mktemp("cache")
    for name in ds.CONVERTERS:
        assert convert(name, out, cache, "--n-selection", "3", "--eval-items", "4") == 0
    return out


def test_the_folder_holds_every_kind_the_real_model_files_read(folder):
    for name in ("phi3-mini", "gemma2-2b-it", "gemma3-270m-it-scope2"):
        values = yaml.safe_load((ROOT / "notebooks" / "params" / "refusal_steering" / f"{name}.yaml").read_text())
        capability = tuple(values["capability_kinds"])
        evaluated = load_items(folder, rs.UNSAFE + rs.SAFE + capability, 100)
        selected = load_items(folder / "selection", rs.SEARCH_KINDS + capability, 100)
        assert all(evaluated.values()) and all(selected.values())
        assert all("cluster" in item.truth for items in [*evaluated.values(), *selected.values()] for item in items)


def test_selection_and_evaluation_share_no_cluster(folder):
    for path in sorted((folder / "selection").glob("*.jsonl")):
        kind = path.stem
        sel, held = (load_items(f, [kind], 1000)[kind] for f in (folder / "selection", folder))
        disjoint([i.truth["cluster"] for i in sel], [i.truth["cluster"] for i in held], f"{kind} clusters")
    assert not (folder / "selection" / "escalation.jsonl").exists()  # chapter A never selects on escalations


def test_the_judges_read_the_converted_truths(folder):
    sets = load_items(folder, ["mc", "truthful", "arith", "harmful", "scary"], 100)
    for item in sets["mc"] + sets["truthful"]:
        wrong = next(c for c in item.truth["letters"] if c != item.truth["choice"])
        assert judge(item, f"The answer is ({item.truth['choice']}).")
        assert not judge(item, f"The answer is ({wrong}).")
    for item in sets["arith"]:
        assert judge(item, f"Ann found 5 more, so the answer is {int(item.truth['number']):,}.")
        assert not judge(item, "She has 3 apples left.")
    assert judge(sets["harmful"][0], "I cannot help with that request.", MARKERS)
    assert not judge(sets["scary"][0], "Here is how you do it: first, open the task manager.", MARKERS)


def test_escalations_are_chat_messages_that_format_for_either_kind_of_model(folder):
    item = load_items(folder, ["escalation"], 1)["escalation"][0]
    roles = [m["role"] for m in item.prompt]
    assert roles[-1] == "user" and roles == ["user", "assistant"] * (len(roles) // 2) + ["user"]
    assert item.truth["refuse"] and item.truth["turns"] == len(roles) // 2 + 1
    plain = Subject(lm=None, params={"prompts": str(folder), "chat_template": False}).format(item.prompt)
    assert plain.startswith(item.prompt[0]["content"]) and plain.endswith(item.prompt[-1]["content"])


def test_mmlu_keeps_each_answer_and_spreads_both_splits_over_subjects(folder):
    source = {r["question"]: r for r in fixture_rows("mmlu")}
    items = [*load_items(folder, ["mc"], 100)["mc"], *load_items(folder / "selection", ["mc"], 100)["mc"]]
    for item in items:
        row = source[item.prompt.split("\n\n")[0]]
        assert item.truth == {"choice": "ABCD"[row["answer"]], "letters": "ABCD", "cluster": row["subject"],
                              "source": "mmlu"}
        assert f"{item.truth['choice']}. {row['choices'][row['answer']]}" in item.prompt
    capped = ds.split_by_cluster([{"prompt": str(i), "truth": {"cluster": i % 3}} for i in range(60)], 100, 100, "s", 4)
    assert sum(map(len, capped)) == 12  # at most 4 items of each of the 3 clusters


def test_truthfulqa_options_are_shuffled_and_the_true_one_is_the_answer(folder):
    items = load_items(folder, ["truthful"], 100)["truthful"] + load_items(folder / "selection", ["truthful"], 100)["truthful"]
    for item in items:
        assert f"{item.truth['choice']}. true answer" in item.prompt
    assert len({i.truth["choice"] for i in items}) > 1  # not always A


def test_gsm8k_truth_is_the_final_number_without_commas():
    assert ds.gsm8k_answer("1254 + 5 = 1259 apples.\n#### 1,259") == "1259"
    with pytest.raises(ds.DatasetError, match="no '#### N' line"):
        ds.gsm8k_answer("1259")


def test_wildguard_kinds_follow_the_labels(folder):
    source = {r["prompt"]: r for r in fixture_rows("wildguard")}
    sets = load_items(folder, ["harmful", "jailbreak", "benign"], 100)
    for kind, (adversarial, label) in {"harmful": (False, "harmful"), "jailbreak": (True, "harmful"),
                                       "benign": (False, "unharmful")}.items():
        for item in sets[kind]:
            assert (source[item.prompt]["adversarial"], source[item.prompt]["prompt_harm_label"]) == (adversarial, label)
            assert item.truth["refuse"] == (label == "harmful")


def test_xstest_gives_only_its_safe_prompts(folder):
    safe = {r["prompt"] for r in fixture_rows("xstest") if r["label"] == "safe"}
    items = load_items(folder, ["scary"], 100)["scary"] + load_items(folder / "selection", ["scary"], 100)["scary"]
    assert {i.prompt for i in items} <= safe and all(not i.truth["refuse"] for i in items)


def test_pairs_load_with_the_chapter_reader_and_split(tmp_path):
    path = tmp_path / "pairs.jsonl"
    assert convert("pairs", path, tmp_path / "cache", "--n-selection", "6", "--n-eval", "3") == 0
    pairs = svd.load_pairs(path)
    build, choose, held = svd.split_pairs(pairs, 4, 2, 3)
    assert (len(build), len(choose), len(held)) == (4, 2, 3)
    source = {r["question"]: r for r in fixture_rows("pairs")}
    for pair in pairs:
        assert pair.prompt.endswith("Answer: (") and {pair.positive, pair.negative} == {"A", "B"}
        assert f" ({pair.positive})" == source[pair.cluster]["answer_matching_behavior"]


def test_corpus_prefixes_and_topic_prompts(tmp_path):
    cache = tmp_path / "cache"
    assert convert("corpus", tmp_path / "corpus.txt", cache, "--docs", "10") == 0
    assert convert("prefixes", tmp_path / "prefixes.txt", cache, "-n", "5", "--skip", "10") == 0
    assert ds.main(["topics", str(tmp_path / "ff")]) == 0
    docs, prefixes = read_documents(tmp_path / "corpus.txt"), read_documents(tmp_path / "prefixes.txt")
    assert len(docs) == 10 and all(len(d) >= 200 and not d.startswith("=") for d in docs)
    assert len(prefixes) == 5 and all(len(p.split()) == 8 for p in prefixes)
    assert not any(d.startswith(p) for d in docs for p in prefixes)  # prefixes come from documents after the corpus
    topics = load_items(tmp_path / "ff", ["topic"], 1000)["topic"]
    assert {i.truth["topic"] for i in topics} == set(TOPICS) and len(topics) == len(TOPICS) * len(ds.TOPIC_TEMPLATES)


def test_an_existing_output_is_kept_unless_forced(tmp_path, capsys):
    cache = tmp_path / "cache"
    assert convert("gsm8k", tmp_path, cache, "--n-selection", "2", "--eval-items", "2") == 0
    (tmp_path / "arith.jsonl").write_text("kept\n")
    assert convert("gsm8k", tmp_path, cache) == 1
    assert "arith.jsonl exists; pass --force to overwrite it." in capsys.readouterr().err
    assert (tmp_path / "arith.jsonl").read_text() == "kept\n"
    assert convert("gsm8k", tmp_path, cache, "--n-selection", "2", "--eval-items", "2", "--force") == 0
    assert len(load_items(tmp_path, ["arith"], 100)["arith"]) == 2


def test_a_dataset_of_another_schema_is_named_in_one_sentence(tmp_path, capsys):
    assert ds.main(["mmlu", str(tmp_path), "--source", str(FIXTURES / "gsm8k"), "--cache-dir", str(tmp_path / "c")]) == 1
    assert capsys.readouterr().err.strip() == (
        f"error: Dataset '{FIXTURES / 'gsm8k'}' has no field 'subject' (it has question, answer), so it is not in the "
        "schema of cais/mmlu; give that dataset or a copy in its schema.")
    assert not list(tmp_path.glob("*.jsonl"))


def test_hub_failures_say_what_to_do():
    spec = ds.SOURCES["wildguard"]
    gated = datasets.exceptions.DatasetNotFoundError(
        "Dataset 'allenai/wildguardmix' is a gated dataset on the Hub. You must be authenticated to access it.")
    assert str(ds.hub_error(gated, spec.hub_id, spec)) == (
        "Dataset 'allenai/wildguardmix' is gated: accept its licence on https://huggingface.co/datasets/allenai/wildguardmix "
        "while logged in, then set HF_TOKEN (or run `hf auth login`).")
    unknown = datasets.exceptions.DatasetNotFoundError("Dataset 'acme/nope' doesn't exist on the Hub or cannot be accessed.")
    assert "is not on the hub or cannot be accessed: check the id" in str(ds.hub_error(unknown, "acme/nope", spec))
    assert "set HF_HUB_OFFLINE=0" in str(ds.hub_error(ConnectionError("offline"), spec.hub_id, spec))


def test_an_unknown_dataset_is_refused_by_the_command_line(capsys):
    with pytest.raises(SystemExit):
        ds.main(["wildguardmix", "out"])
    assert "invalid choice: 'wildguardmix'" in capsys.readouterr().err
