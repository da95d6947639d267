"""The papers' datasets, converted into the files the real-model parameter files read.

``python -m saesteer.study.datasets <dataset> OUT`` reads one dataset through ``datasets.load_dataset`` (by its
hub id, or with ``--source`` from a local folder or file in the dataset's own schema) and writes:

- chapter A's prompt folder (``<kind>.jsonl`` + ``selection/<kind>.jsonl``, the format of
  ``python -m saesteer.study.subjects --export-prompts DIR``): ``wildguard`` (harmful, jailbreak, benign),
  ``xstest`` (scary), ``escalation`` (multi-turn attacks, evaluation only), ``mmlu`` (mc), ``gsm8k`` (arith),
  ``truthfulqa`` (truthful). Every item's ``truth`` holds a ``cluster``; the selection and evaluation splits
  share no cluster and are drawn by a stable hash of the seed, so a rerun writes the same files;
- chapter B's pair file (``pairs``): Anthropic's model-written A/B questions as ``{"prompt", "positive",
  "negative", "split", "cluster"}`` lines, the prompt ending in " (" and the answers "A" / "B";
- chapters C and D's text files: ``corpus`` (one document a line, WikiText-103 by default), ``prefixes``
  (chapter D's GenSuccess prefixes: the first words of documents not in the corpus file) and ``topics``
  (chapter C's ``topic.jsonl``: requests for writing about the organism's eight topics, whose vocabularies
  the chapter's topic share counts; no dataset needed).

An existing output is never overwritten without ``--force``.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from saesteer.core.progress import bar
from saesteer.core.splits import stable_hash
from saesteer.organism.language import TOPICS

HF_TOKEN_HINT = "accept its licence on {page} while logged in, then set HF_TOKEN (or run `hf auth login`)"


class DatasetError(RuntimeError):
    """A dataset that cannot be read or converted, in one sentence that says what to do."""


@dataclass(frozen=True)
class Source:
    """Where a dataset lives on the hub and the fields its conversion reads."""

    hub_id: str
    config: str | None
    split: str
    fields: tuple[str, ...]
    data_files: str | None = None
    gated: bool = False

    @property
    def page(self) -> str:
        return f"https://huggingface.co/datasets/{self.hub_id}"


SOURCES = {  # dataset -> where it lives and the fields read (its own schema)
    "wildguard": Source("allenai/wildguardmix", "wildguardtest", "test", ("prompt", "adversarial", "prompt_harm_label"),
                        gated=True),
    "xstest": Source("walledai/XSTest", None, "test", ("prompt", "type", "label", "focus")),
    "escalation": Source("SafeMTData/SafeMTData", "Attack_600", "Attack_600",
                         ("query_id", "category", "plain_query", "multi_turn_queries")),
    "mmlu": Source("cais/mmlu", "all", "test", ("question", "subject", "choices", "answer")),
    "gsm8k": Source("openai/gsm8k", "main", "test", ("question", "answer")),
    "truthfulqa": Source("truthfulqa/truthful_qa", "multiple_choice", "validation", ("question", "mc1_targets")),
    "pairs": Source("Anthropic/model-written-evals", None, "train",
                    ("question", "answer_matching_behavior", "answer_not_matching_behavior"),
                    data_files="advanced-ai-risk/human_generated_evals/corrigible-neutral-HHH.jsonl"),
    "corpus": Source("Salesforce/wikitext", "wikitext-103-raw-v1", "train", ("text",)),
}
SOURCES["prefixes"] = SOURCES["corpus"]

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
MC_INSTRUCTION = "Answer with the letter of the correct option."
ARITH_INSTRUCTION = "Solve the problem and give the final answer as a number."
ACKNOWLEDGEMENT = "Sure, I can help with that."  # the assistant's turns between an escalation's user turns
TOPIC_TEMPLATES = (  # chapter C's requests for writing about a topic (the organism's topics, in English)
    "Tell me about {t}.", "Write a few sentences about {t}.", "Here is a short story about {t}:",
    "Describe {t} in your own words.", "My favourite thing about {t} is", "A short poem about {t}:",
    "Let me tell you about {t}.", "Some facts about {t}:", "Write a paragraph about {t}.",
    "What I remember most about {t} is", "Explain to a child what {t} is like.", "A diary entry about {t}:",
)
TOPIC_NOUNS = {"sea": "the sea", "forest": "the forest", "space": "outer space", "kitchen": "the kitchen",
               "music": "music", "sport": "sport", "weather": "the weather", "city": "the city"}


# --- reading ---------------------------------------------------------------------------------------
def load_rows(name: str, source: str | None = None, config: str | None = None, split: str | None = None,
              cache_dir: str | None = None, streaming: bool = False) -> Iterable[dict]:
    """The rows of dataset ``name`` (a key of ``SOURCES``): from the hub by id (``source`` None or a hub id) or
    from a local folder or file in the dataset's own schema; stops with one sentence when it is unknown,
    gated without a token, unreachable or of another schema."""
    import datasets

    spec = SOURCES[name]
    where = source or spec.hub_id
    config = config if config is not None else spec.config
    split = split or spec.split
    local = Path(where).exists()
    try:
        if local and Path(where).is_file():
            builder = "parquet" if Path(where).suffix == ".parquet" else "json"
            found = datasets.load_dataset(builder, data_files=str(where), cache_dir=cache_dir, streaming=streaming)
        elif local:
            found = datasets.load_dataset(str(where), cache_dir=cache_dir, streaming=streaming)
        else:
            args = (where, config) if config and not spec.data_files else (where,)
            extra = {"data_files": spec.data_files} if spec.data_files and where == spec.hub_id else {}
            try:
                found = datasets.load_dataset(*args, split=split, cache_dir=cache_dir, streaming=streaming, **extra)
            except ValueError as err:  # an unknown split: load them all, then take the only one or name them
                if "split" not in str(err).lower():
                    raise
                found = datasets.load_dataset(*args, cache_dir=cache_dir, streaming=streaming, **extra)
    except (datasets.exceptions.DatasetNotFoundError, ConnectionError, OSError) as err:
        raise hub_error(err, where, spec) from None
    if isinstance(found, (datasets.DatasetDict, datasets.IterableDatasetDict)):
        if split in found:
            found = found[split]
        elif len(found) == 1:
            found = next(iter(found.values()))
        else:
            raise DatasetError(f"Dataset {where!r} has no split {split!r}; it has {', '.join(found)} (pass --split).")
    columns = found.column_names or list(next(iter(found)))
    missing = [f for f in spec.fields if f not in columns]
    if missing:
        raise DatasetError(f"Dataset {where!r} has no field {missing[0]!r} (it has {', '.join(columns)}), so it is "
                           f"not in the schema of {spec.hub_id}; give that dataset or a copy in its schema.")
    return found


def hub_error(err: Exception, where: str, spec: Source) -> DatasetError:
    """The one sentence for a dataset the hub would not give: gated without a token, unknown, or unreachable."""
    import datasets

    if isinstance(err, datasets.exceptions.DatasetNotFoundError):
        if "gated" in str(err).lower():
            return DatasetError(f"Dataset {where!r} is gated: {HF_TOKEN_HINT.format(page=spec.page)}.")
        return DatasetError(f"Dataset {where!r} is not on the hub or cannot be accessed: check the id (the default is "
                            f"{spec.hub_id!r}), and for a gated one set HF_TOKEN.")
    return DatasetError(f"Dataset {where!r} cannot be read ({type(err).__name__}): with no local copy, set "
                        f"HF_HUB_OFFLINE=0 and check the network; a gated one also needs HF_TOKEN.")


# --- splits ----------------------------------------------------------------------------------------
def split_by_cluster(items: list[dict], n_selection: int, n_eval: int, salt: str,
                     max_per_cluster: int | None = None) -> tuple[list[dict], list[dict]]:
    """(selection, evaluation) items sharing no ``truth["cluster"]``: clusters in the order of a stable hash of
    ``salt``, whole clusters to selection until it holds its share, then to evaluation. With fewer items than
    asked for, both shrink in proportion. Each part comes shuffled (seeded by ``salt``), so the first items of a
    file spread over clusters."""
    clusters: dict[str, list[dict]] = {}
    for item in items:
        clusters.setdefault(str(item["truth"]["cluster"]), []).append(item)
    if max_per_cluster:
        clusters = {c: sorted(group, key=lambda i: stable_hash(salt, json.dumps(i)))[:max_per_cluster]
                    for c, group in clusters.items()}
    total = sum(map(len, clusters.values()))
    want_sel = min(n_selection, total * n_selection // max(n_selection + n_eval, 1))
    selection: list[dict] = []
    evaluation: list[dict] = []
    for cluster in sorted(clusters, key=lambda c: stable_hash(salt, c)):
        target = selection if len(selection) < want_sel else evaluation
        target.extend(clusters[cluster])
    selection = selection[:n_selection]
    rng = random.Random(stable_hash(salt, "order"))
    rng.shuffle(selection)
    rng.shuffle(evaluation)
    return selection, evaluation[:n_eval]


# --- writing ---------------------------------------------------------------------------------------
def check_free(paths: Iterable[Path], force: bool) -> None:
    """Stop before writing anything when an output exists and ``force`` is not given."""
    for path in paths:
        if path.exists() and not force:
            raise DatasetError(f"{path} exists; pass --force to overwrite it.")


def write_lines(path: Path, lines: Iterable[str]) -> Path:
    """Write ``lines`` (one a line) to ``path`` through a temporary file, so an interrupted write leaves none."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    partial.replace(path)
    return path


