"""Split discipline: every choice among alternatives is made on selection data, never on evaluation data.

Chapters pick features, layers, clamps, factors and thresholds. ``disjoint``
stops a run whose selection and evaluation sets share an item; ``split``
divides a population (e.g. a layer's features) into a selection part and an
evaluation part by a stable hash, so the same item always lands on the same
side; ``choice`` records a pick and where it was made, for the results file's
pre-registered choices.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Hashable, Iterable, Sequence


def stable_hash(*parts) -> int:
    """A hash that does not change between Python runs (unlike ``hash``)."""
    return int(hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:12], 16)


class SplitError(ValueError):
    """An evaluation item was offered for selection (or the other way round)."""


def disjoint(selection: Iterable[Hashable], evaluation: Iterable[Hashable], what: str) -> None:
    """Stop when a selection item is also an evaluation item (``what`` names them in the message)."""
    shared = set(selection) & set(evaluation)
    if shared:
        example = sorted(map(str, shared))[0]
        raise SplitError(f"{len(shared)} {what} are in both the selection and the evaluation split "
                         f"(for example {example!r}); choices must be made on selection data only.")


def split(items: Sequence, selection_share: float, salt: str, key: Callable = str) -> tuple[list, list]:
    """(selection, evaluation) parts of ``items`` by a stable hash of ``key(item)`` and ``salt``: about
    ``selection_share`` of the items select, the rest evaluate, the same way on every run."""
    if not 0 < selection_share < 1:
        raise ValueError(f"selection_share must lie strictly between 0 and 1; got {selection_share!r}.")
    chosen = [stable_hash("selection", salt, key(item)) % 10_000 < selection_share * 10_000 for item in items]
    return [i for i, c in zip(items, chosen) if c], [i for i, c in zip(items, chosen) if not c]


def choice(value, made_on: str, rule: str, alternatives: Sequence | None = None) -> dict:
    """A pre-registered choice for the results file: the value, where it was made ("parameter file" or a
    selection split), the rule written before evaluation, and the alternatives it was picked from."""
    return {"value": value, "made on": made_on, "rule": rule} | ({"alternatives": list(alternatives)}
                                                                   if alternatives is not None else {})
