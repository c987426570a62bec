"""Write records as a Hugging Face dataset folder, read it back, publish it.

:func:`write_dataset` streams records into parquet shards
``<out_dir>/<config>/<split>-0000K-of-0000N.parquet`` (the Hub layout), with
images embedded (``datasets.Image()``: bytes and relative path) or as relative
path strings (for UHR images), a generated ``README.md`` dataset card and
``conversion_report.json``. ``datasets.load_dataset(out_dir, name=config)``
reads it; :func:`load_records` gives the records back, equal to those written.

Layout of an output folder::

    out_dir/
      README.md                 # card: YAML configs + dataset_info, then prose
      conversion_report.json    # {config: report}
      <config>/
        train-00000-of-00002.parquet
        ...
        rsformat_info.json      # family, features, splits, card info
        conversion_report.json

One folder may hold several configs (one per source): writing a config keeps
the others. Writing is atomic: everything goes to a temporary folder beside
``out_dir`` which then replaces it by renames, so a killed run leaves the
previous output intact and a rerun replaces it.

Example:
    >>> import tempfile
    >>> from rsformat.records import GroundingRecord
    >>> rec = GroundingRecord("g1", "demo", "train", "g1.png", 64, 64, expression="the car", hbb=(1.0, 2.0, 30.0, 40.0))
    >>> out = Path(tempfile.mkdtemp()) / "demo"
    >>> info = write_dataset({"train": [rec]}, out, family="grounding", config_name="demo", embed_images=False)
    >>> sorted(p.name for p in (out / "demo").iterdir())
    ['conversion_report.json', 'rsformat_info.json', 'train-00000-of-00001.parquet']
    >>> list(load_records(out, "demo", "train")) == [rec]
    True
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Collection, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from rsformat.converters.base import ConversionReport, UnsafePathError, safe_join
from rsformat.features import features_for
from rsformat.records import Record, record_class

__all__ = [
    "DEFAULT_MAX_SHARD_SIZE",
    "INFO_FILE",
    "REPORT_FILE",
    "PushError",
    "config_info",
    "dataset_card",
    "image_bytes",
    "list_configs",
    "load_records",
    "parse_size",
    "push_dataset",
    "resolve_token",
    "reusable_splits",
    "write_dataset",
]

logger = logging.getLogger(__name__)

INFO_FILE = "rsformat_info.json"
REPORT_FILE = "conversion_report.json"
DEFAULT_MAX_SHARD_SIZE = 500 * 2**20
"""Shards close once their Arrow data passes this many bytes (like ``push_to_hub``'s 500MB)."""

# rows per Arrow batch: small enough that a batch of embedded images stays small
_BATCH_ROWS = 256
_BATCH_BYTES = 64 * 2**20

_TASKS = {
    "detection": ["object-detection", "image-text-to-text"],
    "grounding": ["image-text-to-text", "zero-shot-object-detection"],
    "zoom": ["visual-question-answering", "image-text-to-text"],
    "conversation": ["image-text-to-text", "visual-question-answering"],
}

_FIELD_DOCS = {
    "id": "unique id of the record inside its config",
    "source": "source dataset (converter name)",
    "split": "split of the source the record comes from",
    "image": "the image (embedded bytes and relative path, or a relative path string)",
    "images": "the images of the conversation (embedded, or relative path strings)",
    "width": "image width in pixels",
    "height": "image height in pixels",
    "objects": "objects: category, quad (8 numbers, clockwise from the top-most vertex), hbb (x1,y1,x2,y2), "
    "obb (cx,cy,w,h,angle in degrees, le90), difficult (0, 1 hard, 2 truncated)",
    "expression": "referring expression",
    "hbb": "horizontal box x1,y1,x2,y2 in original pixels",
    "quad": "quadrilateral, 8 numbers in original pixels, clockwise from the top-most vertex (or null)",
    "mask": "relative path of a mask image (or null)",
    "category": "class of the referred object or question category (or null)",
    "question": "the question",
    "answer": "the answer (a letter for multiple choice)",
    "rois": "regions of interest (x1,y1,x2,y2 in original pixels) holding the evidence",
    "choices": "multiple-choice options (or null)",
    "messages": "OpenAI chat messages: role, content parts (text, or image index), tool_calls, tool_call_id",
    "task": "kind of data (vqa, caption, classification, temporal, ...)",
    "tools": "JSON list of the tool schemas offered to the model (or null)",
    "metadata": "JSON of source-specific extras (or null)",
}


class PushError(RuntimeError):
    """Publishing failed; the message never contains the token."""


def parse_size(size: int | str) -> int:
    """Bytes from ``500MB``, ``1GiB``, ``2048`` ...

    Example:
        >>> parse_size("500MB"), parse_size("1GiB"), parse_size(10)
        (500000000, 1073741824, 10)
    """
    if isinstance(size, int):
        return size
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?I?B?)\s*", size.upper())
    if m is None:
        raise ValueError(f"Expected a size like '500MB' or an integer, but got {size!r}")
    unit = m.group(2).rstrip("B") or ""
    base = 1024 if unit.endswith("I") else 1000
    power = " KMGT".index(unit[:1] or " ") if unit else 0
    return int(float(m.group(1)) * base**power)