def write_kind(folder: Path, kind: str, selection: list[dict], evaluation: list[dict]) -> list[Path]:
    """``<folder>/<kind>.jsonl`` (evaluation) and ``<folder>/selection/<kind>.jsonl`` (when there are any)."""
    written = [write_lines(folder / f"{kind}.jsonl", (json.dumps(i, ensure_ascii=False) for i in evaluation))]
    if selection:
        written.append(write_lines(folder / "selection" / f"{kind}.jsonl",
                                   (json.dumps(i, ensure_ascii=False) for i in selection)))
    return written


def kind_paths(folder: Path, kinds: Iterable[str], selection: bool = True) -> list[Path]:
    return [p for k in kinds for p in [folder / f"{k}.jsonl", *([folder / "selection" / f"{k}.jsonl"] if selection else [])]]


# --- chapter A's prompt kinds ------------------------------------------------------------------------
def item(prompt, **truth) -> dict:
    return {"prompt": prompt, "truth": truth}


def wildguard_items(rows: Iterable[dict]) -> dict[str, list[dict]]:
    """WildGuardMix -> harmful (vanilla harmful), jailbreak (adversarial harmful), benign (vanilla unharmful);
    each prompt once, its own cluster; rows without a prompt label are left out."""
    kinds: dict[str, dict[str, dict]] = {"harmful": {}, "jailbreak": {}, "benign": {}}
    for row in rows:
        label, prompt = row["prompt_harm_label"], (row["prompt"] or "").strip()
        if not prompt or label not in ("harmful", "unharmful"):
            continue
        adversarial = bool(row["adversarial"])
        kind = ("jailbreak" if adversarial else "harmful") if label == "harmful" else (None if adversarial else "benign")
        if kind:
            kinds[kind].setdefault(prompt, item(prompt, refuse=label == "harmful", cluster=prompt,
                                                source="wildguardmix"))
    return {k: list(v.values()) for k, v in kinds.items()}


