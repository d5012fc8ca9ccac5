#!/usr/bin/env bash
# Create .venv (if missing) and install igpo-kit into it: torch's CPU build first (a bare `torch` requirement
# would pull the multi-GB CUDA build on a CPU machine), then the project with the extras given as "$1" (e.g. test).
# Sourced by scripts/quickstart.sh and scripts/test.sh; on a GPU machine install your CUDA torch first instead.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1
extras="${1:-}"
[ -x .venv/bin/python ] || python3 -m venv .venv
. .venv/bin/activate
if ! python -c "import torch" 2>/dev/null; then
  pip install -q "torch==${IGPO_KIT_TORCH_VERSION:-2.13.0}" 2>&1 | grep -v "is ignored" || true
fi
pip install -q -e ".${extras:+[$extras]}" 2>&1 | grep -v "is ignored" || true
python -c "import igpo_kit, torch, gin, submitit, math_verify"  # fail early if the install did not work