# --------------------------------------------------------------------------- writing


def _embed(path: str, image_root: Path) -> dict[str, Any]:
    # safe_join refuses paths that leave the image root (a hostile source file)
    return {"bytes": safe_join(image_root, path).read_bytes(), "path": path}


def _embed_row(row: dict[str, Any], family: str, image_root: Path) -> int:
    """Replace image paths by embedded images in place; return the bytes read."""
    if family == "conversation":
        row["images"] = [_embed(p, image_root) for p in row["images"]]
        return sum(len(i["bytes"]) for i in row["images"])
    row["image"] = _embed(row["image"], image_root)
    return len(row["image"]["bytes"])


class _ShardWriter:
    """Writes one split as numbered shards, closing a shard once it passes ``max_bytes``."""

    def __init__(self, folder: Path, split: str, schema: pa.Schema, max_bytes: int, row_group: int) -> None:
        self.folder, self.split, self.schema = folder, split, schema
        self.max_bytes, self.row_group = max_bytes, row_group
        self.paths: list[Path] = []
        self.writer: pq.ParquetWriter | None = None
        self.shard_bytes = 0
        self.num_bytes = 0

    def write(self, rows: list[dict[str, Any]]) -> None:
        table = pa.Table.from_pylist(rows, schema=self.schema)
        if self.writer is None:
            path = self.folder / f"{self.split}-{len(self.paths):05d}.partial"
            self.paths.append(path)
            self.writer = pq.ParquetWriter(path, self.schema)
            self.shard_bytes = 0
        self.writer.write_table(table, row_group_size=self.row_group)
        self.shard_bytes += table.nbytes
        self.num_bytes += table.nbytes
        if self.shard_bytes >= self.max_bytes:
            self.writer.close()
            self.writer = None

    def close(self) -> list[str]:
        if self.writer is not None:
            self.writer.close()
        n = len(self.paths)
        names = []
        for k, path in enumerate(self.paths):
            name = f"{self.split}-{k:05d}-of-{n:05d}.parquet"
            path.rename(self.folder / name)
            names.append(name)
        return names


def _write_split(
    records: Iterable[Record],
    folder: Path,
    split: str,
    family: str,
    embed: bool,
    image_root: Path | None,
    report: ConversionReport | None,
    max_bytes: int,
    progress: bool,
) -> dict[str, Any]:
    features = features_for(family, embed_images=embed)
    # images make rows large: small row groups keep reads of a few rows cheap (as datasets does)
    shards = _ShardWriter(folder, split, features.arrow_schema, max_bytes, 100 if embed else 10_000)
    rows: list[dict[str, Any]] = []
    batch_bytes = count = 0
    iterator: Iterable[Record] = records
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(records, desc=f"writing {split}", unit=" records")
    for record in iterator:
        if getattr(record, "family", None) != family:
            raise TypeError(
                f"Expected {family} records in split {split!r}, but record "
                f"{getattr(record, 'id', '?')!r} is a {type(record).__name__}"
            )
        row = record.to_row()
        if embed:
            if image_root is None:
                raise ValueError("embed_images=True needs image_root, the folder the image paths are relative to")
            try:
                batch_bytes += _embed_row(row, family, image_root)
            except (OSError, UnsafePathError) as err:
                # the converter checked its images; one that vanished since is counted, not fatal
                if report is None:
                    raise
                report.skip(f"{split}/{record.id}", "image_unreadable_at_write", str(err))
                report.records_out = max(report.records_out - 1, 0)
                continue
        rows.append(features.encode_example(row))
        count += 1
        if len(rows) >= _BATCH_ROWS or batch_bytes >= _BATCH_BYTES:
            shards.write(rows)
            rows, batch_bytes = [], 0
    if rows:
        shards.write(rows)
    files = shards.close()
    return {"num_examples": count, "num_bytes": shards.num_bytes, "files": files}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _clean_stale(out: Path) -> None:
    """Remove temporaries of killed runs; restore a previous output lost between two renames."""
    for tmp in out.parent.glob(f".{out.name}.tmp-*"):
        m = re.match(r".*\.tmp-(\d+)-", tmp.name)
        if m is None or not _pid_alive(int(m.group(1))):
            shutil.rmtree(tmp, ignore_errors=True)
    for old in sorted(out.parent.glob(f".{out.name}.old-*")):
        m = re.match(r".*\.old-(\d+)-", old.name)
        if m is not None and _pid_alive(int(m.group(1))) and int(m.group(1)) != os.getpid():
            continue
        if not out.exists():
            old.rename(out)
        else:
            shutil.rmtree(old, ignore_errors=True)


