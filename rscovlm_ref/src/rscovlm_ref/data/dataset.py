"""Online training samples from a mixture: sampler key -> record -> render -> images -> encoded sample.

:class:`MixtureDataset` is a map-style dataset whose keys come from
:class:`MixtureSampler`: ``(epoch, position, source, index)``. For each key it

1. loads the rsformat record ``index`` of dataset ``source`` (local dataset
   folders are read with pyarrow, memory-mapped, and kept as Python rows when
   small; ``hf://`` datasets through ``datasets``);
2. draws the render style by the configured probabilities, a prompt from the
   pool, and the model frame with :func:`~rscovlm_ref.data.resize.random_resize_frame`;
3. renders with :func:`rsformat.render.render_conversation` (boxes in the frame),
   materialises the images at their input size (crops from the original),
   encodes with :func:`~rscovlm_ref.data.encode.encode_sample`.

Every random draw comes from ``numpy.random.default_rng([seed, epoch, rank,
position, attempt])``: the same key gives the same sample on every run, so a
resumed run sees exactly the samples of an uninterrupted one.

A bad record (unreadable image, no supervised token, longer than
``max_length``, a render error) is never fatal: it is counted and replaced by
the next record of the same source (deterministically); only ``max_retries`` bad
records in a row raise, since that is a broken dataset rather than a bad record.
The counts (keys of :data:`DATA_STAT_KEYS`) accumulate in
:attr:`MixtureDataset.stats` of the process that builds the sample, and each
sample carries its own in :attr:`EncodedSample.stats`, which is how the trainer
sums them over DataLoader workers and ranks.

Example:
    >>> sampler = MixtureSampler(WeightedSampler([3, 5], [1.0, 1.0], num_samples=4, seed=0))
    >>> [key[:2] for key in sampler]
    [(0, 0), (0, 1), (0, 2), (0, 3)]
"""

from __future__ import annotations

import glob
import logging
import os
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from rscovlm_ref.data.encode import EncodedSample, EncodeError, encode_sample, materialize_images, open_image_bytes
from rscovlm_ref.data.mixture import ConfigError, DatasetSpec, MixtureConfig
from rscovlm_ref.data.resize import random_resize_frame
from rscovlm_ref.data.sampler import RecipeSampler, WeightedSampler
from rscovlm_ref.data.synonyms import apply_synonyms, choose_synonyms, resolve_table
from rsformat.records import ConversationRecord, DetectionObject, DetectionRecord, GroundingRecord, record_class
from rsformat.render import RenderStyle, render_conversation
from rsmetrics.iou import degenerate_mask

__all__ = ["DATA_STAT_KEYS", "MixtureDataset", "MixtureSampler", "RecordSource", "build_sampler"]

logger = logging.getLogger(__name__)

_IN_MEMORY_BYTES = 256 * 2**20
"""Local datasets below this many Arrow bytes are kept as Python rows (fast random access)."""


DATA_STAT_KEYS = (
    "samples",  # samples delivered
    "replaced",  # samples that stand in for a bad record of the same source
    "too_long",  # records over max_length (dropped, never truncated)
    "corrupt_image",  # unreadable or undecodable images
    "no_supervised",  # records that leave no supervised token
    "invalid_sample",  # other encoding errors
    "invalid_record",  # render or record errors (e.g. a grounding box wholly outside its image)
    "boxes_clipped",  # boxes clipped to their image
    "boxes_dropped",  # boxes with nothing left inside their image
)
"""What :attr:`MixtureDataset.stats` counts, in a fixed order (summed across ranks in this order)."""


def _inside(quads: np.ndarray, width: float, height: float) -> np.ndarray:
    q = np.asarray(quads, float).reshape(-1, 8)
    xs, ys = q[:, 0::2], q[:, 1::2]
    return (xs >= 0).all(1) & (xs <= width).all(1) & (ys >= 0).all(1) & (ys <= height).all(1)


def _clip_quad(quads: np.ndarray, width: float, height: float) -> np.ndarray:
    q = np.asarray(quads, float).reshape(-1, 8).copy()
    q[:, 0::2] = q[:, 0::2].clip(0, width)
    q[:, 1::2] = q[:, 1::2].clip(0, height)
    return q if np.ndim(quads) > 1 else q[0]


