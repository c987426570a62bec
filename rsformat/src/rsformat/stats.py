"""What is in a dataset folder: records, classes, box and image sizes, tasks, by config and split.

:func:`dataset_stats` reads only the columns it needs (never the image bytes)
with pyarrow and computes everything on arrays, so a million-object split takes
seconds. Per family:

* detection: objects per class, objects per image (and images without any),
  box size as ``sqrt(w * h)`` of the horizontal box in pixels;
* grounding: expression length in words, box size;
* zoom: questions per category, multiple-choice share, region size relative to
  the image (``sqrt`` of the area ratio: how far one has to zoom);
* conversation: records per task, messages and images per record.

Every family also gets image sizes (width and height percentiles) where known.
:func:`plot_stats` draws the class counts and size percentiles of one split
(matplotlib, optional). This is what a mixture's weights and a model's input
budget are chosen from.

Example:
    >>> import tempfile
    >>> from rsformat.hub import write_dataset
    >>> from rsformat.records import DetectionObject, DetectionRecord
    >>> objs = DetectionObject.from_quads(["ship", "ship", "plane"],
    ...     [[0, 0, 10, 0, 10, 10, 0, 10], [0, 0, 20, 0, 20, 5, 0, 5], [5, 5, 45, 5, 45, 45, 5, 45]])
    >>> recs = [DetectionRecord("a", "x", "train", "a.png", 100, 80, objs), DetectionRecord("b", "x", "train", "b.png", 60, 60, ())]
    >>> out = tempfile.mkdtemp()
    >>> _ = write_dataset({"train": recs}, out, family="detection", config_name="det", embed_images=False)
    >>> s = dataset_stats(out)["det"]["train"]
    >>> s["records"], s["classes"], s["objects_per_image"]["empty_images"], s["box_size"]["max"]
    (2, {'plane': 1, 'ship': 2}, 1, 40.0)
"""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rsformat.hub import config_info, list_configs

__all__ = ["dataset_stats", "plot_stats", "stats_table"]

_IMAGE_COLUMNS = {"image", "images"}


def _summary(values: np.ndarray) -> dict[str, float]:
    """count, min, p5, median, mean, p95, max of a 1-D array (empty: count only)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return {"count": 0}
    p5, p50, p95 = np.percentile(v, [5, 50, 95])
    return {
        "count": int(v.size),
        "min": round(float(v.min()), 2),
        "p5": round(float(p5), 2),
        "median": round(float(p50), 2),
        "mean": round(float(v.mean()), 2),
        "p95": round(float(p95), 2),
        "max": round(float(v.max()), 2),
    }


def _counts(values: Any) -> dict[str, int]:
    import pyarrow.compute as pc

    out: dict[str, int] = {}
    for item in pc.value_counts(values).to_pylist():
        key = item["values"]
        out["(none)" if key is None else str(key)] = int(item["counts"])
    return dict(sorted(out.items()))


def _box_sizes(hbbs: Any) -> np.ndarray:
    """``sqrt(w * h)`` of a flat Arrow list of 4-number boxes."""
    import pyarrow.compute as pc

    flat = pc.list_flatten(hbbs).to_numpy(zero_copy_only=False).astype(np.float64)
    boxes = flat.reshape(-1, 4) if flat.size % 4 == 0 else np.zeros((0, 4))
    return np.sqrt(np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None))


def _split_stats(table: Any, family: str) -> dict[str, Any]:
    import pyarrow.compute as pc

    out: dict[str, Any] = {"family": family, "records": table.num_rows}
    names = set(table.column_names)
    if {"width", "height"} <= names:
        out["width"] = _summary(table["width"].to_numpy(zero_copy_only=False))
        out["height"] = _summary(table["height"].to_numpy(zero_copy_only=False))
    if family == "detection":
        objects = table["objects"].combine_chunks()
        per_image = pc.list_value_length(objects).to_numpy(zero_copy_only=False)
        flat = pc.list_flatten(objects)
        out["objects"] = len(flat)
        out["classes"] = _counts(pc.struct_field(flat, "category"))
        out["objects_per_image"] = {**_summary(per_image), "empty_images": int((per_image == 0).sum())}
        out["box_size"] = _summary(_box_sizes(pc.struct_field(flat, "hbb")))
    elif family == "grounding":
        expressions = table["expression"].to_pylist()
        out["expression_words"] = _summary(np.array([len(str(e).split()) for e in expressions], dtype=float))
        out["box_size"] = _summary(_box_sizes(table["hbb"]))
        if "source" in names:
            out["sources"] = _counts(table["source"])
    elif family == "zoom":
        out["categories"] = _counts(table["category"])
        choices = table["choices"].to_pylist()
        out["multiple_choice"] = int(sum(c is not None for c in choices))
        rois = table["rois"].to_pylist()
        widths = table["width"].to_numpy(zero_copy_only=False).astype(float)
        heights = table["height"].to_numpy(zero_copy_only=False).astype(float)
        relative = []
        for r, w, h in zip(rois, widths, heights):
            for box in r or []:
                area = max(box[2] - box[0], 0) * max(box[3] - box[1], 0)
                relative.append(np.sqrt(area / (w * h)) if w * h > 0 else np.nan)
        out["with_regions"] = int(sum(bool(r) for r in rois))
        out["region_relative_size"] = _summary(np.array(relative, dtype=float))
    else:
        out["tasks"] = _counts(table["task"])
        out["messages_per_record"] = _summary(pc.list_value_length(table["messages"]).to_numpy(zero_copy_only=False))
        if "images" in names:
            out["images_per_record"] = _summary(pc.list_value_length(table["images"]).to_numpy(zero_copy_only=False))
    return out


def dataset_stats(
    folder: str | os.PathLike[str], *, configs: Sequence[str] | None = None, splits: Sequence[str] | None = None
) -> dict[str, dict[str, dict[str, Any]]]:
    """``{config: {split: stats}}`` of a dataset folder written by :func:`rsformat.hub.write_dataset`.

    Raises:
        FileNotFoundError: no dataset folder, or a config or split that is not in it.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = Path(folder)
    available = list_configs(root)
    if not available:
        raise FileNotFoundError(f"{root}: no rsformat dataset here (no config with rsformat_info.json)")
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for config in configs or available:
        info = config_info(root, config)
        family = str(info["family"])
        found = sorted(info.get("splits", {}))
        for split in splits or found:
            files = sorted(glob.glob(str(root / config / f"{split}-*.parquet")))
            if not files:
                raise FileNotFoundError(f"{root / config}: no split {split!r} (splits: {found})")
            parquet_schema = pq.ParquetFile(files[0]).schema
            leaves = [parquet_schema.column(i).path for i in range(len(parquet_schema))]
            # the image columns without their bytes: only their paths (enough to count images)
            columns = [
                leaf
                for leaf in leaves
                if leaf.split(".")[0] not in _IMAGE_COLUMNS
                or (leaf.startswith("images.") and not leaf.endswith("bytes"))
            ]
            tables = [pq.ParquetFile(f).read(columns=columns) for f in files]
            table = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
            out.setdefault(config, {})[split] = _split_stats(table, family)
    return out


