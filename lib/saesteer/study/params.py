"""Notebook parameters: declared as data, validated before any heavy work.

A notebook declares its parameters as a dict of ``Param`` specs and calls
``validate`` on the values papermill injected. A bad value stops the notebook
with one sentence naming the parameter and the allowed values. Checks that need
the loaded model or SAE (layer depth, feature width) are ``check_layer`` and
``check_feature``, called right after loading and before any analysis.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import yaml

from saesteer.core.files import resolve

TYPE_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false", list: "a list",
              dict: "a mapping"}


class ParameterError(ValueError):
    """A notebook parameter has a value outside what the notebook accepts."""


@dataclass(frozen=True)
class Param:
    """What one parameter accepts."""

    kind: type  # int, float, str, bool, list or dict
    choices: tuple | None = None  # allowed values, if a closed set
    min: float | None = None  # inclusive lower bound (numbers, list items)
    max: float | None = None  # inclusive upper bound
    items: type | None = None  # type of list items
    exists: bool = False  # a str that must name an existing file or directory
    optional: bool = False  # None is allowed
    nonempty: bool = False  # a list must hold at least one item

    def describe(self) -> str:
        """The allowed values, in words."""
        if self.choices is not None:
            listed = ", ".join(repr(c) for c in self.choices)
            lists = f"a {'non-empty ' if self.nonempty else ''}list of values from {listed}"
            return lists if self.kind is list else f"one of {listed}"
        what = TYPE_NAMES[self.kind]
        if self.kind is list and self.items is not None:
            what += f" of {TYPE_NAMES[self.items].split(' ', 1)[1]}s"
        if self.nonempty:
            what = "a non-empty " + what.split(" ", 1)[1]
        if self.min is not None and self.max is not None:
            what += f" from {self.min} to {self.max}"
        elif self.min is not None:
            what += f" of at least {self.min}"
        elif self.max is not None:
            what += f" of at most {self.max}"
        return what

    def accepts_one(self, value) -> bool:
        """Whether a single value (or list item) has the right type, choice and range."""
        kind = self.items if self.kind is list else self.kind
        if self.choices is not None:
            return value in self.choices
        if kind is not None and not _is(value, kind):
            return False
        if kind in (int, float):
            return (self.min is None or value >= self.min) and (self.max is None or value <= self.max)
        return True


def _is(value, kind: type) -> bool:
    """Type check where bool is not an int and an int is a valid float."""
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


def check(name: str, value, spec: Param) -> None:
    """Raise ``ParameterError`` unless ``value`` satisfies ``spec``."""
    if value is None and spec.optional:
        return
    if spec.kind is list:
        ok = isinstance(value, list) and all(spec.accepts_one(v) for v in value) and (value or not spec.nonempty)
    else:
        ok = spec.accepts_one(value)
    if not ok:
        raise ParameterError(f"Parameter {name!r} must be {spec.describe()}; got {value!r}.")
    if spec.exists and not resolve(value).exists():
        raise ParameterError(f"Parameter {name!r} must name an existing file or directory; {value!r} does not exist.")


def nearest(name: str, known, cutoff: float = 0.6) -> str:
    """``did you mean ...`` words for a misspelt ``name`` (empty when nothing is as close as ``cutoff``)."""
    close = difflib.get_close_matches(name, sorted(known), n=3, cutoff=cutoff)
    return f"did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


def unknown_error(name: str, known) -> ParameterError:
    """The one sentence for an undeclared parameter: its name, the nearest known names."""
    hint = nearest(name, known) or f"this notebook takes {', '.join(sorted(known))}."
    return ParameterError(f"Unknown parameter {name!r}; {hint}")


def parsed(value, spec: Param):
    """A value as the notebook needs it: papermill's ``-p name "[4, 5]"`` delivers a list as a string,
    which is read as YAML (the syntax of ``-y`` and of parameter files)."""
    if spec.kind is list and isinstance(value, str):
        try:
            loaded = yaml.safe_load(value)
        except yaml.YAMLError:
            return value
        return loaded if isinstance(loaded, list) else value
    return value


def validate(values: dict, specs: dict[str, Param]) -> dict:
    """Parse (``parsed``) and check every declared parameter, reject undeclared ones; returns the values."""
    unknown = sorted(set(values) - set(specs))
    if unknown:
        raise unknown_error(unknown[0], specs)
    out = {}
    for name, spec in specs.items():
        if name not in values:
            raise ParameterError(f"Parameter {name!r} is missing; it must be {spec.describe()}.")
        out[name] = parsed(values[name], spec)
        check(name, out[name], spec)
    return out


def check_layer(name: str, layer: int, depth: int) -> None:
    """A layer index must lie within the model's depth."""
    check(name, layer, Param(int, min=0, max=depth - 1))


def check_feature(name: str, index: int, width: int) -> None:
    """A feature index must lie within the SAE's width."""
    check(name, index, Param(int, min=0, max=width - 1))


def read_param_file(path: str | Path) -> dict:
    """The parameters of a papermill YAML file (a flat mapping), with a clear error otherwise."""
    data = yaml.safe_load(Path(path).read_text())
    if not isinstance(data, dict):
        raise ParameterError(f"Parameter file {str(path)!r} must hold a mapping of parameter names to values.")
    return data


SHELL_NAMES = {"In", "Out", "get_ipython", "exit", "quit", "open"}  # what IPython puts in a notebook's globals


def notebook_values(namespace: dict) -> dict:
    """The values a notebook's parameters cell and papermill's injected cell defined: every global that is
    not IPython's, private, a module, a class or a function. Read before the setup cell imports anything
    else, so a misspelt ``-p lyaer 3`` shows up here as an unknown name."""
    return {name: value for name, value in namespace.items()
            if not name.startswith("_") and name not in SHELL_NAMES
            and not isinstance(value, (ModuleType, type)) and not callable(value)}


def from_namespace(namespace: dict, specs: dict[str, Param]) -> dict:
    """Collect the parameters from a notebook's globals, reject unknown names, parse and validate them, and
    write the parsed values back (so a ``-p`` list string becomes a list in the notebook too)."""
    values = notebook_values(namespace)
    missing = [name for name in specs if name not in values]
    if missing:
        raise ParameterError(f"Parameter {missing[0]!r} is not defined in the notebook's parameters cell.")
    config = validate(values, specs)
    namespace.update(config)
    return config
