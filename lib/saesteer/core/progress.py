"""Progress bars for long loops.

``TQDM_DISABLE=1`` (set by the tests and by the book's pipeline) hides every bar,
so that executed notebooks carry no bar output; tqdm reads it only for
arguments not passed explicitly, so a visible bar never passes ``disable``.
"""

from __future__ import annotations

from tqdm.auto import tqdm


def bar(items, desc: str, show: bool = True, **kwargs):
    """A tqdm bar over ``items`` (or ``total=``), hidden when ``show`` is false."""
    return tqdm(items, desc=desc, **kwargs) if show else tqdm(items, desc=desc, disable=True, **kwargs)
