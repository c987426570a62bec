#!/usr/bin/env bash
# Create (or update) the project's virtual environment in .venv with every
# workspace package installed in editable mode and the given dependency groups.
# Usage: scripts/setup_env.sh [group ...]   (default: test)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
groups=("${@:-test}")
.venv/bin/python -m pip install -q --upgrade "pip>=25.1"
# torch first and pinned: a CPU build where one is available (a local +cpu wheel sorts above
# PyPI's build of the same version); an unpinned resolve could pull a newer CUDA build.
.venv/bin/python -m pip install -q "torch==${TORCH_VERSION:-2.13.0}"
args=()
for g in "${groups[@]}"; do args+=(--group "$g"); done
.venv/bin/python -m pip install -q -e ./rsmetrics -e ./rsformat -e ./rscovlm_ref "${args[@]}"
