#!/usr/bin/env bash
# Create .venv (if missing) and install igpo-kit into it: torch's CPU build first (a bare `torch` requirement
# would pull the multi-GB CUDA build on a CPU machine), then the project with the extras given as "$1" (e.g. test).
# Sourced by scripts/quickstart.sh and scripts/test.sh; on a GPU machine install your CUDA torch first instead.
# Each step says what it does and how long it took (on stderr); IGPO_KIT_INSTALL_QUIET=1 keeps it silent.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1
extras="${1:-}"
say() { [ "${IGPO_KIT_INSTALL_QUIET:-0}" = 1 ] || echo "install: $*" >&2; }
t0=$SECONDS
step_start=$SECONDS
done_in() { say "  ... done in $((SECONDS - step_start))s"; step_start=$SECONDS; }
if [ -x .venv/bin/python ]; then
  say "using the existing virtual environment .venv"
else
  say "[1/4] creating the virtual environment .venv"
  python3 -m venv .venv
  done_in
fi
. .venv/bin/activate
if python -c "import torch" 2>/dev/null; then
  say "[2/4] torch $(python -c 'import torch; print(torch.__version__)') already installed: kept"
else
  say "[2/4] installing torch ${IGPO_KIT_TORCH_VERSION:-2.13.0} (CPU build, ~200 MB download, about a minute)"
  pip install -q "torch==${IGPO_KIT_TORCH_VERSION:-2.13.0}" 2>&1 | grep -v "is ignored" || true
  done_in
fi
say "[3/4] installing igpo-kit${extras:+[$extras]} and its dependencies (transformers, accelerate, deepspeed, datasets, ...)"
pip install -q -e ".${extras:+[$extras]}" 2>&1 | grep -v "is ignored" || true
done_in
say "[4/4] checking the install (import igpo_kit, torch, gin, submitit, math_verify)"
python -c "import igpo_kit, torch, gin, submitit, math_verify"  # fail early if the install did not work
say "ready in $((SECONDS - t0))s: $(.venv/bin/igpo-kit --version 2>/dev/null || echo igpo-kit) in .venv"
