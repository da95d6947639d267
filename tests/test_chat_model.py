"""The chat-model page: its tables are read from the chat build's committed records, never typed by hand."""

import pytest

from saesteer.chapters import chat_model


@pytest.fixture(scope="module")
def records():
    return chat_model.records()


def test_the_behaviour_table_shows_every_measure_against_its_target(records):
    behaviour = records["behaviour"]
    table = chat_model.behaviour_table(behaviour)
    assert len(table) == sum(name in behaviour["rows"] for name in chat_model.MEASURES)
    for name in chat_model.MEASURES:
        row = behaviour["rows"].get(name)
        if row and row.get("target"):
            low, high = row["target"]
            assert row["met"] == ((low is None or row["value"] >= low) and (high is None or row["value"] <= high))
    assert set(chat_model.missed(behaviour)) == {n for n in chat_model.MEASURES if behaviour["rows"].get(n, {}).get("met") is False}
    assert "(a planted hole)" in " ".join(table.index)


def test_the_dataset_and_build_tables_match_the_records(records):
    counts = chat_model.dataset_table(records["manifest"])
    assert counts["train"].sum() == sum(records["manifest"]["counts"]["train"].values())
    stages = chat_model.build_table(records["build"])
    assert list(stages.index) == list(records["build"]["stages"])
    assert stages.loc["tune", "minutes"] == pytest.approx(records["build"]["stages"]["tune"]["training_seconds"] / 60)
    assert stages.loc["facts", "minutes"] == pytest.approx(records["build"]["stages"]["facts"]["seconds"] / 60)


def test_the_recipes_are_compared_measure_by_measure(records):
    table = chat_model.recipes_table(records)
    assert list(table.columns) == ["first recipe, held out", "second recipe, selection", "second recipe, held out"]
    assert table.loc["text loss: chat - base", "first recipe, held out"].startswith("+")
    settings = chat_model.recipe_settings(records)
    assert settings.loc["lr", "first recipe"] != settings.loc["lr", "second recipe"]
    assert settings.loc["replay", "first recipe"] == "none"


def test_sae_table_has_one_row_per_chat_sae(records):
    table = chat_model.sae_table(records["quality"])
    assert sorted(table.index) == sorted(s["layer"] for s in records["quality"]["saes"])
    assert (table["FVU"] > 0).all() and (table["dead"] <= 1).all()
