"""How the book shows tables and figures: no NaN, captions above tables, legends off the data."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from saesteer.study import notebook  # noqa: E402
from saesteer.study.plots import legends_off_data  # noqa: E402


def test_a_table_shows_missing_values_as_a_dash_and_its_caption_above_it():
    frame = notebook.captioned(pd.DataFrame({"a": [1.0, np.nan], "b": pd.array([1, None], dtype="Int64")}), "Table: a & b.")
    html = notebook.table_html(frame)
    assert "NaN" not in html and "&lt;NA&gt;" not in html and html.count(notebook.NOT_AVAILABLE) == 2
    assert html.index("<caption>Table: a &amp; b.</caption>") < html.index("<thead>")
    assert "<caption>" not in notebook.table_html(pd.DataFrame({"a": [1]}))


def _legend_box(ax, fig):
    return ax.get_legend().get_window_extent(fig.canvas.get_renderer()).transformed(ax.transAxes.inverted())


def test_legends_leave_the_plotting_area_to_the_right_of_a_row_or_below_an_inner_axes():
    fig, axes = plt.subplots(1, 2, figsize=(8, 3))
    for ax in axes:
        for i in range(3):
            ax.plot(np.arange(5), np.arange(5) * i, label=f"series {i}")
        ax.legend(title="kind", fontsize=7)
        ax.set(title="t", xlabel="x", ylabel="y")
    fig.tight_layout()
    legends_off_data(fig)
    left, right = _legend_box(axes[0], fig), _legend_box(axes[1], fig)
    assert left.y1 <= 0  # below the inner axes, under its x label
    assert right.x0 >= 1  # right of the row's last axes
    assert [t.get_text() for t in axes[0].get_legend().get_texts()] == ["series 0", "series 1", "series 2"]
    assert axes[1].get_legend().get_title().get_text() == "kind"
    assert axes[1].get_legend().get_texts()[0].get_fontsize() >= 9  # never smaller than 9 points
    plt.close(fig)
