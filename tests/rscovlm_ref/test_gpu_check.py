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


def test_gpu_check_inference_rows_run_on_cpu(
    monkeypatch: pytest.MonkeyPatch, processor: object, tiny_config: object
) -> None:
    import importlib.util

    from rscovlm_ref import testing

    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "DEVICE", "cpu")
    state = testing.tiny_qwen25vl(seed=0, config=tiny_config).state_dict()
    rows = module.inference_rows(processor, tiny_config, state, 3)
    assert rows[0][0] == "HF batched == one by one" and rows[0][1] == "3/3" and rows[0][3] is True
