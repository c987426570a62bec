#!/usr/bin/env bash
# Set up the environment and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup_env.sh test
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
exec .venv/bin/python -m pytest "$@"
