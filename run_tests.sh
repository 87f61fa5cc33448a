#!/usr/bin/env bash
# Set up .venv (if needed) and run the whole test suite.
# The tests run in parallel worker processes (pytest-xdist): one per CPU, at most 4 (each worker holds
# its own Paddle, and some tests start 2-process trainings); TEST_WORKERS overrides the number
# (TEST_WORKERS=0 runs everything in this one process). Idle workers take queued tests from busy ones
# (--dist worksteal), so the two long overfit tests do not hold up the rest.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$ROOT/scripts/setup_env.sh"
cd "$ROOT"
CPUS="$(nproc 2>/dev/null || echo 1)"
WORKERS="${TEST_WORKERS:-$(( CPUS < 4 ? CPUS : 4 ))}"
exec python -m pytest -q -p no:cacheprovider -n "$WORKERS" --dist worksteal tests "$@"