def xstest_items(rows: Iterable[dict]) -> dict[str, list[dict]]:
    """XSTest's safe prompts (that look unsafe: over-refusal) -> scary, clustered by their focus word."""
    return {"scary": [item(r["prompt"], refuse=False, type=r["type"], cluster=r["focus"] or r["prompt"], source="xstest")
                      for r in rows if str(r["label"]).lower() == "safe"]}


def escalation_items(rows: Iterable[dict]) -> dict[str, list[dict]]:
    """SafeMTData's multi-turn attacks (Attack_600: the user turns that lead up to a harmful request) -> escalation,
    chat messages with ``ACKNOWLEDGEMENT`` as the assistant's turns in between (the dataset holds the user's turns
    only), clustered by the harmful query they decompose."""
    out = []
    for r in rows:
        turns = [t for t in r["multi_turn_queries"] if t and t.strip()]
        if not turns:
            continue
        messages = []
        for turn in turns[:-1]:
            messages += [{"role": "user", "content": turn}, {"role": "assistant", "content": ACKNOWLEDGEMENT}]
        messages.append({"role": "user", "content": turns[-1]})
        out.append(item(messages, refuse=True, category=r["category"], turns=len(turns), cluster=str(r["query_id"]),
                        source="safemtdata"))
    return {"escalation": out}


def lettered(question: str, options: list[str], instruction: str = MC_INSTRUCTION) -> str:
    """A multiple-choice prompt: the question, the options as "A. ...", and the instruction."""
    lines = "\n".join(f"{LETTERS[i]}. {o}" for i, o in enumerate(options))
    return f"{question.strip()}\n\n{lines}\n\n{instruction}"


