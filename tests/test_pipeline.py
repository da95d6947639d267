"""The book's runs: a chapter on several subjects (its page and a section per further subject), the stamps
that make a run stale, the narrative kept for each kind of subject, and the runs a machine cannot execute."""

from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from saesteer.core.files import fill, resolve
from saesteer.study import paths, pipeline
from saesteer.study.params import ParameterError

ROOT = Path(__file__).resolve().parents[1]


def test_a_chapter_with_several_settings_runs_its_further_subjects_before_its_page(tmp_path):
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "list.yaml").write_text("methods: tiny\nsteering_vector_decomposition: [organism, g-a, g-b]\n")
    runs = paths.chapter_runs(tmp_path, "notebooks/list.yaml")
    assert [r.name for r in runs] == ["methods", "steering_vector_decomposition@g-a", "steering_vector_decomposition@g-b",
                                      "steering_vector_decomposition"]
    assert runs[1].executed == tmp_path / "book" / "g-a" / "steering_vector_decomposition.ipynb"
    assert runs[3].executed == tmp_path / "book" / "steering_vector_decomposition.ipynb" and runs[3].main
    lists = paths.chapter_run_lists(tmp_path, "notebooks/list.yaml")
    assert [r.setting for r in lists["steering_vector_decomposition"]] == ["organism", "g-a", "g-b"]


def test_the_book_lists_every_run_in_its_table_of_contents():
    toc = (ROOT / "book" / "_toc.yml").read_text()
    for run in paths.chapter_runs(ROOT):
        entry = str(run.executed.relative_to(ROOT).with_suffix(""))
        assert f"file: {entry}\n" in toc or f"root: {entry}\n" in toc, run.name


def test_a_page_is_stale_when_a_subject_it_shows_changes(tmp_path, monkeypatch):
    """The organism page of chapter B shows Gemma 3's runs (compare_with): their results enter its stamp."""
    monkeypatch.setenv("SAESTEER_RESULTS", str(tmp_path))
    page = next(r for r in paths.chapter_runs(ROOT) if r.chapter == "steering_vector_decomposition" and r.main)
    compared = pipeline.upstream_results(ROOT, page)
    assert compared == [tmp_path / s / "steering_vector_decomposition" / "results.json"
                        for s in ("gemma3-270m-sentiment", "gemma3-270m-wedding")]
    before = pipeline.stamp(ROOT, page)
    compared[0].parent.mkdir(parents=True)
    compared[0].write_text("{}")
    assert pipeline.stamp(ROOT, page) != before


def test_a_run_depends_on_the_repository_files_its_parameters_name():
    run = next(r for r in paths.chapter_runs(ROOT) if r.setting == "gemma3-270m-sentiment")
    files = pipeline.input_files(ROOT, {"pairs": "data/gemma3/pairs/sentiment.jsonl", "sae_path": "{cache}/x/{layer}",
                                        "norm_text": "{cache}/gemma3/corpus/heldout.jsonl"})
    assert files == [ROOT / "data" / "gemma3" / "pairs" / "sentiment.jsonl"]
    assert run.param_file.is_file()
    assert pipeline.input_files(ROOT, {"prompts": "data/gemma3/prompts"}) == [ROOT / "data" / "gemma3" / "prompts" / "topic.jsonl"]


def test_each_subject_keeps_its_own_narrative_and_a_further_subject_is_named_in_its_title():
    def notebook():
        cells = [new_markdown_cell("# B. Can an SAE decompose a steering vector?\n\ntext"), new_markdown_cell("both")]
        for tag in pipeline.SUBJECT_TAGS.values():
            cells.append(new_markdown_cell(tag))
            cells[-1].metadata["tags"] = [tag]
        return new_notebook(cells=cells)

    organism, real = notebook(), notebook()
    pipeline.keep_subject_cells(organism, organism=True)
    pipeline.keep_subject_cells(real, organism=False)
    assert [c.source for c in organism.cells[1:]] == ["both", "organism-only"]
    assert [c.source for c in real.cells[1:]] == ["both", "real-model-only"]
    real.cells[1].metadata["mystnb"] = {"figure": {"name": "fig-norms", "caption": "Norms"}}
    real.cells.append(new_markdown_cell("{numref}`fig-norms` shows the norms; {numref}`fig-norms-other` is another figure."))
    run = paths.ChapterRun("steering_vector_decomposition", "gemma3-270m-sentiment", Path("p.yaml"), Path("x.ipynb"), False)
    pipeline.finish(real, run, {"model": "gemma3-270m"})
    pipeline.finish(real, run, {"model": "gemma3-270m"})  # idempotent
    assert real.cells[0].source == "# B. Can an SAE decompose a steering vector? (Gemma 3 270M, sentiment)\n\ntext"
    assert real.cells[1].metadata["mystnb"]["figure"]["name"] == "fig-norms-gemma3-270m-sentiment"
    assert real.cells[-1].source == ("{numref}`fig-norms-gemma3-270m-sentiment` shows the norms; {numref}`fig-norms-other` "
                                     "is another figure.")  # the page's references follow its renamed labels


