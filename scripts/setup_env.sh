#!/usr/bin/env bash
# Create (or reuse) .venv at the repository root and install the project into it.
# Sourced by run_demo.sh and run_tests.sh. Re-installs only when requirements/setup.py change.
# Optional variables (scripts/setup_env26.sh uses them): SETUP_VENV, the environment's folder
# (default .venv); SETUP_PADDLE, a pip requirement replacing requirements.txt's paddlepaddle line
# (e.g. paddlepaddle==2.6.2).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${SETUP_VENV:-$ROOT/.venv}"
PADDLE_REQ="${SETUP_PADDLE:-}"
PY_BOOT="${PYTHON:-python3}"

if [ ! -x "$VENV/bin/python" ]; then
    echo "[setup] creating $VENV with $($PY_BOOT --version 2>&1)"
    "$PY_BOOT" -m venv "$VENV"
fi
PY="$VENV/bin/python"
STAMP="$VENV/.paddleseg_ext_installed"
WANT="$( (cat "$ROOT/requirements.txt" "$ROOT/requirements-test.txt" "$ROOT/setup.py"
          if [ -n "$PADDLE_REQ" ]; then echo "$PADDLE_REQ"; fi) | sha1sum | cut -d' ' -f1)"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
    echo "[setup] installing dependencies into $VENV (first run takes a few minutes)"
    "$PY" -m pip install -q --upgrade pip
    grep -v '^paddlepaddle' "$ROOT/requirements.txt" > "$VENV/.req-nopaddle.txt"
    if "$PY" -c "import paddle" 2>/dev/null; then
        # Keep a paddlepaddle(-gpu) the user installed by hand.
        "$PY" -m pip install -q -r "$VENV/.req-nopaddle.txt" -r "$ROOT/requirements-test.txt"
    elif [ -n "$PADDLE_REQ" ]; then
        "$PY" -m pip install -q "$PADDLE_REQ" -r "$VENV/.req-nopaddle.txt" -r "$ROOT/requirements-test.txt"
    else
        "$PY" -m pip install -q -r "$ROOT/requirements.txt" -r "$ROOT/requirements-test.txt"
    fi
    "$PY" -m pip install -q --no-deps -e "$ROOT"
    echo "$WANT" > "$STAMP"
fi
export PATH="$VENV/bin:$PATH"
