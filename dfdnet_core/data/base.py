"""The shape shared by every loader: a root folder, items found at construction, lazy reading."""

from __future__ import annotations

import operator
from collections.abc import Iterator
from pathlib import Path
from typing import Generic, TypeVar

from dfdnet_core.data.sample import RgbdSample, StackSample
from dfdnet_core.errors import ConfigError, DataError

SampleT = TypeVar("SampleT", RgbdSample, StackSample)
ItemT = TypeVar("ItemT")


class SampleIndexError(DataError, IndexError):
    """An index outside ``[-len, len)``; also an IndexError so that ``for s in dataset`` stops."""


class IndexedDataset(Generic[SampleT, ItemT]):
    """Sequence-like data set: ``len(ds)``, ``ds[i]`` (negative indices allowed) and iteration.

    Subclasses fill ``self._items`` in ``__init__`` (file discovery and cheap checks, so that a
    wrong root fails at once) and implement :meth:`_load`, which reads one item from disk.
    """

    #: Registry name of the data set.
    name: str = ""
    #: "rgbd" (returns RgbdSample) or "stack" (returns StackSample).
    kind: str = ""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        if not self.root.exists():
            raise DataError(f"{self.name}: root {str(self.root)!r} does not exist")
        self._items: list[ItemT] = []

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, index: int) -> SampleT:
        try:
            i = operator.index(index)
        except TypeError:
            raise ConfigError(
                f"{self.name}: sample index must be an integer, got {index!r}"
            ) from None
        n = len(self._items)
        if not -n <= i < n:
            raise SampleIndexError(
                f"{self.name}: index {index!r} is out of range for {n} samples in {self.root}"
            )
        return self._load(self._items[i % n])

    def __iter__(self) -> Iterator[SampleT]:
        for item in self._items:
            yield self._load(item)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(root={str(self.root)!r}, samples={len(self)})"

    def _load(self, item: ItemT) -> SampleT:
        raise NotImplementedError

    def _require_items(self, what: str) -> None:
        """Raise when discovery found nothing, saying what was looked for."""
        if not self._items:
            raise DataError(f"{self.name}: no {what} found under {str(self.root)!r}")


def check_max_side(name: str, max_side_px: int | None) -> None:
    """Validate an optional downscale bound (pixels)."""
    if max_side_px is not None and (
        isinstance(max_side_px, bool) or int(max_side_px) != max_side_px or max_side_px < 8
    ):
        raise ConfigError(
            f"{name}: max_side_px must be an integer >= 8 or None, got {max_side_px!r}"
        )


def check_choice(name: str, option: str, value: str, allowed: tuple[str, ...]) -> None:
    """Reject an option value outside ``allowed``, quoting it."""
    if value not in allowed:
        raise ConfigError(f"{name}: {option} must be one of {list(allowed)}, got {value!r}")