class RecordSource:
    """Random access to the records of one dataset of the mixture, with their image cells."""

    def __init__(self, spec: DatasetSpec, base: str | os.PathLike[str] = ".") -> None:
        self.spec = spec
        self.location = spec.resolve_path(Path(base))
        self._rows: list[dict[str, Any]] | None = None
        self._table: Any = None
        self._hf: Any = None
        if self.location.startswith("hf://"):
            self._open_hub()
        else:
            self._open_local()
        self.cls = record_class(self.family)

    def _open_local(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        from rsformat.hub import config_info, list_configs

        folder = Path(self.location)
        where = f"dataset {self.spec.name!r}"
        if not folder.is_dir():
            raise ConfigError(f"{where}: no dataset folder at {folder} (run the rsformat conversion first)")
        config = self.spec.config
        if config is None:
            configs = list_configs(folder)
            if len(configs) != 1:
                raise ConfigError(f"{where}: {folder} holds configs {configs}; name one with `config`")
            config = configs[0]
        try:
            info = config_info(folder, config)
        except (FileNotFoundError, OSError, ValueError, KeyError) as err:
            raise ConfigError(f"{where}: no config {config!r} in {folder} ({err})") from None
        self.family = str(info["family"])
        files = sorted(glob.glob(str(folder / config / f"{self.spec.split}-*.parquet")))
        if not files:
            splits = sorted(info.get("splits", {}))
            raise ConfigError(f"{where}: config {config!r} has no split {self.spec.split!r} (splits: {splits})")
        tables = [pq.read_table(f, memory_map=True) for f in files]
        table = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
        if table.nbytes <= _IN_MEMORY_BYTES:
            self._rows = table.to_pylist()
        else:
            self._table = table
        self.size = table.num_rows
        self.image_root = Path(self.spec.image_root) if self.spec.image_root else folder / config

    def categories(self) -> list[str]:
        """The classes of a detection dataset: every category of its records (computed once)."""
        if getattr(self, "_categories", None) is None:
            found: set[str] = set()
            for i in range(self.size):
                objects = self.row(i).get("objects") or []
                if isinstance(objects, Mapping):  # a column-wise struct of lists
                    found.update(objects.get("category") or [])
                else:
                    found.update(o["category"] for o in objects)
            self._categories = sorted(found)
        return self._categories

    def _open_hub(self) -> None:  # pragma: no cover - needs the network
        import datasets

        repo = self.location[len("hf://") :]
        ds = datasets.load_dataset(repo, name=self.spec.config, split=self.spec.split)
        column = "images" if "images" in ds.column_names else "image"
        image = datasets.Image(decode=False)
        ds = ds.cast_column(column, datasets.List(image) if column == "images" else image)
        self.family = "conversation" if column == "images" else _guess_family(ds.column_names)
        self._hf = ds
        self.size = len(ds)
        self.image_root = Path(self.spec.image_root) if self.spec.image_root else Path(".")

    def row(self, index: int) -> dict[str, Any]:
        if self._rows is not None:
            return self._rows[index]
        if self._table is not None:
            return self._table.slice(index, 1).to_pylist()[0]
        return self._hf[int(index)]

    def record(self, index: int) -> tuple[Any, list[Any]]:
        """The record and its image cells (``{"bytes", "path"}`` or a path string), in record image order."""
        row = self.row(index)
        record = self.cls.from_row(row)
        cells = list(row.get("images") or []) if self.family == "conversation" else [row.get("image")]
        return record, cells

    def open_image(self, cell: Any) -> Any:
        if isinstance(cell, Mapping) and cell.get("bytes") is not None:
            return open_image_bytes(bytes(cell["bytes"]), str(cell.get("path") or "<embedded>"))
        path = cell.get("path") if isinstance(cell, Mapping) else cell
        if not path:
            raise EncodeError("an image cell without bytes or path")
        try:
            data = (self.image_root / str(path)).read_bytes()
        except OSError as err:
            raise EncodeError(f"cannot read image {str(path)!r}: {err}") from err
        return open_image_bytes(data, str(path))


def _guess_family(columns: Sequence[str]) -> str:  # pragma: no cover - hub only
    if "objects" in columns:
        return "detection"
    if "rois" in columns:
        return "zoom"
    return "grounding"


def build_sampler(
    mixture: MixtureConfig, sizes: Sequence[int], *, rank: int = 0, world_size: int = 1
) -> WeightedSampler | RecipeSampler:
    """The sampler of the mixture's mode over sources of ``sizes``."""
    if mixture.mode == "recipe":
        return RecipeSampler(
            sizes,
            [d.repeat for d in mixture.datasets],
            [d.keep for d in mixture.datasets],
            seed=mixture.seed,
            rank=rank,
            world_size=world_size,
        )
    return WeightedSampler(
        sizes,
        [d.weight for d in mixture.datasets],
        num_samples=mixture.num_samples,
        seed=mixture.seed,
        rank=rank,
        world_size=world_size,
    )


class MixtureSampler:
    """A torch ``Sampler`` over a mixture sampler: yields ``(epoch, position, source, index)`` keys.

    Every ``iter()`` restarts the current epoch from its first position (the
    Trainer skips already-trained batches itself on resume); :meth:`set_epoch`
    moves to another epoch's order.
    """

    def __init__(self, inner: WeightedSampler | RecipeSampler) -> None:
        self.inner = inner
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.inner)

    def __iter__(self) -> Iterator[tuple[int, int, int, int]]:
        self.inner.set_epoch(self.epoch)
        shard = self.inner._shard()
        for position, (src, idx) in enumerate(shard.tolist()):
            yield (self.epoch, position, int(src), int(idx))


