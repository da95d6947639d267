"""Small additions to the book's HTML build (loaded by `_config.yml` under `sphinx: local_extensions`).

- The source notebooks (`notebooks/*.ipynb`, the papermill templates every chapter is executed from) are
  copied to `notebooks/` at the root of the HTML output, so the book can link them for download
  (`notebooks/<chapter>.ipynb` relative to the html root).
- Each inline script is written once per page. sphinx-thebe registers its inline configuration script
  (`const THEBE_JS_URL = ...`) after the HTML builder has started; Sphinx 7.4 then lists it twice, once
  under the file name None and once under "", and the second copy fails in the browser with
  "Identifier 'THEBE_JS_URL' has already been declared".
- The citation style `author_year_round` (`bibtex_reference_style`): sphinxcontrib-bibtex's author-year style
  with round brackets and "; " between works, so {cite:t} reads "O'Brien et al. (2024)" and {cite:p}
  "(Wolf et al., 2020; Paszke et al., 2019)".
- The bibliography style `plain_author_year` (`bibtex_default_style`): pybtex's plain style (numbered entries
  sorted by author, year and title) whose sort ignores the braces of corporate authors such as
  {Gemma Team}, which pybtex would otherwise sort after every other name.

This folder is left out of the copied static files (`exclude_patterns` in `_config.yml`).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pybtex.plugin
import sphinxcontrib.bibtex.plugin
from pybtex.style.formatting.plain import Style as PlainStyle
from pybtex.style.sorting.author_year_title import SortingStyle as AuthorYearTitleSortingStyle
from sphinx.application import Sphinx
from sphinxcontrib.bibtex.style.referencing import BracketStyle
from sphinxcontrib.bibtex.style.referencing.author_year import AuthorYearReferenceStyle

SOURCE_NOTEBOOKS = "notebooks"  # relative to the book root (the repository root), and to the html root


def _round_brackets() -> BracketStyle:
    return BracketStyle(left="(", right=")", sep="; ")


@dataclass
class AuthorYearRoundReferenceStyle(AuthorYearReferenceStyle):
    """Author-year citations in round brackets: "O'Brien et al. (2024)", "(O'Brien et al., 2024)"."""

    bracket_textual: BracketStyle = field(default_factory=_round_brackets)
    bracket_parenthetical: BracketStyle = field(default_factory=_round_brackets)
    bracket_author: BracketStyle = field(default_factory=_round_brackets)
    bracket_label: BracketStyle = field(default_factory=_round_brackets)
    bracket_year: BracketStyle = field(default_factory=_round_brackets)


class UnbracedAuthorYearTitleSortingStyle(AuthorYearTitleSortingStyle):
    """Sort by author, year and title, reading "{Gemma Team}" as "gemma team"."""

    def person_key(self, person) -> str:
        return super().person_key(person).replace("{", "").replace("}", "")


class PlainAuthorYearStyle(PlainStyle):
    """pybtex's plain style, sorted with `UnbracedAuthorYearTitleSortingStyle`."""

    default_sorting_style = "author_year_title_unbraced"


def _script_key(script) -> tuple:
    """What makes two <script> tags the same: their file (None and "" alike) and attributes (body included)."""
    filename = getattr(script, "filename", script) or ""
    attributes = getattr(script, "attributes", {}) or {}
    return str(filename), tuple(sorted((str(k), str(v)) for k, v in attributes.items()))


def dedupe_scripts(app: Sphinx, pagename: str, templatename: str, context: dict, doctree) -> None:
    """Drop the second copy of any script on the page (keeps the first, in order)."""
    scripts = context.get("script_files")
    if not isinstance(scripts, list):
        return
    seen, kept = set(), []
    for script in scripts:
        key = _script_key(script)
        if key not in seen:
            seen.add(key)
            kept.append(script)
    if len(kept) != len(scripts):
        context["script_files"] = kept


def copy_source_notebooks(app: Sphinx, exception: Exception | None) -> None:
    """Copy `notebooks/*.ipynb` to `<html root>/notebooks/` after a successful HTML build."""
    if exception is not None or app.builder.format != "html":
        return
    source = Path(app.srcdir) / SOURCE_NOTEBOOKS
    target = Path(app.outdir) / SOURCE_NOTEBOOKS
    target.mkdir(parents=True, exist_ok=True)
    for notebook in sorted(source.glob("*.ipynb")):
        shutil.copyfile(notebook, target / notebook.name)


def setup(app: Sphinx) -> dict:
    pybtex.plugin.register_plugin("pybtex.style.sorting", "author_year_title_unbraced",
                                  UnbracedAuthorYearTitleSortingStyle)
    pybtex.plugin.register_plugin("pybtex.style.formatting", "plain_author_year", PlainAuthorYearStyle)
    sphinxcontrib.bibtex.plugin.register_plugin(
        "sphinxcontrib.bibtex.style.referencing", "author_year_round", AuthorYearRoundReferenceStyle)
    app.connect("html-page-context", dedupe_scripts)
    app.connect("build-finished", copy_source_notebooks)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