def stats_table(stats: dict[str, dict[str, dict[str, Any]]]) -> str:
    """A readable text summary of :func:`dataset_stats` (one block per config and split)."""
    lines: list[str] = []
    for config, splits in stats.items():
        for split, s in splits.items():
            lines.append(f"{config}/{split}: {s['records']} {s['family']} records")
            if "width" in s and s["width"].get("count"):
                lines.append(
                    f"  image size: width {s['width']['min']:.0f}..{s['width']['max']:.0f} "
                    f"(median {s['width']['median']:.0f}), height {s['height']['min']:.0f}..{s['height']['max']:.0f}"
                )
            for key in ("objects", "multiple_choice", "with_regions"):
                if key in s:
                    lines.append(f"  {key.replace('_', ' ')}: {s[key]}")
            for key in ("classes", "categories", "tasks", "sources"):
                if key in s:
                    top = sorted(s[key].items(), key=lambda kv: -kv[1])
                    shown = ", ".join(f"{k} {v}" for k, v in top[:12]) + (
                        f", ... ({len(top)} in all)" if len(top) > 12 else ""
                    )
                    lines.append(f"  {key}: {shown}")
            for key in ("objects_per_image", "box_size", "expression_words", "region_relative_size",
                        "messages_per_record", "images_per_record"):  # fmt: skip
                if key in s and s[key].get("count"):
                    v = s[key]
                    extra = f"; images without objects: {v['empty_images']}" if "empty_images" in v else ""
                    lines.append(
                        f"  {key.replace('_', ' ')}: median {v['median']}, p5..p95 {v['p5']}..{v['p95']}, "
                        f"max {v['max']}{extra}"
                    )
    return "\n".join(lines)


def plot_stats(stats: dict[str, Any], path: str | os.PathLike[str], *, title: str = "") -> Path:
    """Draw one split's statistics (class / category / task counts, and its size percentiles) as a PNG.

    Needs matplotlib. ``stats`` is one split's dict from :func:`dataset_stats`.
    """
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover - depends on the environment
        raise RuntimeError("plotting needs matplotlib: pip install matplotlib") from None
    from rsmetrics.io._common import save_figure

    counts = next((stats[k] for k in ("classes", "categories", "tasks", "sources") if k in stats), {})
    size_key = next((k for k in ("box_size", "region_relative_size", "messages_per_record") if k in stats), None)
    fig, axes = plt.subplots(1, 2, figsize=(11, max(3.0, 0.28 * len(counts) + 1.2)), dpi=110)
    names = list(counts)
    axes[0].barh(np.arange(len(names)), [counts[n] for n in names])
    axes[0].set_yticks(np.arange(len(names)), names)
    axes[0].invert_yaxis()
    axes[0].set_xlabel("count")
    axes[0].set_title("classes" if "classes" in stats else "groups")
    if size_key is not None and stats[size_key].get("count"):
        s = stats[size_key]
        axes[1].bar(
            ["min", "p5", "median", "mean", "p95", "max"], [s[k] for k in ("min", "p5", "median", "mean", "p95", "max")]
        )
        axes[1].set_title(size_key.replace("_", " ") + (" (px)" if size_key == "box_size" else ""))
        if size_key == "box_size":
            axes[1].set_yscale("log")
    else:
        axes[1].axis("off")
    fig.suptitle(title or f"{stats['records']} {stats['family']} records")
    out = save_figure(fig, path)
    plt.close(fig)
    return out