class MixtureDataset:
    """Encoded training samples for the keys of a :class:`MixtureSampler` (see the module doc).

    Args:
        mixture: The validated mixture config.
        processor: A Qwen2.5-VL processor (tokenizer and image processor).
        base: Folder that relative dataset paths are resolved against.
        max_length: Token budget of a sample (longer ones are dropped and counted).
        min_pixels, max_pixels: Dynamic-resolution bounds of the model input.
        rank, world_size: This process's shard of each epoch.
        max_retries: Bad records in a row (per key) before giving up.
        sources: Pre-built sources (one per mixture dataset), else opened from ``mixture``.
    """

    def __init__(
        self,
        mixture: MixtureConfig,
        processor: Any,
        *,
        base: str | os.PathLike[str] = ".",
        max_length: int | None = 6144,
        min_pixels: int = 224 * 224,
        max_pixels: int = 1008 * 1008,
        rank: int = 0,
        world_size: int = 1,
        max_retries: int = 16,
        sources: Sequence[RecordSource] | None = None,
    ) -> None:
        self.mixture = mixture
        self.processor = processor
        self.max_length = max_length
        self.min_pixels = min_pixels
        self.max_pixels = max_pixels
        self.rank = rank
        self.max_retries = max_retries
        self.sources = list(sources) if sources is not None else [RecordSource(d, base) for d in mixture.datasets]
        self.sampler = MixtureSampler(
            build_sampler(mixture, [s.size for s in self.sources], rank=rank, world_size=world_size)
        )
        self.stats: Counter[str] = Counter()
        self._warned = 0

    def __len__(self) -> int:
        return len(self.sampler)

    # ------------------------------------------------------------------ one sample

    def build(self, source: int, index: int, rng: np.random.Generator) -> EncodedSample | None:
        """Encode record ``index`` of ``source`` with the draws of ``rng``; ``None`` if over ``max_length``.

        Raises:
            EncodeError, ValueError...: for a bad record (the caller counts and replaces it).
        """
        src = self.sources[source]
        spec = src.spec.render
        record, cells = src.record(index)
        names = list(spec.styles)
        style_name = names[int(rng.choice(len(names), p=np.asarray([spec.styles[n] for n in names])))]
        output, box = style_name.split("-")
        prompt = spec.prompts[int(rng.integers(len(spec.prompts)))] if spec.prompts else None
        style = RenderStyle(output, box, prompt=prompt, tool_format="qwen")  # type: ignore[arg-type]

        cache: dict[int, Any] = {}

        def opener(i: int) -> Any:
            if i not in cache:
                if not 0 <= i < len(cells):
                    raise EncodeError(f"record {record.id!r} has no image {i}")
                cache[i] = src.open_image(cells[i])
            return cache[i]

        if isinstance(record, ConversationRecord):
            size = opener(0).size if record.images else None
        else:
            size = (record.width, record.height)
        u = rng.random()  # drawn whatever the record, so the stream of draws does not depend on its kind
        if size is not None and u < spec.random_resize:
            frame = random_resize_frame(*size, rng, min_pixels=self.min_pixels, max_pixels=self.max_pixels)
        else:
            frame = random_resize_frame(
                *(size or (1, 1)), rng, probability=0.0, min_pixels=self.min_pixels, max_pixels=self.max_pixels
            )
        categories = None
        if isinstance(record, (DetectionRecord, GroundingRecord)):
            record = self._inside_image(record)
        if isinstance(record, DetectionRecord):
            # the prompt lists the dataset's classes, not only those in the image: an image without
            # objects must still ask for them (and be answered "There are none.")
            categories = list(spec.categories or src.categories())
            if spec.synonym_rate > 0:
                table = resolve_table(spec.synonyms)
                mapping = choose_synonyms(categories, table, rate=spec.synonym_rate, rng=rng)
                record, categories = apply_synonyms(record, categories, mapping)
        conv = render_conversation(record, frame, style, categories=categories)
        images = materialize_images(conv.images, None, frame, opener=opener) if conv.images else []
        return encode_sample(conv.messages, images, self.processor, max_length=self.max_length)

    def _inside_image(self, record: Any) -> Any:
        """Boxes clipped to the image they are drawn on (counted), dropped if nothing is left.

        Annotators draw past the border (DOTA objects cut by the image edge); a model should
        not be taught coordinates outside its input. A grounding record whose box lies
        entirely outside raises (the caller counts and replaces it).
        """
        w, h = record.width, record.height
        if isinstance(record, GroundingRecord):
            x1, y1, x2, y2 = record.hbb
            clipped = (min(max(x1, 0.0), w), min(max(y1, 0.0), h), min(max(x2, 0.0), w), min(max(y2, 0.0), h))
            if clipped == tuple(record.hbb) and (record.quad is None or _inside(np.asarray(record.quad), w, h).all()):
                return record
            if clipped[2] <= clipped[0] or clipped[3] <= clipped[1]:
                raise ValueError(f"record {record.id!r}: its box lies outside the {w}x{h} image")
            self.stats["boxes_clipped"] += 1
            quad = None if record.quad is None else tuple(_clip_quad(np.asarray(record.quad, float), w, h).tolist())
            return replace(record, hbb=clipped, quad=quad)
        quads = record.quads()
        if len(quads) == 0 or _inside(quads, w, h).all():
            return record
        clipped = _clip_quad(quads, w, h)
        keep = ~degenerate_mask(clipped)
        self.stats["boxes_clipped"] += int((~_inside(quads, w, h)).sum())
        self.stats["boxes_dropped"] += int((~keep).sum())
        objects = DetectionObject.from_quads(
            [o.category for o, k in zip(record.objects, keep) if k],
            clipped[keep],
            [o.difficult for o, k in zip(record.objects, keep) if k],
        )
        return replace(record, objects=objects)

    def _reason(self, err: Exception) -> str:
        text = str(err)
        if isinstance(err, EncodeError) and ("cannot read image" in text or "image processor cannot" in text):
            return "corrupt_image"
        if isinstance(err, EncodeError) and "no supervised token" in text:
            return "no_supervised"
        if isinstance(err, EncodeError):
            return "invalid_sample"
        return "invalid_record"

    def __getitem__(self, key: tuple[int, int, int, int]) -> EncodedSample:
        epoch, position, source, index = (int(k) for k in key)
        size = self.sources[source].size
        before = self.stats.copy()
        for attempt in range(self.max_retries + 1):
            idx = (index + attempt) % size
            rng = np.random.default_rng([self.mixture.seed, epoch, self.rank, position, attempt])
            try:
                sample = self.build(source, idx, rng)
            except Exception as err:  # one bad record must never stop a week-long run
                reason = self._reason(err)
                self.stats[reason] += 1
                if self._warned < 20:
                    self._warned += 1
                    logger.warning(
                        "skipping record %d of %r (%s): %s", idx, self.sources[source].spec.name, reason, err
                    )
                continue
            if sample is None:
                self.stats["too_long"] += 1
                continue
            self.stats["samples"] += 1
            if attempt:
                self.stats["replaced"] += 1
            sample.stats = dict(self.stats - before)
            return sample
        raise RuntimeError(
            f"{self.max_retries + 1} bad records in a row in dataset {self.sources[source].spec.name!r} "
            f"from index {index}; counts so far: {dict(self.stats)}"
        )
