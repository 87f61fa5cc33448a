#!/usr/bin/env bash
# Create (or reuse) .venv26 at the repository root: the same requirements as .venv, with
# paddlepaddle 2.6.2 (the oldest supported Paddle) instead of 3.3.1. Used by .ci/run to run the
# fast test suite on Paddle 2.6 too. Source it (then `python` is .venv26's) or run it.
ROOT26="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SETUP_VENV="$ROOT26/.venv26" SETUP_PADDLE="paddlepaddle==2.6.2" source "$ROOT26/scripts/setup_env.sh"
