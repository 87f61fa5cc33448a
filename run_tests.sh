#!/usr/bin/env bash
# Set up .venv (if needed) and run the whole test suite (or the test files / folders given).
# The tests run in parallel worker processes (pytest-xdist): one more than the CPUs, at most 4 (many
# tests wait on subprocesses, e.g. the commands of the manual and 2-process trainings, so one extra worker
# keeps the CPUs busy; each worker holds its own Paddle); TEST_WORKERS overrides the number
# (TEST_WORKERS=0 runs everything in this one process). pytest.ini says what is collected and how the
# workers share the files.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$ROOT/scripts/setup_env.sh"
cd "$ROOT"
CPUS="$(nproc 2>/dev/null || echo 1)"
WORKERS="${TEST_WORKERS:-$(( CPUS < 3 ? CPUS + 1 : 4 ))}"
exec python -m pytest -q -p no:cacheprovider -n "$WORKERS" "$@"
