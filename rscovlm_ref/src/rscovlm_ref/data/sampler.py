"""Which sample comes next: weighted over sources, deterministic, sharded, resumable.

Two ways to mix datasets:

:class:`WeightedSampler`
    each draw picks a source with probability proportional to its weight, then
    the next index of that source's own shuffled order (reshuffled when
    exhausted). The realised proportions follow the weights whatever the
    dataset sizes: the paper's "flow rate" of each ingredient.
:class:`RecipeSampler`
    RSCoVLM's recipe semantics, to reproduce its numbers exactly: dataset
    ``name*N`` is repeated N times, ``name%p`` keeps a random p % of it, the
    concatenation is shuffled once per epoch.

Both are deterministic in ``(seed, epoch)`` (the same order on every run and
every rank), shard the epoch by ``rank::world_size`` (padded by wrapping so
every rank gets the same count) and resume mid-epoch from
``state_dict()``. They yield ``(source index, sample index)`` pairs.

Example:
    >>> s = WeightedSampler([10, 1000], [3.0, 1.0], num_samples=4000, seed=0)
    >>> draws = [src for src, _ in s]
    >>> abs(draws.count(0) / len(draws) - 0.75) < 0.02  # weight 3 of 4, whatever the sizes
    True
    >>> s.state_dict()["position"]
    4000
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

__all__ = ["RecipeSampler", "WeightedSampler"]


class _ShardedOrder:
    """An epoch's global order, sharded by rank, with a resumable position."""

    def __init__(self, seed: int, rank: int, world_size: int) -> None:
        if world_size < 1 or not (0 <= rank < world_size):
            raise ValueError(f"Expected 0 <= rank < world_size, but got rank={rank}, world_size={world_size}")
        self.seed = int(seed)
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self.position = 0  # items of this rank's shard already yielded in the current epoch

    def _global_order(self, epoch: int) -> np.ndarray:  # (n, 2): source, index
        raise NotImplementedError

    def _shard(self) -> np.ndarray:
        order = self._global_order(self.epoch)
        if len(order) == 0:
            return order
        per_rank = -(-len(order) // self.world_size)
        # wrap around so that every rank gets the same number of samples (as DistributedSampler does)
        padded = np.concatenate([order, order[: per_rank * self.world_size - len(order)]])
        return padded[self.rank :: self.world_size]

    def __len__(self) -> int:
        return len(self._shard())

    def __iter__(self) -> Iterator[tuple[int, int]]:
        shard = self._shard()
        while self.position < len(shard):
            src, idx = shard[self.position]
            self.position += 1
            yield int(src), int(idx)

    def set_epoch(self, epoch: int) -> None:
        """Start ``epoch`` from its beginning (call once per epoch, as with DistributedSampler)."""
        self.epoch = int(epoch)
        self.position = 0

    def state_dict(self) -> dict[str, Any]:
        """Where this rank is: enough to resume the exact same order after an interruption."""
        return {
            "seed": self.seed,
            "epoch": self.epoch,
            "position": self.position,
            "rank": self.rank,
            "world_size": self.world_size,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if int(state["seed"]) != self.seed or int(state["world_size"]) != self.world_size:
            raise ValueError(
                f"Expected a state of seed {self.seed} and world size {self.world_size}, "
                f"but got seed {state['seed']} and world size {state['world_size']}"
            )
        self.epoch = int(state["epoch"])
        self.position = int(state["position"])


def _check_sizes(sizes: Sequence[int]) -> np.ndarray:
    arr = np.asarray(sizes, dtype=np.int64)
    if arr.ndim != 1 or len(arr) == 0 or (arr < 0).any():
        raise ValueError(f"Expected a non-empty list of dataset sizes >= 0, but got {list(sizes)}")
    return arr


class WeightedSampler(_ShardedOrder):
    """Draw ``num_samples`` per epoch: a source by weight, then its next shuffled index.

    Args:
        sizes: number of samples of each source.
        weights: relative sampling weight of each source (> 0; a source of size 0 is
            never drawn and its weight is redistributed).
        num_samples: draws per epoch over all ranks (default: the sum of the sizes).
        seed: the seed; the order depends only on ``(seed, epoch)``.
        rank: this process's rank; world_size: the number of ranks.
    """

    def __init__(
        self,
        sizes: Sequence[int],
        weights: Sequence[float],
        *,
        num_samples: int | None = None,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        super().__init__(seed, rank, world_size)
        self.sizes = _check_sizes(sizes)
        w = np.asarray(weights, dtype=np.float64)
        if w.shape != self.sizes.shape or not np.isfinite(w).all() or (w <= 0).any():
            raise ValueError(f"Expected one weight > 0 per source ({len(self.sizes)}), but got {list(weights)}")
        w = np.where(self.sizes > 0, w, 0.0)
        if w.sum() == 0:
            raise ValueError("Expected at least one non-empty source, but every source has 0 samples")
        self.probabilities = w / w.sum()
        self.num_samples = int(self.sizes.sum() if num_samples is None else num_samples)

    def _global_order(self, epoch: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, epoch])
        sources = rng.choice(len(self.sizes), size=self.num_samples, p=self.probabilities)
        out = np.empty((self.num_samples, 2), dtype=np.int64)
        out[:, 0] = sources
        for s in np.flatnonzero(self.probabilities):
            where = np.flatnonzero(sources == s)
            size = int(self.sizes[s])
            passes = -(-len(where) // size)
            # each pass over a source is a fresh permutation, so no sample repeats before all were seen
            perms = [np.random.default_rng([self.seed, epoch, int(s), p]).permutation(size) for p in range(passes)]
            out[where, 1] = np.concatenate(perms)[: len(where)] if perms else []
        return out


class RecipeSampler(_ShardedOrder):
    """RSCoVLM's ``name*N`` (repeat) and ``name%p`` (keep p percent) mixing, shuffled per epoch.

    Args:
        sizes: number of samples of each source.
        repeats: integer repeat count of each source (RSCoVLM ``*N``; 1 = once).
        keep: fraction of each source kept (RSCoVLM ``%p`` as p / 100; 1.0 = all),
            drawn once per ``seed`` (the same subset every epoch, as RSCoVLM).
        seed, rank, world_size: as :class:`WeightedSampler`.
    """

    def __init__(
        self,
        sizes: Sequence[int],
        repeats: Sequence[int] | None = None,
        keep: Sequence[float] | None = None,
        *,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        super().__init__(seed, rank, world_size)
        self.sizes = _check_sizes(sizes)
        n = len(self.sizes)
        self.repeats = np.ones(n, np.int64) if repeats is None else np.asarray(repeats, np.int64)
        self.keep = np.ones(n) if keep is None else np.asarray(keep, np.float64)
        if self.repeats.shape != (n,) or (self.repeats < 1).any():
            raise ValueError(
                f"Expected one repeat count >= 1 per source ({n}), but got {None if repeats is None else list(repeats)}"
            )
        if self.keep.shape != (n,) or ((self.keep <= 0) | (self.keep > 1)).any():
            raise ValueError(
                f"Expected one kept fraction in (0, 1] per source ({n}), but got {None if keep is None else list(keep)}"
            )
        parts = []
        for s in range(n):
            size = int(self.sizes[s])
            idx = np.arange(size)
            if self.keep[s] < 1:
                count = int(size * self.keep[s])
                idx = np.sort(np.random.default_rng([self.seed, s, 7]).choice(size, size=count, replace=False))
            parts.append(np.column_stack([np.full(len(idx) * self.repeats[s], s), np.tile(idx, self.repeats[s])]))
        self._pool = np.concatenate(parts).astype(np.int64) if parts else np.zeros((0, 2), np.int64)

    def _global_order(self, epoch: int) -> np.ndarray:
        return self._pool[np.random.default_rng([self.seed, epoch]).permutation(len(self._pool))]