def test_the_injected_parameters_cell_is_hidden_the_way_the_notebook_hides_its_own():
    def executed(tag: str):
        own, injected = new_code_cell("a = 1"), new_code_cell("a = 2")
        own.metadata["tags"], injected.metadata["tags"] = ["parameters", tag], ["injected-parameters"]
        return new_notebook(cells=[own, injected])

    for tag in ("hide-cell", "remove-cell"):
        notebook = executed(tag)
        pipeline.hide_injected_parameters(notebook)
        assert notebook.cells[1].metadata["tags"] == ["injected-parameters", tag]


def test_a_run_whose_model_or_cache_files_are_missing_says_why(tmp_path, monkeypatch):
    monkeypatch.setenv("SAESTEER_CACHE", str(tmp_path / "empty-cache"))
    param_file = tmp_path / "p.yaml"
    param_file.write_text('model: organism\nsae_path: "{cache}/gemma3/saes/{architecture}_{position}_{layer}"\n')
    run = paths.ChapterRun("steering_vector_decomposition", "p", param_file, tmp_path / "p.ipynb", False)
    assert pipeline.unavailable(run) == ("parameter 'sae_path' names '{cache}/gemma3/saes/{architecture}_{position}_{layer}', "
                                         "which is not built on this machine (`make gemma3`)")
    (tmp_path / "empty-cache" / "gemma3" / "saes").mkdir(parents=True)
    assert pipeline.unavailable(run) is None
    param_file.write_text('model: organism\nsae_path: "{cache}/gemma3/saes/jumprelu_{position}_{layer}"\n')
    assert pipeline.unavailable(run) is None  # a field inside the last name: its folder is what must exist


def test_only_names_a_chapter_or_one_of_its_runs():
    assert [r.name for r in pipeline.selected(ROOT, "steering_vector_decomposition@gemma3-270m-wedding")] == \
        ["steering_vector_decomposition@gemma3-270m-wedding"]
    assert len(pipeline.selected(ROOT, "steering_vector_decomposition")) == 3
    with pytest.raises(ParameterError, match="--only 'nope' is not one of methods, organism"):
        pipeline.selected(ROOT, "nope")


def test_cache_paths_in_parameter_files_resolve_to_the_study_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SAESTEER_CACHE", str(tmp_path))
    assert fill("{cache}/gemma3/saes/{architecture}_{position}_{layer}", layer=3, position="resid_post",
                architecture="topk") == tmp_path / "gemma3" / "saes" / "topk_resid_post_3"
    assert resolve("data/gemma3/prefixes.txt") == ROOT / "data" / "gemma3" / "prefixes.txt"


def test_executed_further_subjects_keep_no_cell_of_the_other_kind():
    for run in paths.chapter_runs(ROOT):
        if run.executed.is_file() and not run.main:
            tags = [t for c in nbformat.read(run.executed, as_version=4).cells for t in c.metadata.get("tags", [])]
            assert pipeline.SUBJECT_TAGS[True] not in tags


def test_a_real_model_run_is_stamped_with_its_build_records():
    chat = pipeline.model_records(ROOT, "gemma3-270m-chat")
    base = pipeline.model_records(ROOT, "gemma3-270m")
    assert ROOT / "data" / "gemma3" / "chat" / "behaviour.json" in chat and set(base) < set(chat)
    assert not any("chat" in p.parts for p in base) and pipeline.model_records(ROOT, "organism") == []
