#!/usr/bin/env bash
# Set up the environment and run the main job on embedded synthetic data:
# 1. score a generated evaluation set with rsmetrics;
# 2. write synthetic sources, convert them with rsformat, validate and load them back;
# 3. train the tiny Qwen2.5-VL on the converted data for a few dozen steps (CPU) and reload it;
# 4. evaluate the trained checkpoint on the zoom questions (Zoom-in Chain engine, LRS-VQA scoring).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup_env.sh test
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
.venv/bin/python -m rsmetrics.demo --output outputs/demo/metrics "$@"
.venv/bin/python -m rsformat.demo --output outputs/demo/data
.venv/bin/rscovlm-ref prepare-example outputs/cpu_example_data
.venv/bin/rscovlm-ref train rscovlm_ref/configs/cpu_example.yaml
.venv/bin/rscovlm-ref eval outputs/cpu_example/final outputs/cpu_example_data/dataset --config lrs_vqa --split test \
    --out outputs/cpu_example/eval_lrs_vqa --min-pixels 12544 --max-pixels 50176 --max-new-tokens 32 --overwrite
