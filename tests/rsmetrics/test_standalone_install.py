"""`pip install ./rsmetrics` in a clean virtual environment pulls numpy and shapely only,
and rsmetrics' own tests pass there (reference tools absent, so those tests skip)."""

from __future__ import annotations

import os
import subprocess
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUNNERS = {"pytest", "hypothesis", "iniconfig", "pluggy", "packaging", "pygments", "attrs", "sortedcontainers", "pip"}


@pytest.mark.slow
def test_clean_venv_holds_only_numpy_and_shapely(tmp_path):
    if os.environ.get("RSMETRICS_SKIP_VENV_TEST"):
        pytest.skip("RSMETRICS_SKIP_VENV_TEST is set")
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    py = env_dir / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    install = subprocess.run(
        [py, "-m", "pip", "install", "-q", str(ROOT / "rsmetrics")], capture_output=True, text=True, env=env
    )
    assert install.returncode == 0, install.stderr[-2000:]
    freeze = subprocess.run(
        [py, "-m", "pip", "list", "--format=freeze"], capture_output=True, text=True, env=env
    ).stdout
    names = {line.split("==")[0].lower() for line in freeze.split()}
    assert names - {"pip", "setuptools"} == {"rsmetrics", "numpy", "shapely"}
    # now add the test runner (not a runtime dependency) and run rsmetrics' suite from the installed wheel
    runner = subprocess.run(
        [py, "-m", "pip", "install", "-q", "pytest", "hypothesis"], capture_output=True, text=True, env=env
    )
    assert runner.returncode == 0, runner.stderr[-2000:]
    tests = subprocess.run(
        [py, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=", "--import-mode=importlib",
         "-k", "not clean_venv", str(ROOT / "tests" / "rsmetrics")],
        capture_output=True, text=True, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert tests.returncode == 0, tests.stdout[-3000:]
    assert " passed" in tests.stdout
    installed = subprocess.run(
        [py, "-c", "import rsmetrics, sys; print(rsmetrics.__file__)"], capture_output=True, text=True, env=env
    )
    assert str(env_dir) in installed.stdout  # the wheel, not the source tree
