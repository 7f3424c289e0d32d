#!/usr/bin/env bash
# Installs what is missing, then configures and builds Nova into build/.
# Extra arguments go to CMake (e.g. -DNOVA_SANITIZE=ON).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/setup.sh"
generator=()
if command -v ninja >/dev/null 2>&1; then generator=(-G Ninja); fi
if [ ! -f "$root/build/CMakeCache.txt" ]; then
  cmake -S "$root" -B "$root/build" "${generator[@]}" "$@" >/dev/null
elif [ $# -gt 0 ]; then
  cmake -S "$root" -B "$root/build" "$@" >/dev/null
fi
jobs="${NOVA_JOBS:-$(nproc)}"
cmake --build "$root/build" -j "$jobs"
