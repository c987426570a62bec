"""Plan packed rows: which consecutive samples share one padding-free row of at most ``max_length`` tokens.

:func:`plan_packs` is a greedy first-fit-decreasing bin packing inside a window
of ``window`` consecutive samples (the sampler's order): the samples of a window
are taken longest first (ties: earlier first) and each goes into the first open
row of that window with room for it, else opens a new one. Rows never mix
windows, so the data order is kept up to the window and the plan is a pure,
deterministic function of the lengths (resume-safe). Within a row the indices
are in sampler order, and rows are ordered by their first index.

:func:`packing_stats` gives the share of real tokens of a plan (tokens over
``rows * max_length``) and of padded batches of the same samples.

Example:
    >>> plan_packs([5, 3, 4, 2, 6], 8, window=5)
    [[0, 1], [2], [3, 4]]
    >>> plan_packs([5, 3, 4, 2, 6], 8, window=2)
    [[0, 1], [2, 3], [4]]
    >>> plan_packs([7, 1, 7, 1], 8, window=4)
    [[0, 1], [2, 3]]
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["packing_stats", "padded_batches", "padded_share", "plan_packs"]


def plan_packs(lengths: Sequence[int], max_length: int, *, window: int = 256) -> list[list[int]]:
    """Rows of sample indices (see the module doc), each summing to at most ``max_length`` tokens.

    Raises:
        ValueError: a length that is not positive or longer than ``max_length``
            (the dataset drops those; the planner never truncates), or a
            non-positive ``max_length`` / ``window``.
    """
    if max_length <= 0 or window <= 0:
        raise ValueError(f"Expected positive max_length and window, but got {max_length} and {window}")
    for i, n in enumerate(lengths):
        if not 0 < int(n) <= max_length:
            raise ValueError(f"sample {i} has {n} tokens: expected 1..{max_length} (over-long samples are dropped)")
    rows: list[list[int]] = []
    for start in range(0, len(lengths), window):
        idx = range(start, min(start + window, len(lengths)))
        order = sorted(idx, key=lambda i: (-int(lengths[i]), i))
        bins: list[list[int]] = []
        room: list[int] = []
        for i in order:
            n = int(lengths[i])
            for b, free in enumerate(room):
                if n <= free:
                    bins[b].append(i)
                    room[b] -= n
                    break
            else:
                bins.append([i])
                room.append(max_length - n)
        rows.extend(sorted(b) for b in bins)
    rows.sort(key=lambda r: r[0])
    return rows


def padded_batches(num_samples: int, batch_size: int) -> list[list[int]]:
    """Consecutive batches of ``batch_size`` samples (the last may be shorter)."""
    if batch_size <= 0:
        raise ValueError(f"Expected a positive batch_size, but got {batch_size}")
    return [list(range(s, min(s + batch_size, num_samples))) for s in range(0, num_samples, batch_size)]


def packing_stats(lengths: Sequence[int], rows: Sequence[Sequence[int]], max_length: int) -> dict[str, float]:
    """Real-token share of packed ``rows`` (each counted at ``max_length``) and their fill statistics."""
    tokens = sum(int(lengths[i]) for row in rows for i in row)
    return {
        "rows": len(rows),
        "samples_per_row": sum(len(r) for r in rows) / max(len(rows), 1),
        "real_token_share": tokens / max(len(rows) * max_length, 1),
    }


def padded_share(lengths: Sequence[int], batches: Sequence[Sequence[int]]) -> float:
    """Real-token share of padded batches: each batch costs ``len(batch) * its longest sample``."""
    tokens = sum(int(lengths[i]) for b in batches for i in b)
    cost = sum(len(b) * max(int(lengths[i]) for i in b) for b in batches if b)
    return tokens / max(cost, 1)
