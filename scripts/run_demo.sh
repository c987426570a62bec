#!/usr/bin/env bash
# Set up the environment and run the main job on embedded synthetic data:
# score a generated evaluation set with rsmetrics, then write synthetic sources,
# convert them with rsformat, validate and load them back.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup_env.sh test
.venv/bin/python -m rsmetrics.demo --output outputs/demo/metrics "$@"
.venv/bin/python -m rsformat.demo --output outputs/demo/data