def mmlu_items(rows: Iterable[dict]) -> dict[str, list[dict]]:
    """MMLU (question, subject, choices, answer index) -> mc, clustered by subject."""
    out = []
    for r in rows:
        letters = LETTERS[: len(r["choices"])]
        out.append(item(lettered(r["question"], list(r["choices"])), choice=letters[int(r["answer"])], letters=letters,
                        cluster=r["subject"], source="mmlu"))
    return {"mc": out}


def gsm8k_answer(answer: str) -> str:
    """The final number of a GSM8K solution (after "####"), without thousands commas."""
    if "####" not in answer:
        raise DatasetError(f"A GSM8K answer has no '#### N' line, so the dataset is not in GSM8K's schema: {answer[:60]!r}.")
    return answer.rsplit("####", 1)[1].strip().replace(",", "")


def gsm8k_items(rows: Iterable[dict]) -> dict[str, list[dict]]:
    """GSM8K (question, answer ending in "#### N") -> arith with truth ``number``, each question its own cluster."""
    return {"arith": [item(f"{r['question'].strip()}\n\n{ARITH_INSTRUCTION}", number=gsm8k_answer(r["answer"]),
                           cluster=r["question"], source="gsm8k") for r in rows]}


def truthfulqa_items(rows: Iterable[dict], seed: int = 0) -> dict[str, list[dict]]:
    """TruthfulQA multiple choice (mc1_targets: the one true option first) -> truthful, the options shuffled by a
    stable hash of the seed and the question (so the answer is not always A), each question its own cluster."""
    out = []
    for r in rows:
        targets = r["mc1_targets"]
        options = list(zip(targets["choices"], targets["labels"]))
        random.Random(stable_hash(seed, r["question"])).shuffle(options)
        letters = LETTERS[: len(options)]
        correct = [i for i, (_, label) in enumerate(options) if int(label) == 1]
        if len(correct) != 1:
            raise DatasetError(f"A TruthfulQA row has {len(correct)} true mc1 options, not 1: {r['question'][:60]!r}.")
        out.append(item(lettered(r["question"], [o for o, _ in options]), choice=letters[correct[0]], letters=letters,
                        cluster=r["question"], source="truthfulqa"))
    return {"truthful": out}


CONVERTERS = {"wildguard": wildguard_items, "xstest": xstest_items, "escalation": escalation_items,
              "mmlu": mmlu_items, "gsm8k": gsm8k_items, "truthfulqa": truthfulqa_items}
KINDS = {"wildguard": ("harmful", "jailbreak", "benign"), "xstest": ("scary",), "escalation": ("escalation",),
         "mmlu": ("mc",), "gsm8k": ("arith",), "truthfulqa": ("truthful",)}
EVAL_ONLY = {"escalation"}  # kinds chapter A never selects on
MAX_PER_CLUSTER = {"mmlu": 10}  # MMLU's subjects hold up to 1,534 questions: at most 10 each, so both splits span subjects


def write_prompts(name: str, folder: Path, n_selection: int = 250, eval_items: int = 250, seed: int = 0,
                  force: bool = False, **load) -> dict[str, tuple[int, int]]:
    """Convert dataset ``name`` into chapter A's prompt kinds under ``folder``; returns {kind: (selection, eval)}."""
    folder = Path(folder)
    check_free(kind_paths(folder, KINDS[name], name not in EVAL_ONLY), force)
    rows = load_rows(name, **load)
    converted = CONVERTERS[name](bar(rows, f"reading {name}"), seed) if name == "truthfulqa" else CONVERTERS[name](
        bar(rows, f"reading {name}"))
    counts = {}
    for kind, items in converted.items():
        if name in EVAL_ONLY:
            selection, evaluation = [], split_by_cluster(items, 0, eval_items, f"{kind}-{seed}")[1]
        else:
            selection, evaluation = split_by_cluster(items, n_selection, eval_items, f"{kind}-{seed}",
                                                     MAX_PER_CLUSTER.get(name))
        if not evaluation or (name not in EVAL_ONLY and not selection):
            raise DatasetError(f"Dataset {name!r} gave too few {kind} items ({len(items)}) for a selection and an "
                               f"evaluation split.")
        write_kind(folder, kind, selection, evaluation)
        counts[kind] = (len(selection), len(evaluation))
    return counts


