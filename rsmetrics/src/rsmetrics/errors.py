"""Exception hierarchy of rsmetrics: catch :class:`RSMetricsError` for all of them."""

from __future__ import annotations

__all__ = ["InvalidInputError", "RSMetricsError", "RecordError"]


class RSMetricsError(Exception):
    """Base class of every error raised by rsmetrics on purpose."""


class InvalidInputError(RSMetricsError, ValueError):
    """An argument has the wrong shape, type or value."""


class RecordError(RSMetricsError, ValueError):
    """A record of an input file is malformed; the message names the file and line."""

    def __init__(self, source: str, line: int | None, reason: str) -> None:
        self.source = source
        self.line = line
        self.reason = reason
        where = f"{source}:{line}" if line is not None else source
        super().__init__(f"{where}: {reason}")
