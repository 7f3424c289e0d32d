#!/usr/bin/env bash
# README command 1: install what is missing, build, run the embedded demo.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/build.sh"
exec "$root/build/bin/nova" demo "$@"
