#!/usr/bin/env bash
# README command 2: install what is missing, build, run every test.
# Arguments go to ctest (e.g. -L unit, -R 'task', --output-on-failure).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/build.sh"
cd "$root/build"
jobs="${NOVA_TEST_JOBS:-2}"
ctest --output-on-failure -j "$jobs" "$@"
