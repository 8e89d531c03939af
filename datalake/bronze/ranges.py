"""Integer ranges [lo, hi] (inclusive) for cursor bookkeeping. Pure functions."""

from collections.abc import Iterable

import numpy as np

Range = list[int]  # [lo, hi], inclusive; JSON-friendly


def _sorted_unique(values: Iterable[int]) -> np.ndarray:
    if isinstance(values, np.ndarray):
        array = values.astype(np.int64, copy=False)
    else:
        array = np.fromiter(values, dtype=np.int64)
    if array.size > 1 and not np.all(array[1:] > array[:-1]):
        array = np.unique(array)
    return array


def to_ranges(values: Iterable[int]) -> list[Range]:
    """Return the sorted, merged ranges covering exactly `values`."""
    array = _sorted_unique(values)
    if array.size == 0:
        return []
    breaks = np.nonzero(np.diff(array) != 1)[0]
    starts = np.concatenate(([array[0]], array[breaks + 1]))
    ends = np.concatenate((array[breaks], [array[-1]]))
    return [[int(lo), int(hi)] for lo, hi in zip(starts, ends, strict=True)]


def missing(after: int, upto: int, present: Iterable[int]) -> list[Range]:
    """Return the ranges of integers in (after, upto] that are not in `present`."""
    if upto <= after:
        return []
    array = _sorted_unique(present)
    array = array[(array > after) & (array <= upto)]
    bounds = np.concatenate(([after], array, [upto + 1]))
    holes = np.nonzero(np.diff(bounds) > 1)[0]
    return [[int(bounds[i] + 1), int(bounds[i + 1] - 1)] for i in holes]


def subtract(ranges: list[Range], values: Iterable[int]) -> list[Range]:
    """Return `ranges` with `values` removed."""
    present = _sorted_unique(values)
    out: list[Range] = []
    for lo, hi in ranges:
        inside = present[(present >= lo) & (present <= hi)]
        out.extend(missing(lo - 1, hi, inside))
    return out


def count(ranges: list[Range]) -> int:
    """Return how many integers the ranges cover."""
    return sum(hi - lo + 1 for lo, hi in ranges)
