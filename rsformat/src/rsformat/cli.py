"""The ``rsformat`` command: list, convert, split, validate, render, push.

Exit status: 0 on success, 1 when ``validate`` finds problems, 2 on an error
(the message names the file or record).

Example:
    >>> main(["render", "/nonexistent", "--index", "0"])
    2
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

__all__ = ["ConvertError", "main", "plan_tasks"]

# messages (chunks of records, or the end of a task) a worker may run ahead of the writer
_QUEUE_CHUNKS = 8
# records per message
_CHUNK = 64
# most units in one task: small enough that a worker's queue holds a whole task, so that
# every worker keeps converting while the writer consumes the tasks before its own
_TASK_UNITS = 64
# seconds between checks that a silent worker is still alive
_POLL_S = 5.0


class ConvertError(RuntimeError):
    """A converter worker failed."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rsformat", description="Remote-sensing VL datasets in one schema.")
    sub = p.add_subparsers(dest="command", required=True)

    sub.add_parser("list", help="list the source converters")

    c = sub.add_parser("convert", help="convert a source folder into a dataset folder")
    c.add_argument("source", help="converter name (see `rsformat list`)")
    c.add_argument("--input", required=True, help="the source folder")
    c.add_argument("--output", required=True, help="the dataset folder to write (atomically replaced)")
    c.add_argument("--splits", help="comma-separated splits (default: every split found)")
    c.add_argument(
        "--num-proc",
        type=int,
        default=1,
        help="worker processes: a split's files (or, for converters without work units, whole splits) "
        "are shared among them; the output is the same as with one process",
    )
    c.add_argument(
        "--resume",
        action="store_true",
        help="keep the splits already in the output that were written from the same source files "
        "(same fingerprint: file names, sizes, modification times, converter options); convert the others",
    )
    c.add_argument(
        "--embed-images",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="embed image bytes (default) or keep relative paths",
    )
    c.add_argument("--config-name", help="config name (default: the source name)")
    c.add_argument("--max-shard-size", default="500MB", help="parquet shard size (default 500MB)")
    c.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="converter option (repeatable; VALUE is JSON or a string)",
    )
    c.add_argument("--no-progress", action="store_true", help="no progress bars")

    s = sub.add_parser("split", help="convert a detection source and cut its images into DOTA-style patches")
    s.add_argument("source", help="a detection converter (dota, fair1m, dior_r, ...)")
    s.add_argument("--input", required=True, help="the source folder")
    s.add_argument("--output", required=True, help="the dataset folder to write (atomically replaced)")
    s.add_argument("--preset", choices=["ss1024", "ss512"], default="ss1024", help="window size and gap")
    s.add_argument("--size", type=int, help="window size (overrides the preset)")
    s.add_argument("--gap", type=int, help="overlap between windows (overrides the preset)")
    s.add_argument("--iof-threshold", type=float, default=0.7)
    s.add_argument(
        "--clip",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="clip truncated objects to the window (DOTA devkit, default) or keep them whole (mmrotate)",
    )
    s.add_argument("--naming", choices=["mmrotate", "devkit"], default="mmrotate", help="patch names")
    s.add_argument("--splits", help="comma-separated splits (default: every split found)")
    s.add_argument("--config-name", help="config name (default: <source>_<preset>)")
    s.add_argument("--option", action="append", default=[], metavar="KEY=VALUE", help="converter option (repeatable)")
    s.add_argument("--no-progress", action="store_true", help="no progress bars")

    v = sub.add_parser("validate", help="check every record of a dataset folder")
    v.add_argument("dir")
    v.add_argument("--image-root", help="folder of path-mode images (default: DIR)")
    v.add_argument("--no-decode", action="store_true", help="read image headers only")
    v.add_argument("--json", action="store_true", help="print the report as JSON")
    v.add_argument("--no-progress", action="store_true")

    t = sub.add_parser("stats", help="records, classes, box and image sizes of a dataset folder")
    t.add_argument("dir")
    t.add_argument("--config", action="append", help="only this config (repeatable)")
    t.add_argument("--split", action="append", help="only this split (repeatable)")
    t.add_argument("--json", help="write the statistics as JSON here")
    t.add_argument("--plot-dir", help="write <config>_<split>.png plots here (matplotlib)")

    r = sub.add_parser("render", help="show a record as a model sees it")
    r.add_argument("dir")
    r.add_argument("--config", help="config (default: the only one)")
    r.add_argument("--split", default="train")
    r.add_argument("--index", type=int, default=0)
    r.add_argument("--frame", default="smart", help="smart, smart:MIN:MAX, 504x504 or grid1000")
    r.add_argument("--style", default="plain-hbb", help="plain-hbb, plain-quad, json-obb ...")
    r.add_argument("--tool-format", choices=["openai", "qwen"], default="openai")

    u = sub.add_parser("push", help="publish a dataset folder to the Hugging Face Hub")
    u.add_argument("dir")
    u.add_argument("repo_id")
    u.add_argument("--private", action="store_true")
    u.add_argument("--message", help="commit message")
    return p