# --- chapter B's pairs -------------------------------------------------------------------------------
def answer_letter(answer: str) -> str:
    """" (A)" -> "A": the letter of a model-written-evals answer."""
    letter = answer.strip().strip("()").strip()
    if len(letter) != 1 or not letter.isalpha():
        raise DatasetError(f"An answer {answer!r} is not a lettered option like ' (A)', so the dataset is not in "
                           f"the schema of Anthropic's model-written A/B evals.")
    return letter


def pair_rows(rows: Iterable[dict]) -> list[dict]:
    """A/B questions -> pairs: the question and " (" as the prompt, the letter matching the behaviour as the
    positive answer, the other as the negative, each question its own cluster."""
    pairs = []
    for r in rows:
        question = r["question"].rstrip()
        pairs.append({"prompt": f"{question} (", "positive": answer_letter(r["answer_matching_behavior"]),
                      "negative": answer_letter(r["answer_not_matching_behavior"]), "cluster": question})
    return pairs


def write_pairs(path: Path, n_selection: int = 450, n_eval: int = 100, seed: int = 0, force: bool = False,
                **load) -> tuple[int, int]:
    """Chapter B's pair file from A/B questions (CAA's format); returns (selection, eval) counts."""
    path = Path(path)
    check_free([path], force)
    pairs = pair_rows(bar(load_rows("pairs", **load), "reading pairs"))
    wrapped = [{"prompt": p["prompt"], "truth": p} for p in pairs]
    selection, evaluation = split_by_cluster(wrapped, n_selection, n_eval, f"pairs-{seed}")
    if not selection or not evaluation:
        raise DatasetError(f"The A/B questions gave {len(pairs)} pairs, too few for a selection and an eval split.")
    lines = [json.dumps({**w["truth"], "split": split}, ensure_ascii=False)
             for split, part in (("selection", selection), ("eval", evaluation)) for w in part]
    write_lines(path, lines)
    return len(selection), len(evaluation)


# --- chapters C and D's text -------------------------------------------------------------------------
def documents(rows: Iterable[dict], min_chars: int) -> Iterator[str]:
    """Paragraphs of at least ``min_chars`` characters, on one line each; WikiText's headings (" = Title = ")
    and empty lines are left out."""
    for row in rows:
        text = " ".join((row["text"] or "").split())
        if len(text) >= min_chars and not (text.startswith("=") and text.endswith("=")):
            yield text


def take(docs: Iterator[str], skip: int, n: int, desc: str) -> list[str]:
    out = []
    with bar(None, desc, total=skip + n) as progress:
        for i, doc in enumerate(docs):
            if i >= skip:
                out.append(doc)
            progress.update(1)
            if len(out) == n:
                break
    return out


def write_corpus(path: Path, docs: int = 20000, skip: int = 0, min_chars: int = 200, force: bool = False,
                 **load) -> int:
    """A text file of ``docs`` documents (one a line), after the first ``skip`` documents of the dataset."""
    path = Path(path)
    check_free([path], force)
    rows = load_rows("corpus", streaming=True, **load)
    found = take(documents(rows, min_chars), skip, docs, "reading the corpus")
    if not found:
        raise DatasetError(f"The text dataset has no document of {min_chars} characters or more after {skip:,}.")
    write_lines(path, found)
    return len(found)


def write_prefixes(path: Path, n: int = 50, words: int = 8, skip: int = 20000, min_chars: int = 200,
                   force: bool = False, **load) -> int:
    """Chapter D's GenSuccess prefixes: the first ``words`` words of ``n`` documents after the first ``skip`` (the
    corpus file's), each cut mid-text so the continuation is the model's."""
    path = Path(path)
    check_free([path], force)
    rows = load_rows("prefixes", streaming=True, **load)
    long_enough = (d for d in documents(rows, min_chars) if len(d.split()) > words)
    found = [" ".join(d.split()[:words]) for d in take(long_enough, skip, n, "reading prefixes")]
    if not found:
        raise DatasetError(f"The text dataset has no document of more than {words} words after {skip:,}.")
    write_lines(path, found)
    return len(found)


