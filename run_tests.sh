#!/usr/bin/env bash
# Set up .venv (if needed) and run the whole test suite.
# The tests run in parallel worker processes (pytest-xdist): one per CPU, at most 4 (each worker holds
# its own Paddle, and some tests start 2-process trainings); TEST_WORKERS overrides the number
# (TEST_WORKERS=0 runs everything in this one process). A worker takes a whole test file at a time, in
# collection order (--dist loadfile --no-loadscope-reorder): the tests of a file run in order in one
# process, as without workers (the README commands build on each other's outputs), and the two long
# overfit files, which tests/conftest.py collects first, start side by side.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$ROOT/scripts/setup_env.sh"
cd "$ROOT"
CPUS="$(nproc 2>/dev/null || echo 1)"
WORKERS="${TEST_WORKERS:-$(( CPUS < 4 ? CPUS : 4 ))}"
# Test files or folders among the arguments (e.g. tests/core/test_val.py::test_tta_runs) replace "tests".
TARGET=(tests)
for arg in "$@"; do
    if [[ "$arg" != -* && -e "${arg%%::*}" ]]; then TARGET=(); break; fi
done
exec python -m pytest -q -p no:cacheprovider -n "$WORKERS" --dist loadfile --no-loadscope-reorder "${TARGET[@]}" "$@"
