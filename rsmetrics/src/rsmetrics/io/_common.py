"""Shared pieces of the readers and writers: the read report and atomic writes.

Private module: the public names are re-exported by :mod:`rsmetrics.io`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, ClassVar

from rsmetrics.errors import RecordError

__all__ = ["ReadReport", "atomic_open", "atomic_write_json", "atomic_write_text", "fail_or_skip", "source_name"]


@dataclass
class ReadReport:
    """What a reader read and what it skipped.

    Attributes:
        files: number of files read (for in-memory input: 1).
        objects: number of records returned: objects of a label file,
            detections of a submission, JSON objects of a JSONL file.
        skipped: number of skipped records by reason, e.g. ``{"bad_number": 2}``.
            Strict readers raise instead, so their reports have none.
        errors: the messages of the first :attr:`max_errors` skipped records,
            each naming the file and line.
        missing_files: expected files that were absent (e.g. a ``Task1_<class>.txt``
            of a class without detections); they count as empty.

    Example:
        >>> report = ReadReport()
        >>> report.skip(RecordError("a.txt", 3, "bad"), "bad_number")
        >>> report.skipped, report.errors, report.n_skipped
        ({'bad_number': 1}, ['a.txt:3: bad'], 1)
    """

    files: int = 0
    objects: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    missing_files: list[str] = field(default_factory=list)

    max_errors: ClassVar[int] = 20

    @property
    def n_skipped(self) -> int:
        """Total number of skipped records, all reasons together."""
        return sum(self.skipped.values())

    def skip(self, error: RecordError, reason: str) -> None:
        """Count one skipped record under ``reason`` and keep its message if there is room."""
        self.skipped[reason] = self.skipped.get(reason, 0) + 1
        if len(self.errors) < self.max_errors:
            self.errors.append(str(error))

    def merge(self, other: ReadReport) -> ReadReport:
        """Add the counts of ``other`` to this report (in place) and return it."""
        self.files += other.files
        self.objects += other.objects
        for reason, count in other.skipped.items():
            self.skipped[reason] = self.skipped.get(reason, 0) + count
        room = self.max_errors - len(self.errors)
        self.errors.extend(other.errors[: max(room, 0)])
        self.missing_files.extend(other.missing_files)
        return self


def fail_or_skip(error: RecordError, reason: str, strict: bool, report: ReadReport | None) -> None:
    """Raise ``error`` in strict mode; otherwise count the record as skipped under ``reason``."""
    if strict:
        raise error
    if report is not None:
        report.skip(error, reason)


def source_name(path: str | os.PathLike[str]) -> str:
    """The file name used in error messages: the path as given."""
    return os.fspath(path)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Open a temporary sibling of ``path`` for writing; move it over ``path`` on success.

    The parent directories are created. The temporary file lives in the same
    directory, so :func:`os.replace` is an atomic rename: readers see either the
    old file or the complete new one, and a run killed mid-write leaves the old
    file intact (plus, at worst, a ``.tmp`` file). On an exception the temporary
    file is removed and the exception propagates.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    # a random part keeps concurrent writers of the same target from sharing a temp file
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    binary = "b" in mode
    # os.open with 0o666 honours the umask, unlike tempfile.mkstemp's 0o600
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with open(
            fd, "wb" if binary else "w", encoding=None if binary else encoding, newline=None if binary else ""
        ) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> None:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_open`)."""
    with atomic_open(path, "w", encoding=encoding) as fh:
        fh.write(text)


def atomic_write_json(path: str | os.PathLike[str], payload: object, indent: int | None = 2) -> None:
    """Write ``payload`` as JSON atomically; numpy arrays and result objects are converted."""
    import json

    def default(value: object) -> object:
        if hasattr(value, "tolist"):
            return value.tolist()
        if hasattr(value, "to_dict"):
            return value.to_dict()
        if isinstance(value, (set, tuple)):
            return list(value)
        return str(value)

    atomic_write_text(path, json.dumps(payload, indent=indent, default=default) + "\n")


def save_figure(fig: Any, path: str | os.PathLike[str]) -> Path:
    """Write a matplotlib figure as PNG atomically (a temporary sibling, then a rename); returns the path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp.png")
    try:
        fig.savefig(tmp, bbox_inches="tight")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out