def write_topics(folder: Path, force: bool = False) -> int:
    """Chapter C's ``topic.jsonl``: each template of ``TOPIC_TEMPLATES`` for each of the organism's topics, with the
    topic as ``truth.topic`` and the template as cluster (prompts of one template are not independent)."""
    path = Path(folder) / "topic.jsonl"
    check_free([path], force)
    rows = [item(template.format(t=TOPIC_NOUNS[topic]), topic=topic, cluster=f"template-{i}")
            for i, template in enumerate(TOPIC_TEMPLATES) for topic in TOPICS]
    write_lines(path, (json.dumps(r) for r in rows))
    return len(rows)


# --- command line ------------------------------------------------------------------------------------
@dataclass
class Command:
    help: str
    default_out: str
    options: dict = field(default_factory=dict)


COMMANDS = {
    **{name: Command(f"chapter A's {', '.join(KINDS[name])} prompts from {SOURCES[name].hub_id}", "data/prompts/refusal")
       for name in CONVERTERS},
    "pairs": Command("chapter B's A/B pairs from Anthropic's model-written evals", "data/prompts/corrigible_pairs.jsonl"),
    "corpus": Command("chapters C and D's corpus text from WikiText-103", "data/text/corpus.txt"),
    "prefixes": Command("chapter D's GenSuccess prefixes from WikiText-103", "data/text/prefixes.txt"),
    "topics": Command("chapter C's topic prompts (no dataset)", "data/prompts/feature_flow"),
}


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m saesteer.study.datasets", description=__doc__.split("\n\n")[0])
    subs = top.add_subparsers(dest="dataset", required=True)
    for name, command in COMMANDS.items():
        p = subs.add_parser(name, help=command.help, description=command.help)
        p.add_argument("out", nargs="?", default=command.default_out, help=f"output (default {command.default_out})")
        p.add_argument("--force", action="store_true", help="overwrite existing outputs")
        if name == "topics":
            continue
        spec = SOURCES[name]
        p.add_argument("--source", default=None, help=f"hub id (default {spec.hub_id}) or a local folder or file "
                                                       "in that dataset's schema")
        p.add_argument("--config", default=None, help=f"hub configuration (default {spec.config})")
        p.add_argument("--split", default=None, help=f"split (default {spec.split})")
        p.add_argument("--cache-dir", default=None, help="the datasets cache (default: the library's)")
        p.add_argument("--seed", type=int, default=0)
        if name in CONVERTERS:
            p.add_argument("--n-selection", type=int, default=250, help="selection items per kind (n_selection)")
            p.add_argument("--eval-items", type=int, default=250, help="evaluation items per kind (eval_items)")
        elif name == "pairs":
            p.add_argument("--n-selection", type=int, default=450, help="selection pairs (n_pairs + n_choose)")
            p.add_argument("--n-eval", type=int, default=100, help="eval pairs (n_eval)")
        elif name == "corpus":
            p.add_argument("--docs", type=int, default=20000, help="documents written (corpus_docs)")
            p.add_argument("--skip", type=int, default=0, help="documents skipped first")
            p.add_argument("--min-chars", type=int, default=200, help="shortest document kept")
        else:
            p.add_argument("-n", type=int, default=50, help="prefixes written (n_prefixes)")
            p.add_argument("--words", type=int, default=8, help="words per prefix")
            p.add_argument("--skip", type=int, default=20000, help="documents skipped first (the corpus file's)")
            p.add_argument("--min-chars", type=int, default=200, help="shortest document used")
    return top


def run(args: argparse.Namespace) -> str:
    """Do one command; returns what was written, in words."""
    name, out = args.dataset, Path(args.out)
    if name == "topics":
        return f"wrote {write_topics(out, args.force)} topic prompts to {out / 'topic.jsonl'}"
    load = {"source": args.source, "config": args.config, "split": args.split, "cache_dir": args.cache_dir}
    if name in CONVERTERS:
        counts = write_prompts(name, out, args.n_selection, args.eval_items, args.seed, args.force, **load)
        return "; ".join(f"{kind}: {s} selection and {e} evaluation items" for kind, (s, e) in counts.items()) + f" in {out}"
    if name == "pairs":
        s, e = write_pairs(out, args.n_selection, args.n_eval, args.seed, args.force, **load)
        return f"wrote {s} selection and {e} eval pairs to {out}"
    if name == "corpus":
        return f"wrote {write_corpus(out, args.docs, args.skip, args.min_chars, args.force, **load)} documents to {out}"
    return f"wrote {write_prefixes(out, args.n, args.words, args.skip, args.min_chars, args.force, **load)} prefixes to {out}"


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        print(run(args))
    except DatasetError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
