"""scripts/gpu_check.py on a machine without CUDA: a clear "needs a GPU" message and exit 2, no crash."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "gpu_check.py"


def test_gpu_check_needs_a_gpu_message() -> None:
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present: the script would run its checks")
    proc = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert "gpu_check needs a GPU" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_gpu_check_imports_are_lazy() -> None:
    tree = ast.parse(SCRIPT.read_text())
    top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    names = {a.name.split(".")[0] for n in top for a in n.names} | {
        (n.module or "").split(".")[0] for n in top if isinstance(n, ast.ImportFrom)
    }
    assert not names & {"torch", "transformers", "rscovlm_ref", "flash_attn", "liger_kernel", "numpy", "PIL"}