def _link_tree(src: Path, dst: Path) -> None:
    """Copy a folder by hard links (a kept config costs no copy), falling back to copies."""

    def link(a: str, b: str) -> None:
        try:
            os.link(a, b)
        except OSError:
            shutil.copy2(a, b)

    shutil.copytree(src, dst, copy_function=link)


def _swap(tmp: Path, out: Path) -> None:
    if not out.exists():
        tmp.rename(out)
        return
    old = out.parent / f".{out.name}.old-{os.getpid()}-{tmp.name.rsplit('-', 1)[-1]}"
    out.rename(old)
    tmp.rename(out)
    shutil.rmtree(old, ignore_errors=True)


def write_dataset(
    records_by_split: Mapping[str, Iterable[Record]],
    out_dir: str | os.PathLike[str],
    *,
    family: str,
    config_name: str = "default",
    embed_images: bool = True,
    image_root: str | os.PathLike[str] | None = None,
    card_info: Mapping[str, Any] | None = None,
    report: ConversionReport | None = None,
    max_shard_size: int | str = DEFAULT_MAX_SHARD_SIZE,
    progress: bool = False,
    fingerprints: Mapping[str, str] | None = None,
    reuse: Collection[str] = (),
) -> dict[str, Any]:
    """Write one config of records as parquet shards with a dataset card, atomically.

    Records are consumed one at a time (memory is bounded by a batch of rows
    and one open shard, whatever the dataset size). Other configs already in
    ``out_dir`` are kept; this config is replaced.

    Args:
        records_by_split: Split name -> records of ``family`` (any iterable, e.g. a generator).
        out_dir: The dataset folder.
        family: ``"detection"``, ``"grounding"``, ``"zoom"`` or ``"conversation"``.
        config_name: The config (one per source).
        embed_images: Embed image bytes (``datasets.Image()``), or keep relative path strings.
        image_root: Folder the records' image paths are relative to (needed to embed).
        card_info: For the card: ``description``, ``license`` (text), ``license_id``
            (a Hub licence id, else ``other``), ``citation``, ``homepage``,
            ``pretty_name``, ``task_categories``, ``tags``, ``source``.
        report: The conversion report to publish (images unreadable now are
            counted in it and skipped; without a report they raise).
        max_shard_size: Bytes (or ``"500MB"``) of Arrow data per shard.
        progress: Show a progress bar per split.
        fingerprints: Split -> fingerprint of its source files, kept in the
            split's entry of ``rsformat_info.json`` together with the split's
            own part of the report (what :func:`reusable_splits` compares).
        reuse: Splits whose shards are taken over from the config already in
            ``out_dir`` (hard links) instead of written: their records are
            not read, and their part of the previous report is added to
            ``report``. Pick them with :func:`reusable_splits`.

    Returns:
        The config's info: family, features, splits with ``num_examples``,
        ``num_bytes`` and ``files``.

    Raises:
        TypeError: a record of another family.
        OSError, UnsafePathError: an image cannot be read and there is no report.
    """
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", config_name):
        raise ValueError(f"Expected a config name of letters, digits, '_', '.', '-', but got {config_name!r}")
    record_class(family)  # validates the family name
    out = Path(out_dir).absolute()
    out.parent.mkdir(parents=True, exist_ok=True)
    _clean_stale(out)
    root = Path(image_root) if image_root is not None else None
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-{os.getpid()}-", dir=out.parent))
    try:
        if out.is_dir():
            for child in out.iterdir():
                if child.is_dir() and child.name != config_name and (child / INFO_FILE).is_file():
                    _link_tree(child, tmp / child.name)
        folder = tmp / config_name
        folder.mkdir()
        splits: dict[str, Any] = {}
        previous = config_info(out, config_name)["splits"] if reuse else {}
        for split, records in records_by_split.items():
            if not re.fullmatch(r"[A-Za-z0-9_]+", split):
                raise ValueError(f"Expected a split name of letters, digits and '_', but got {split!r}")
            if split in reuse:
                splits[split] = _reuse_split(previous, out / config_name, folder, split, report)
                continue
            before = report.summary() if report is not None else None
            splits[split] = _write_split(
                records, folder, split, family, embed_images, root, report, parse_size(max_shard_size), progress
            )
            if fingerprints is not None and split in fingerprints:
                splits[split]["fingerprint"] = fingerprints[split]
                if report is not None and before is not None:
                    splits[split]["report"] = _report_delta(before, report.summary())
        summary = report.summary() if report is not None else None
        info = {
            "config_name": config_name,
            "family": family,
            "embed_images": embed_images,
            "features": features_for(family, embed_images=embed_images).to_dict(),
            "splits": splits,
            "card": dict(card_info or {}),
        }
        (folder / INFO_FILE).write_text(json.dumps(info, indent=2, ensure_ascii=False), encoding="utf-8")
        (folder / REPORT_FILE).write_text(json.dumps(summary, indent=2, ensure_ascii=False), encoding="utf-8")
        _write_top_level(tmp)
        _swap(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return info


def _report_delta(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a report summary added between two snapshots (one split's part)."""
    out: dict[str, Any] = {"source": after["source"]}
    for key in ("records_in", "records_out"):
        out[key] = after[key] - before[key]
    for key in ("skipped", "counters", "cleaning_rules", "labels_mapped"):
        diff = {k: v - before[key].get(k, 0) for k, v in after[key].items()}
        out[key] = {k: v for k, v in diff.items() if v}
    out["messages"] = list(after["messages"][len(before["messages"]) :])
    return out


def _reuse_split(
    previous: Mapping[str, Any], old_folder: Path, folder: Path, split: str, report: ConversionReport | None
) -> dict[str, Any]:
    """Take over a split of the previous output: link its shards, add its part of the report."""
    entry = previous.get(split)
    if entry is None:
        raise ValueError(f"{old_folder.as_posix()}: no split {split!r} to reuse")
    for name in entry["files"]:
        try:
            os.link(old_folder / name, folder / name)
        except OSError:
            shutil.copy2(old_folder / name, folder / name)
    if report is not None and entry.get("report"):
        report.merge(ConversionReport.from_summary(entry["report"]))
    return dict(entry)


def reusable_splits(
    out_dir: str | os.PathLike[str],
    config_name: str,
    fingerprints: Mapping[str, str],
    *,
    family: str,
    embed_images: bool,
) -> list[str]:
    """The splits of an existing config written from the same source files (for ``convert --resume``).

    A split is reusable when the config in ``out_dir`` has the same family and
    image mode, the split's stored fingerprint equals ``fingerprints[split]``
    and all its shards are there.

    Example:
        >>> import tempfile
        >>> from rsformat.records import GroundingRecord
        >>> rec = GroundingRecord("g1", "demo", "train", "g1.png", 64, 64, expression="a", hbb=(1.0, 2.0, 3.0, 4.0))
        >>> out = Path(tempfile.mkdtemp()) / "demo"
        >>> _ = write_dataset({"train": [rec]}, out, family="grounding", config_name="demo", embed_images=False,
        ...                   fingerprints={"train": "abc"}, report=ConversionReport("demo"))
        >>> reusable_splits(out, "demo", {"train": "abc"}, family="grounding", embed_images=False)
        ['train']
        >>> reusable_splits(out, "demo", {"train": "xyz"}, family="grounding", embed_images=False)
        []
    """
    folder = Path(out_dir) / config_name
    try:
        info = config_info(out_dir, config_name)
    except (OSError, ValueError):
        return []
    if info.get("family") != family or bool(info.get("embed_images")) != embed_images:
        return []
    found = []
    for split, fp in fingerprints.items():
        entry = info.get("splits", {}).get(split)
        if (
            entry is not None
            and entry.get("fingerprint") == fp
            and "report" in entry
            and all((folder / name).is_file() for name in entry.get("files", []))
        ):
            found.append(split)
    return found


def _write_top_level(folder: Path) -> None:
    infos = [config_info(folder, name) for name in list_configs(folder)]
    reports = {}
    for info in infos:
        path = folder / info["config_name"] / REPORT_FILE
        reports[info["config_name"]] = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    (folder / REPORT_FILE).write_text(json.dumps(reports, indent=2, ensure_ascii=False), encoding="utf-8")
    (folder / "README.md").write_text(dataset_card(infos, reports), encoding="utf-8")


def list_configs(out_dir: str | os.PathLike[str]) -> list[str]:
    """The configs of a dataset folder written by :func:`write_dataset`, sorted."""
    return sorted(p.parent.name for p in Path(out_dir).glob(f"*/{INFO_FILE}"))


def config_info(out_dir: str | os.PathLike[str], config: str) -> dict[str, Any]:
    """The ``rsformat_info.json`` of a config (family, features, splits, card info)."""
    path = Path(out_dir) / config / INFO_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path.as_posix()}: no such config (configs: {list_configs(out_dir)})")
    return json.loads(path.read_text(encoding="utf-8"))


# --------------------------------------------------------------------------- card


def dataset_card(infos: list[dict[str, Any]], reports: Mapping[str, Any]) -> str:
    """The README.md of a dataset folder: YAML front matter (configs, dataset_info) and prose."""
    import datasets

    tasks: list[str] = []
    tags = ["remote-sensing", "rsformat"]
    licenses = set()
    for info in infos:
        card = info["card"]
        for t in card.get("task_categories") or _TASKS[info["family"]]:
            if t not in tasks:
                tasks.append(t)
        for t in card.get("tags") or []:
            if t not in tags:
                tags.append(t)
        licenses.add(card.get("license_id") or "other")
    front: dict[str, Any] = {
        "license": licenses.pop() if len(licenses) == 1 else "other",
        "task_categories": tasks,
        "tags": tags,
    }
    if len(infos) == 1 and infos[0]["card"].get("pretty_name"):
        front["pretty_name"] = infos[0]["card"]["pretty_name"]
    front["configs"] = []
    front["dataset_info"] = []
    for info in infos:
        name = info["config_name"]
        written = {s: v for s, v in info["splits"].items() if v["files"]}
        entry: dict[str, Any] = {
            "config_name": name,
            "data_files": [{"split": s, "path": f"{name}/{s}-*"} for s in written],
        }
        if len(infos) == 1:
            entry["default"] = True
        front["configs"].append(entry)
        features = datasets.Features.from_dict(info["features"])
        front["dataset_info"].append(
            {
                "config_name": name,
                "features": features._to_yaml_list(),
                "splits": [
                    {"name": s, "num_bytes": v["num_bytes"], "num_examples": v["num_examples"]}
                    for s, v in written.items()
                ],
            }
        )
    lines = ["---", yaml.safe_dump(front, sort_keys=False, allow_unicode=True).rstrip(), "---", ""]
    title = infos[0]["card"].get("pretty_name") if len(infos) == 1 else None
    lines += [f"# {title or 'Remote-sensing vision-language data (rsformat)'}", ""]
    for info in infos:
        if info["card"].get("description"):
            lines += [f"**{info['config_name']}**: {info['card']['description']}", ""]
    lines += [
        "## Structure",
        "",
        "Written by [rsformat](https://github.com/) in its unified schema: boxes in original-image pixels "
        "(float), with the image's width and height. Parquet shards `<config>/<split>-0000K-of-0000N.parquet`.",
        "",
        "```python",
        "from datasets import load_dataset",
        f'ds = load_dataset("<this repo or folder>", name="{infos[0]["config_name"] if infos else "default"}")',
        "```",
        "",
        "| config | family | images |",
        "|---|---|---|",
    ]
    for info in infos:
        mode = "embedded" if info["embed_images"] else "relative paths"
        lines.append(f"| {info['config_name']} | {info['family']} | {mode} |")
    lines += ["", "## Fields", ""]
    for info in infos:
        lines += [f"### {info['config_name']} ({info['family']})", "", "| field | meaning |", "|---|---|"]
        for key in info["features"]:
            lines.append(f"| `{key}` | {_FIELD_DOCS.get(key, '')} |")
        lines.append("")
    lines += ["## Splits", "", "| config | split | examples | shards |", "|---|---|---|---|"]
    for info in infos:
        for s, v in info["splits"].items():
            lines.append(f"| {info['config_name']} | {s} | {v['num_examples']} | {len(v['files'])} |")
    lines += ["", "## Source, license and citation", ""]
    for info in infos:
        card = info["card"]
        lines.append(f"### {info['config_name']}")
        lines.append("")
        if card.get("source"):
            lines.append(f"- Source: {card['source']}")
        if card.get("homepage"):
            lines.append(f"- Homepage: {card['homepage']}")
        lines.append(f"- License: {card.get('license') or 'see the source dataset'}")
        lines.append("")
        if card.get("citation"):
            lines += ["```bibtex", str(card["citation"]).strip(), "```", ""]
    lines += ["## Conversion report", "", "```json", json.dumps(reports, indent=2, ensure_ascii=False), "```", ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------- reading


def load_records(
    out_dir: str | os.PathLike[str],
    config: str,
    split: str,
    *,
    streaming: bool = True,
    cache_dir: str | None = None,
) -> Iterator[Record]:
    """The records of one split, read with ``datasets.load_dataset(out_dir, name=config)``.

    Images come back as written: the relative path (embedded bytes are not
    decoded; read them with :func:`image_bytes`).

    Args:
        out_dir: The dataset folder.
        config: The config name.
        split: The split name.
        streaming: Stream the parquet shards (no Arrow cache is built).
        cache_dir: ``datasets`` cache folder when not streaming.
    """
    import datasets

    info = config_info(out_dir, config)
    cls = record_class(info["family"])
    ds = datasets.load_dataset(str(out_dir), name=config, split=split, streaming=streaming, cache_dir=cache_dir)
    if info["embed_images"]:
        column = "images" if info["family"] == "conversation" else "image"
        image = datasets.Image(decode=False)
        ds = ds.cast_column(column, datasets.List(image) if column == "images" else image)
    for row in ds:
        yield cls.from_row(row)


# --------------------------------------------------------------------------- publishing


def resolve_token(token: str | None = None) -> str | None:
    """The Hub token: the argument, else ``HF_TOKEN``, else the saved ``hf auth login`` token."""
    if token:
        return token
    if os.environ.get("HF_TOKEN"):
        return os.environ["HF_TOKEN"]
    from huggingface_hub import get_token

    return get_token()


def push_dataset(
    out_dir: str | os.PathLike[str],
    repo_id: str,
    *,
    private: bool = False,
    token: str | None = None,
    commit_message: str | None = None,
) -> str:
    """Publish a dataset folder to the Hub as a dataset repository; returns its URL.

    Creates the repository if needed (``exist_ok``), then uploads the folder
    (parquet shards, card, reports) in one commit. The token comes from the
    argument, ``HF_TOKEN`` or the saved login, and never appears in logs or
    error messages.

    Raises:
        FileNotFoundError: ``out_dir`` is not a dataset folder written by :func:`write_dataset`.
        PushError: no token, or the Hub refused (message scrubbed of the token).
    """
    from huggingface_hub import HfApi

    folder = Path(out_dir)
    configs = list_configs(folder)
    if not (folder / "README.md").is_file() or not configs:
        raise FileNotFoundError(f"{folder.as_posix()}: not a dataset folder (no README.md or no config)")
    if not re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", repo_id):
        raise ValueError(f"Expected a repo id like 'user/name', but got {repo_id!r}")
    secret = resolve_token(token)
    if not secret:
        raise PushError("no Hugging Face token: pass --token, set HF_TOKEN or run `hf auth login`")
    message = commit_message or f"Upload {', '.join(configs)} with rsformat"
    logger.info("pushing %s (configs %s) to %s", folder.as_posix(), configs, repo_id)
    try:
        api = HfApi(token=secret)
        api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        api.upload_folder(
            repo_id=repo_id,
            folder_path=str(folder),
            repo_type="dataset",
            commit_message=message,
            # temporaries of a concurrent write are never published
            ignore_patterns=[".*", "**/.*", "*.partial"],
        )
    except Exception as err:  # the Hub's errors may echo request headers
        raise PushError(f"push to {repo_id} failed: {str(err).replace(secret, '***')}") from None
    return f"https://huggingface.co/datasets/{repo_id}"


def image_bytes(cell: Any, root: str | os.PathLike[str] | None = None) -> bytes:
    """The bytes of an image cell: embedded ``{"bytes", "path"}`` or a relative path under ``root``."""
    if isinstance(cell, Mapping) and cell.get("bytes") is not None:
        return bytes(cell["bytes"])
    path = cell.get("path") if isinstance(cell, Mapping) else cell
    if root is None or not path:
        raise FileNotFoundError(f"image {path!r} is not embedded and no image root was given")
    return safe_join(root, str(path)).read_bytes()
