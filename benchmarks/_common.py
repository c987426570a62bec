"""What the benchmark scripts share: the machine's description and their section of BENCHMARKS.md."""

from __future__ import annotations

import contextlib
import os
import platform
import re
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS_MD = ROOT / "BENCHMARKS.md"

_HEADER = (
    "# Benchmarks\n\n"
    "Speed and memory of our packages against reference tools or straightforward baselines, measured on the "
    "same inputs and checked to give the same results. Each section is written by a script in `benchmarks/` "
    "(see `benchmarks/README.md`); re-run the script to update its section.\n"
)


def cpu_name() -> str:
    """The CPU model (from /proc/cpuinfo where there is one)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def markers(name: str) -> tuple[str, str]:
    """The start and end markers of a script's section."""
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"


def write_section(name: str, section: str, path: Path = BENCHMARKS_MD) -> None:
    """Replace (or append) the section between ``name``'s markers, atomically; other sections are kept.

    ``section`` must begin and end with the markers (see :func:`markers`).
    """
    start, end = markers(name)
    text = path.read_text(encoding="utf-8") if path.exists() else _HEADER
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + section + "\n"
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
