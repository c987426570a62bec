"""The packing planner: first-fit-decreasing inside a window of consecutive samples."""

from __future__ import annotations

import numpy as np
import pytest

from rscovlm_ref.data.pack import packing_stats, padded_batches, padded_share, plan_packs


def test_plan_is_a_partition_within_budget_and_windows() -> None:
    rng = np.random.default_rng(0)
    lengths = rng.integers(50, 3000, size=500).tolist()
    rows = plan_packs(lengths, 6144, window=64)
    flat = sorted(i for r in rows for i in r)
    assert flat == list(range(500))
    for r in rows:
        assert sum(lengths[i] for i in r) <= 6144
        assert r == sorted(r)
        assert len({i // 64 for i in r}) == 1  # never mixes windows: the sampler order is kept
    assert [r[0] for r in rows] == sorted(r[0] for r in rows)
    assert plan_packs(lengths, 6144, window=64) == rows  # deterministic


def test_first_fit_decreasing_fills_rows() -> None:
    rng = np.random.default_rng(1)
    lengths = rng.integers(100, 2500, size=2000).tolist()
    rows = plan_packs(lengths, 6144, window=256)
    stats = packing_stats(lengths, rows, 6144)
    assert stats["real_token_share"] > 0.95
    k = round(stats["samples_per_row"])
    assert padded_share(lengths, padded_batches(len(lengths), k)) < stats["real_token_share"]
    # a lower bound on rows: the sum of lengths over the budget
    assert len(rows) >= -(-sum(lengths) // 6144)


def test_exact_fits_and_errors() -> None:
    assert plan_packs([7, 1, 7, 1], 8, window=4) == [[0, 1], [2, 3]]
    assert plan_packs([8, 8], 8) == [[0], [1]]
    assert plan_packs([], 8) == []
    with pytest.raises(ValueError, match="sample 1 has 9 tokens"):
        plan_packs([3, 9], 8)
    with pytest.raises(ValueError, match="positive"):
        plan_packs([3], 8, window=0)
