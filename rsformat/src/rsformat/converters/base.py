"""What every converter shares: the registry, the conversion report, safe paths, cleaning rules.

A converter is a small class registered under a source name. It reads a
source folder and *yields* records (memory independent of the dataset size);
it never writes files itself: :func:`rsformat.hub.write_dataset` does, once,
atomically. Bad input never stops a run and is never lost silently: every
skipped record, clipped box and mapped label is counted in the
:class:`ConversionReport` with a reason, and the first messages (naming the
file and record) are kept.

Example:
    >>> report = ConversionReport("demo")
    >>> report.skip("a.txt:3", "bad_number", "coordinate 'x' is not a number")
    >>> report.count("boxes_clipped")
    >>> report.summary()["skipped"], report.summary()["counters"]
    ({'bad_number': 1}, {'boxes_clipped': 1})
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from rsformat.records import Record

__all__ = [
    "CONVERTERS",
    "CleaningRule",
    "ConversionReport",
    "Converter",
    "UnsafePathError",
    "apply_rules",
    "get_converter",
    "register",
    "safe_join",
]


class UnsafePathError(ValueError):
    """A path in a source file points outside the dataset root."""


def safe_join(root: str | os.PathLike[str], relative: str) -> Path:
    """``root / relative``, refusing absolute paths and ``..`` that escape the root.

    Example:
        >>> safe_join("/data/dota", "images/P0001.png").as_posix()
        '/data/dota/images/P0001.png'
        >>> safe_join("/data/dota", "../etc/passwd")  # doctest: +IGNORE_EXCEPTION_DETAIL
        Traceback (most recent call last):
        ...
        rsformat.converters.base.UnsafePathError: '../etc/passwd' escapes the dataset root /data/dota
    """
    base = Path(root).resolve()
    rel = relative.replace("\\", "/")
    if rel.startswith("/") or re.match(r"^[A-Za-z]:", rel):
        raise UnsafePathError(f"{relative!r} is an absolute path; expected a path inside {Path(root).as_posix()}")
    target = (base / rel).resolve()
    if target != base and base not in target.parents:
        raise UnsafePathError(f"{relative!r} escapes the dataset root {Path(root).as_posix()}")
    return target


@dataclass
class ConversionReport:
    """Counts of everything a conversion did: records in and out, skips by reason, fixes."""

    source: str
    records_in: int = 0
    records_out: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)
    rules: dict[str, int] = field(default_factory=dict)
    labels_mapped: dict[str, int] = field(default_factory=dict)
    messages: list[str] = field(default_factory=list)

    max_messages: ClassVar[int] = 50

    def skip(self, where: str, reason: str, detail: str = "") -> None:
        """Count one skipped record (``where`` names the file and record)."""
        self.skipped[reason] = self.skipped.get(reason, 0) + 1
        if len(self.messages) < self.max_messages:
            self.messages.append(f"{where}: {reason}" + (f": {detail}" if detail else ""))

    def count(self, name: str, n: int = 1) -> None:
        """Count something done to the data (``boxes_clipped``, ``empty_images_kept``...)."""
        if n:
            self.counters[name] = self.counters.get(name, 0) + n

    def mapped(self, raw: str, canonical: str) -> None:
        """Count a label written differently in the source than in our vocabulary."""
        key = f"{raw} -> {canonical}"
        self.labels_mapped[key] = self.labels_mapped.get(key, 0) + 1

    def merge(self, other: ConversionReport) -> ConversionReport:
        """Add another report (of a worker process) into this one."""
        self.records_in += other.records_in
        self.records_out += other.records_out
        for mine, theirs in (
            (self.skipped, other.skipped),
            (self.counters, other.counters),
            (self.rules, other.rules),
            (self.labels_mapped, other.labels_mapped),
        ):
            for k, v in theirs.items():
                mine[k] = mine.get(k, 0) + v
        room = self.max_messages - len(self.messages)
        self.messages.extend(other.messages[: max(room, 0)])
        return self

    @classmethod
    def from_summary(cls, summary: dict[str, Any]) -> ConversionReport:
        """The report back from :meth:`summary` (e.g. a split's report kept in ``rsformat_info.json``).

        Example:
            >>> r = ConversionReport("demo", records_in=3, records_out=2)
            >>> r.skip("a.txt:1", "bad_number")
            >>> ConversionReport.from_summary(r.summary()) == r
            True
        """
        return cls(
            str(summary.get("source", "")),
            int(summary.get("records_in", 0)),
            int(summary.get("records_out", 0)),
            dict(summary.get("skipped", {})),
            dict(summary.get("counters", {})),
            dict(summary.get("cleaning_rules", {})),
            dict(summary.get("labels_mapped", {})),
            list(summary.get("messages", [])),
        )

    def summary(self) -> dict[str, Any]:
        """A JSON-ready dict of the report."""
        return {
            "source": self.source,
            "records_in": self.records_in,
            "records_out": self.records_out,
            "skipped": dict(sorted(self.skipped.items())),
            "counters": dict(sorted(self.counters.items())),
            "cleaning_rules": dict(sorted(self.rules.items())),
            "labels_mapped": dict(sorted(self.labels_mapped.items())),
            "messages": list(self.messages),
        }

    def to_text(self) -> str:
        """A printable summary."""
        s = self.summary()
        lines = [f"conversion report: {self.source}", f"  records in {s['records_in']}, out {s['records_out']}"]
        for title, key in (
            ("skipped", "skipped"),
            ("counters", "counters"),
            ("cleaning rules applied", "cleaning_rules"),
            ("labels mapped", "labels_mapped"),
        ):
            if s[key]:
                lines.append(f"  {title}: " + ", ".join(f"{k}={v}" for k, v in s[key].items()))
        for m in s["messages"][:10]:
            lines.append(f"    {m}")
        return "\n".join(lines)


@dataclass(frozen=True)
class CleaningRule:
    """A named, counted text rewrite (the paper's rule-based cleaning, Sec. III-B2)."""

    name: str
    apply: Callable[[str], str]
    description: str = ""


def apply_rules(text: str, rules: Iterable[CleaningRule], report: ConversionReport | None = None) -> str:
    """Apply rules in order, counting in ``report`` each rule that changed the text."""
    for rule in rules:
        new = rule.apply(text)
        if new != text and report is not None:
            report.rules[rule.name] = report.rules.get(rule.name, 0) + 1
        text = new
    return text


class Converter:
    """Base class of the converters: yields records from a source folder.

    Subclasses set ``name`` (the source name), ``family`` (the record family),
    ``description``, ``license`` and ``citation`` (for the dataset card) and
    implement :meth:`splits` and :meth:`records`.

    Work units (optional): a converter whose records come from independent
    files also implements :meth:`units` (the ids of those files, in output
    order) and :meth:`records_for_units`; ``convert --num-proc N`` then cuts
    each split's units into contiguous chunks converted by N processes, and
    writes the records in the same order as one process. By default a split
    is a single unit (``--num-proc`` then spreads whole splits over processes).
    The contract: concatenating ``records_for_units(split, chunk)`` over
    consecutive chunks of ``units(split)`` gives ``records(split)``, and the
    reports of the chunks add up to the report of the split.
    """

    name: ClassVar[str] = ""
    family: ClassVar[str] = ""
    description: ClassVar[str] = ""
    license: ClassVar[str] = "see the source dataset's terms"
    citation: ClassVar[str] = ""

    def __init__(self, root: str | os.PathLike[str], **options: Any) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"{self.name}: expected the source folder {self.root.as_posix()} to exist")
        self.options = options

    def splits(self) -> list[str]:
        """The splits found under the root."""
        raise NotImplementedError

    def records(self, split: str, report: ConversionReport) -> Iterator[Record]:
        """Yield the records of one split, counting everything in ``report``."""
        raise NotImplementedError

    def units(self, split: str) -> list[str]:
        """The units of work of ``split``, in output order (default: the whole split, ``[split]``)."""
        return [split]

    def records_for_units(self, split: str, units: Sequence[str], report: ConversionReport) -> Iterator[Record]:
        """Yield the records of some units of ``split`` (a contiguous run of :meth:`units`), in order.

        The default (a split is one unit) yields :meth:`records` of the split.
        """
        return self.records(split, report)

    def source_files(self, split: str) -> Iterator[Path]:
        """The files the records of ``split`` are read from (default: every file under the root)."""
        for folder, dirs, files in os.walk(self.root):
            dirs.sort()
            for name in sorted(files):
                yield Path(folder) / name

    def fingerprint(self, split: str) -> str:
        """A hash of the converter, its options and the split's source files (relative path, size, mtime).

        ``convert --resume`` reuses a split already written with the same fingerprint.
        It reads no file contents: a file rewritten with the same size and
        modification time is not noticed.
        """
        from rsformat import __version__

        h = hashlib.sha256()
        h.update(json.dumps([__version__, self.name, split, self.options], sort_keys=True, default=str).encode())
        for path in self.source_files(split):
            try:
                st = path.stat()
            except OSError:
                continue
            rel = path.relative_to(self.root).as_posix()
            h.update(f"\0{rel}\0{st.st_size}\0{st.st_mtime_ns}".encode())
        return h.hexdigest()[:32]


CONVERTERS: dict[str, type[Converter]] = {}


def register(cls: type[Converter]) -> type[Converter]:
    """Class decorator adding a converter to :data:`CONVERTERS` under its ``name``."""
    if not cls.name or cls.name in CONVERTERS:
        raise ValueError(f"converter name {cls.name!r} is empty or already registered")
    CONVERTERS[cls.name] = cls
    return cls


def get_converter(name: str) -> type[Converter]:
    """The converter class registered under ``name`` (importing all converter modules first)."""
    from rsformat import converters  # noqa: F401  (registers every module)

    try:
        return CONVERTERS[name]
    except KeyError:
        raise ValueError(f"Expected a source among {sorted(CONVERTERS)}, but got {name!r}") from None
