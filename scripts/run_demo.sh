#!/usr/bin/env bash
# Set up the environment and run the main job on embedded synthetic data.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup_env.sh test
exec .venv/bin/python -m rsmetrics.demo --output outputs/demo "$@"
