#!/usr/bin/env bash
# Create .venv and install p5rec (editable) with its development tools.
#
# torch is installed first so that pip keeps it: by default torch==2.13.0, which on these
# CPU machines is the local CPU wheel. On a GPU machine install the CUDA build you want
# into .venv first (it is kept), or set P5REC_TORCH to any pip requirement
# (e.g. P5REC_TORCH="torch==2.9.1"), or P5REC_TORCH=skip to leave torch alone.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  spec=${P5REC_TORCH:-torch==2.13.0}
  if [ "$spec" != skip ]; then
    echo "installing $spec"
    .venv/bin/python -m pip install -q "$spec"
  fi
fi
echo "installing p5rec and its dependencies"
.venv/bin/python -m pip install -q -e ".[dev]"
.venv/bin/python -c "import p5rec, torch; print(f'p5rec {p5rec.__version__} ready (torch {torch.__version__})')"
