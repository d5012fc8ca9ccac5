#!/usr/bin/env bash
# The README's main command: install igpo-kit into .venv and run the CPU quickstart (tiny dLLM: SFT, then GRPO
# and IGPO with the same rollout budget, then a report). No GPU, no downloads, ~5 minutes on 2 idle cores.
# Extra arguments go to `igpo-kit run` (e.g. -b SEED=1).
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1
bash scripts/install.sh
exec .venv/bin/igpo-kit run recipes/quickstart.gin "$@"