# --------------------------------------------------------------------------- list


def _cmd_list(_: argparse.Namespace) -> int:
    from rsformat.converters import CONVERTERS

    if not CONVERTERS:
        print("no converters registered")
    width = max((len(n) for n in CONVERTERS), default=0)
    for name in sorted(CONVERTERS):
        cls = CONVERTERS[name]
        print(f"{name:<{width}}  {cls.family:<12}  {cls.description}")
    return 0


# --------------------------------------------------------------------------- convert


Task = tuple[str, list[str]]
"""A unit of work for a process: a split and a contiguous run of its units."""


def plan_tasks(units_by_split: dict[str, list[str]], num_proc: int, max_units: int | None = None) -> list[Task]:
    """Cut each split's units into contiguous tasks: at least ``num_proc`` per split, at most ``max_units`` each.

    Tasks are in output order (split after split, units in order), so
    converting them one after the other gives the records of a single
    process.

    Example:
        >>> plan_tasks({"train": list("abcdefg"), "val": ["val"]}, 3)
        [('train', ['a', 'b', 'c']), ('train', ['d', 'e']), ('train', ['f', 'g']), ('val', ['val'])]
        >>> [len(u) for _, u in plan_tasks({"train": [str(i) for i in range(10)]}, 2, max_units=3)]
        [3, 3, 2, 2]
    """
    max_units = max_units or _TASK_UNITS
    tasks: list[Task] = []
    for split, units in units_by_split.items():
        n = len(units)
        if n == 0:
            tasks.append((split, []))
            continue
        parts = min(n, max(num_proc, -(-n // max_units)))
        size, extra = divmod(n, parts)
        start = 0
        for k in range(parts):
            end = start + size + (k < extra)
            tasks.append((split, units[start:end]))
            start = end
    return tasks


def _serve(source: str, input_dir: str, options: dict[str, Any], tasks: list[Task], queue: Any) -> None:
    """Worker: convert its tasks in order, sending records in chunks, then the task's report."""
    try:
        from rsformat.converters import ConversionReport, get_converter

        converter = get_converter(source)(input_dir, **options)
        for split, units in tasks:
            report = ConversionReport(source)
            chunk: list[Any] = []
            for record in converter.records_for_units(split, units, report):
                chunk.append(record)
                if len(chunk) >= _CHUNK:
                    queue.put(("records", chunk))
                    chunk = []
            if chunk:
                queue.put(("records", chunk))
            queue.put(("report", report))
    except BaseException as err:  # reported to the parent, which stops the run
        where = f"split {split!r}" if "split" in locals() else "startup"
        queue.put(("error", f"{where}: {type(err).__name__}: {err}"))


class _Workers:
    """Tasks converted by ``num_proc`` worker processes, consumed in output order.

    Task ``k`` goes to worker ``k % num_proc``, which converts its tasks one
    after the other and sends their records through its own bounded queue: a
    worker ahead of the writer waits (memory stays bounded: at most
    ``num_proc * _QUEUE_CHUNKS`` chunks of records in flight), and the writer
    reads the tasks in order, so the output is that of one process. The
    workers' reports are merged into ``report`` task by task, in order.
    """

    def __init__(
        self, source: str, input_dir: str, options: dict[str, Any], tasks: list[Task], num_proc: int, report: Any
    ) -> None:
        self.tasks = tasks
        self.report = report
        self.next = 0  # the next task to read
        ctx = mp.get_context()
        n = min(num_proc, len(tasks))
        self.queues = [ctx.Queue(maxsize=_QUEUE_CHUNKS) for _ in range(n)]
        self.procs = [
            ctx.Process(target=_serve, args=(source, input_dir, options, tasks[w::n], self.queues[w]), daemon=True)
            for w in range(n)
        ]
        for proc in self.procs:
            proc.start()

    def _get(self, w: int) -> tuple[str, Any]:
        import queue as queue_mod

        while True:
            try:
                return self.queues[w].get(timeout=_POLL_S)
            except queue_mod.Empty:
                proc = self.procs[w]
                if not proc.is_alive():
                    try:  # it may have sent its last message just before exiting
                        return self.queues[w].get(timeout=1.0)
                    except queue_mod.Empty:
                        raise ConvertError(f"worker process {w} died (exit code {proc.exitcode})") from None

    def records(self, split: str) -> Iterator[Any]:
        """The records of ``split``: its tasks, read in order (splits must be read in task order)."""
        while self.next < len(self.tasks) and self.tasks[self.next][0] == split:
            w = self.next % len(self.procs)
            yielded = 0
            while True:
                kind, payload = self._get(w)
                if kind == "records":
                    # counted as they arrive, so that the writer's corrections (an image
                    # unreadable at write time) apply to an up-to-date count
                    self.report.records_out += len(payload)
                    yielded += len(payload)
                    yield from payload
                elif kind == "report":
                    payload.records_out -= yielded
                    self.report.merge(payload)
                    break
                else:
                    raise ConvertError(payload)
            self.next += 1

    def close(self) -> None:
        """Stop the workers (they are done, or the run failed)."""
        for proc in self.procs:
            if proc.is_alive():
                proc.terminate()
        for proc in self.procs:
            proc.join(timeout=10)
        for q in self.queues:
            q.cancel_join_thread()
            q.close()


def _options(pairs: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"Expected --option KEY=VALUE, but got {pair!r}")
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


def _convert_bundle(args: argparse.Namespace, options: dict[str, Any]) -> int:
    from rsformat.converters.rscovlm_bundle import convert_bundle

    wanted = [x.strip() for x in args.splits.split(",") if x.strip()] if args.splits else None
    reports = convert_bundle(
        args.input,
        args.output,
        datasets=wanted,
        embed_images=args.embed_images,
        check_images=bool(options.get("check_images", True)),
        max_shard_size=args.max_shard_size,
        progress=not args.no_progress,
        on_done=lambda name, report: print(report.to_text()),
    )
    missing = sorted(name for name, r in reports.items() if r.skipped.get("missing"))
    written = sorted(set(reports) - set(missing))
    print(
        f"bundle: wrote {len(written)} configs ({', '.join(written) or 'none'}); not found: {', '.join(missing) or 'none'}"
    )
    print(f"dataset written to {Path(args.output).as_posix()}")
    return 0


def _cmd_convert(args: argparse.Namespace) -> int:
    from rsformat.converters import ConversionReport, get_converter
    from rsformat.hub import reusable_splits, write_dataset

    cls = get_converter(args.source)
    options = _options(args.option)
    if cls.family == "mixed":  # a bundle of several sources: one config per sub-dataset
        return _convert_bundle(args, options)
    converter = cls(args.input, **options)
    found = converter.splits()
    splits = [s.strip() for s in args.splits.split(",") if s.strip()] if args.splits else found
    unknown = sorted(set(splits) - set(found))
    if unknown:
        raise ValueError(f"{args.input}: splits {unknown} not found (found: {found})")
    report = ConversionReport(cls.name)
    fingerprints = {s: converter.fingerprint(s) for s in splits}
    config_name = args.config_name or cls.name
    reuse: list[str] = []
    if args.resume:
        reuse = reusable_splits(
            args.output, config_name, fingerprints, family=cls.family, embed_images=args.embed_images
        )
        for s in reuse:
            print(f"  {s}: unchanged since the last conversion, kept (--resume)")
    todo = [s for s in splits if s not in reuse]
    workers = None
    records_by_split: dict[str, Any] = {s: () for s in splits}
    if args.num_proc > 1 and todo:
        tasks = plan_tasks({s: converter.units(s) for s in todo}, args.num_proc)
        if len(tasks) > 1:
            workers = _Workers(cls.name, args.input, options, tasks, args.num_proc, report)
            records_by_split.update({s: workers.records(s) for s in todo})
    if workers is None:
        records_by_split.update({s: converter.records(s, report) for s in todo})
    card = {
        "source": cls.name,
        "description": cls.description,
        "license": cls.license,
        "citation": cls.citation,
        "pretty_name": getattr(cls, "pretty_name", None) or cls.name,
    }
    try:
        info = write_dataset(
            records_by_split,
            args.output,
            family=cls.family,
            config_name=config_name,
            embed_images=args.embed_images,
            image_root=args.input,
            card_info=card,
            report=report,
            max_shard_size=args.max_shard_size,
            progress=not args.no_progress,
            fingerprints=fingerprints,
            reuse=reuse,
        )
    finally:
        if workers is not None:
            workers.close()
    print(report.to_text())
    for split, meta in info["splits"].items():
        print(f"  wrote {split}: {meta['num_examples']} records in {len(meta['files'])} shards")
    print(f"dataset written to {Path(args.output).as_posix()}")
    return 0


# --------------------------------------------------------------------------- split / validate / render / push


def _cmd_split(args: argparse.Namespace) -> int:
    import tempfile

    from rsformat.converters import ConversionReport, get_converter
    from rsformat.hub import write_dataset
    from rsformat.split import PRESETS, split_records

    cls = get_converter(args.source)
    if cls.family != "detection":
        raise ValueError(f"{args.source}: splitting needs a detection source, but its family is {cls.family!r}")
    converter = cls(args.input, **_options(args.option))
    found = converter.splits()
    splits = [x.strip() for x in args.splits.split(",") if x.strip()] if args.splits else found
    size, gap = PRESETS[args.preset]
    size, gap = args.size or size, args.gap if args.gap is not None else gap
    report = ConversionReport(cls.name)
    config = (
        args.config_name or f"{cls.name}_{args.preset if args.size is None and args.gap is None else f'{size}_{gap}'}"
    )
    # patches are embedded in the dataset, so their PNGs only live in a scratch folder
    with tempfile.TemporaryDirectory(prefix="rsformat-split-") as scratch:
        options = dict(
            size=size, gap=gap, iof_threshold=args.iof_threshold, clip=args.clip, naming=args.naming, report=report
        )
        records_by_split = {
            sp: split_records(converter.records(sp, report), args.input, Path(scratch) / sp, **options) for sp in splits
        }
        card = {
            "source": cls.name,
            "description": f"{cls.description} Cut into {size} px patches with {gap} px overlap.",
            "license": cls.license,
            "citation": cls.citation,
            "pretty_name": f"{cls.name} ({size} px patches)",
        }
        info = write_dataset(
            {sp: _rooted(recs, sp) for sp, recs in records_by_split.items()},
            args.output,
            family="detection",
            config_name=config,
            embed_images=True,
            image_root=scratch,
            card_info=card,
            report=report,
            progress=not args.no_progress,
        )
    print(report.to_text())
    for split, meta in info["splits"].items():
        print(f"  wrote {split}: {meta['num_examples']} patches")
    print(f"dataset written to {Path(args.output).as_posix()} (config {config})")
    return 0


def _rooted(records: Iterator[Any], split: str) -> Iterator[Any]:
    """Patch records with image paths relative to the scratch root (one folder per split)."""
    from dataclasses import replace

    for rec in records:
        yield replace(rec, image=f"{split}/{rec.image}")


def _cmd_stats(args: argparse.Namespace) -> int:
    from rsformat.stats import dataset_stats, plot_stats, stats_table

    stats = dataset_stats(args.dir, configs=args.config, splits=args.split)
    print(stats_table(stats))
    if args.json:
        from rsmetrics.io._common import atomic_write_json

        atomic_write_json(args.json, stats)
        print(f"json: {args.json}")
    if args.plot_dir:
        for config, splits in stats.items():
            for split, s in splits.items():
                path = plot_stats(s, Path(args.plot_dir) / f"{config}_{split}.png", title=f"{config}/{split}")
                print(f"plot: {path}")
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    from rsformat.validate import validate_dataset

    if not Path(args.dir).is_dir():
        raise FileNotFoundError(f"{args.dir}: no such dataset folder")
    report = validate_dataset(
        args.dir, image_root=args.image_root, decode_images=not args.no_decode, progress=not args.no_progress
    )
    print(json.dumps(report.summary(), indent=2) if args.json else report.to_text())
    return report.exit_code


def _read_row(folder: Path, config: str, split: str, index: int) -> dict[str, Any]:
    import pyarrow.parquet as pq

    from rsformat.hub import config_info

    info = config_info(folder, config)
    meta = info["splits"].get(split)
    if meta is None:
        raise ValueError(f"{folder.as_posix()}/{config}: no split {split!r} (splits: {sorted(info['splits'])})")
    skip = index
    for name in meta["files"]:
        pf = pq.ParquetFile(folder / config / name)
        n = pf.metadata.num_rows
        if skip < n:
            for group in range(pf.num_row_groups):
                rows = pf.metadata.row_group(group).num_rows
                if skip < rows:
                    return pf.read_row_group(group).slice(skip, 1).to_pylist()[0]
                skip -= rows
        skip -= n
    raise ValueError(
        f"{folder.as_posix()}/{config}/{split}: index {index} out of range ({meta['num_examples']} records)"
    )


def _categories(folder: Path, config: str) -> list[str]:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from rsformat.hub import config_info

    names: set[str] = set()
    for meta in config_info(folder, config)["splits"].values():
        for name in meta["files"]:
            column = pq.read_table(folder / config / name, columns=["objects"])["objects"]
            names.update(pc.unique(pc.struct_field(pc.list_flatten(column), "category")).to_pylist())
    return sorted(names)


def _cmd_render(args: argparse.Namespace) -> int:
    from rsformat.hub import config_info, list_configs
    from rsformat.records import record_class
    from rsformat.render import RenderFrame, RenderStyle, format_messages, render_conversation

    folder = Path(args.dir)
    configs = list_configs(folder)
    if not configs:
        raise FileNotFoundError(f"{folder.as_posix()}: not a dataset folder written by rsformat")
    config = args.config or (configs[0] if len(configs) == 1 else None)
    if config is None:
        raise ValueError(f"{folder.as_posix()} holds several configs {configs}: choose one with --config")
    info = config_info(folder, config)
    row = _read_row(folder, config, args.split, args.index)
    record = record_class(info["family"]).from_row(row)
    frame = RenderFrame.parse(args.frame)
    style = RenderStyle.parse(args.style)
    style = RenderStyle(style.output, style.box, tool_format=args.tool_format)
    categories = _categories(folder, config) if info["family"] == "detection" else None
    conv = render_conversation(record, frame, style, categories=categories)
    meta = json.loads(conv.metadata or "{}")
    size = meta.get("input_size")
    print(
        f"# {config}/{args.split}[{args.index}] id={record.id} frame={args.frame} style={args.style}"
        + (f" input={size[0]}x{size[1]}" if size else "")
    )
    print(format_messages(conv.messages, conv.images))
    return 0


def _cmd_push(args: argparse.Namespace) -> int:
    from rsformat.hub import push_dataset

    url = push_dataset(args.dir, args.repo_id, private=args.private, commit_message=args.message)
    print(f"pushed to {url}")
    return 0


_COMMANDS = {
    "list": _cmd_list,
    "convert": _cmd_convert,
    "split": _cmd_split,
    "validate": _cmd_validate,
    "stats": _cmd_stats,
    "render": _cmd_render,
    "push": _cmd_push,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        return _COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("rsformat: interrupted", file=sys.stderr)
        return 130
    except (OSError, ValueError, TypeError, KeyError, RuntimeError) as err:
        # the message already names the file or record; a traceback would bury it
        print(f"rsformat {args.command}: error: {err}", file=sys.stderr)
        if os.environ.get("RSFORMAT_DEBUG"):
            raise
        return 2


if __name__ == "__main__":
    sys.exit(main())
