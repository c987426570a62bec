"""Batch :class:`~rscovlm_ref.data.encode.EncodedSample` s: padded, or padding-free packed into one row.

Padded (:func:`collate_padded`): ``(B, L_max)`` rows padded on the right,
an ``attention_mask``, labels ``-100`` on padding, position ids ``(4, B, L)``.

Packed (:func:`collate_packed`): the samples are concatenated into one row of
``sum(L_i)`` tokens, with no padding and no attention mask. transformers 5.x
builds a block-diagonal causal mask from the *text* position row when
``attention_mask`` is ``None`` and no cache is used, so:

* ``position_ids`` is ``(4, 1, sum L_i)``: row 0 restarts ``0..L_i-1`` for every
  sample (reusing the M-RoPE temporal row there breaks the mask: it is
  constant inside an image), rows 1-3 each sample's own M-RoPE positions;
* ``use_cache`` is ``False`` (with a cache the packed mask is not built, and the
  samples attend to each other silently);
* ``labels[start_i]`` is ``-100``: the last token of one sample never predicts
  the first of the next;
* ``pixel_values`` and ``image_grid_thw`` are concatenated in sample order (the
  vision tower splits them per image by the grids).

The same batch drives flash-attention-2's varlen kernel on a GPU (sample
boundaries are where row 0 restarts at 0). RSCoVLM's packing patch was never
applied, so its packed samples attended to each other.

Example:
    >>> import torch
    >>> from rscovlm_ref.data.encode import EncodedSample
    >>> def sample(n):
    ...     ids = torch.arange(1, n + 1)
    ...     return EncodedSample(ids, ids.clone(), torch.zeros(n, dtype=torch.long), torch.arange(n).expand(4, n))
    >>> batch = collate_packed([sample(3), sample(2)])
    >>> batch["position_ids"][0, 0].tolist(), batch["labels"][0].tolist(), batch["attention_mask"]
    ([0, 1, 2, 0, 1], [-100, 2, 3, -100, 2], None)
    >>> collate_padded([sample(3), sample(2)], pad_token_id=0)["attention_mask"].tolist()
    [[1, 1, 1], [1, 1, 0]]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from rscovlm_ref.data.encode import IGNORE_INDEX, EncodedSample

if TYPE_CHECKING:
    import torch

__all__ = ["Collator", "collate_packed", "collate_padded"]


def _vision(samples: Sequence[EncodedSample]) -> dict[str, Any]:
    import torch

    pixels = [s.pixel_values for s in samples if s.pixel_values is not None]
    grids = [s.image_grid_thw for s in samples if s.image_grid_thw is not None]
    if not pixels:
        return {}
    return {"pixel_values": torch.cat(pixels, dim=0), "image_grid_thw": torch.cat(grids, dim=0)}


def _check(samples: Sequence[EncodedSample]) -> None:
    if not samples:
        raise ValueError("Expected at least one sample to collate, but got none")
    for i, s in enumerate(samples):
        if s.position_ids.dim() != 2 or s.position_ids.shape[0] != 4:
            raise ValueError(f"sample {i}: expected position_ids of shape (4, L), got {tuple(s.position_ids.shape)}")


def collate_packed(samples: Sequence[EncodedSample], *, max_length: int | None = None) -> dict[str, Any]:
    """One padding-free row of all ``samples`` (see the module doc).

    Raises:
        ValueError: if the row would be longer than ``max_length`` (the caller
            packs; a collator never truncates).
    """
    import torch

    _check(samples)
    total = sum(len(s) for s in samples)
    if max_length is not None and total > max_length:
        raise ValueError(f"the packed row has {total} tokens, more than max_length {max_length}")
    labels = []
    for s in samples:
        lab = s.labels.clone()
        lab[0] = IGNORE_INDEX
        labels.append(lab)
    position_ids = torch.cat([s.position_ids for s in samples], dim=1)
    return {
        "input_ids": torch.cat([s.input_ids for s in samples])[None],
        "labels": torch.cat(labels)[None],
        "mm_token_type_ids": torch.cat([s.mm_token_type_ids for s in samples])[None],
        "position_ids": position_ids[:, None, :],
        "attention_mask": None,
        "use_cache": False,
        **_vision(samples),
    }


def collate_padded(samples: Sequence[EncodedSample], *, pad_token_id: int) -> dict[str, Any]:
    """A ``(B, L_max)`` batch padded on the right, with an attention mask (see the module doc)."""
    import torch

    _check(samples)
    n, length = len(samples), max(len(s) for s in samples)

    def full(value: int, *shape: int) -> torch.Tensor:
        return torch.full(shape, value, dtype=torch.long)

    input_ids = full(pad_token_id, n, length)
    labels = full(IGNORE_INDEX, n, length)
    types = full(0, n, length)
    mask = full(0, n, length)
    position_ids = full(0, 4, n, length)
    for i, s in enumerate(samples):
        k = len(s)
        input_ids[i, :k] = s.input_ids
        labels[i, :k] = s.labels
        types[i, :k] = s.mm_token_type_ids
        mask[i, :k] = 1
        position_ids[:, i, :k] = s.position_ids
    return {
        "input_ids": input_ids,
        "labels": labels,
        "mm_token_type_ids": types,
        "position_ids": position_ids,
        "attention_mask": mask,
        "use_cache": False,
        **_vision(samples),
    }


class Collator:
    """A DataLoader ``collate_fn``: ``mode="packed"`` (one padding-free row) or ``"padded"``.

    ``None`` items (samples over the length budget, or skipped bad records)
    are dropped and counted in :attr:`dropped`. The samples' data-engine counts
    (:attr:`EncodedSample.stats`) are summed into ``batch["data_stats"]`` (a
    plain dict, which the trainer pops before the forward pass).
    """

    def __init__(
        self, mode: Literal["packed", "padded"] = "packed", *, pad_token_id: int = 0, max_length: int | None = None
    ) -> None:
        if mode not in ("packed", "padded"):
            raise ValueError(f"Expected mode 'packed' or 'padded', but got {mode!r}")
        self.mode = mode
        self.pad_token_id = pad_token_id
        self.max_length = max_length
        self.dropped = 0

    def __call__(self, items: Sequence[EncodedSample | None]) -> dict[str, Any]:
        samples = [s for s in items if s is not None]
        self.dropped += len(items) - len(samples)
        if self.mode == "packed":
            batch = collate_packed(samples, max_length=self.max_length)
        else:
            batch = collate_padded(samples, pad_token_id=self.pad_token_id)
        stats: dict[str, int] = {}
        for s in samples:
            for key, value in (s.stats or {}).items():
                stats[key] = stats.get(key, 0) + int(value)
        if stats:
            batch["data_stats"] = stats
        return batch
