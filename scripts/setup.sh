#!/usr/bin/env bash
# Installs the Debian packages Nova builds and tests with. Idempotent: runs
# apt-get update once and installs only what is missing; installs the
# browser test's npm packages when they are missing or their lock changed.
set -euo pipefail

packages=(
  build-essential cmake pkg-config ninja-build
  libcaf-dev
  libnats-dev
  libprotobuf-dev protobuf-compiler
  catch2
  libhiredis-dev
  libcli11-dev libspdlog-dev libfmt-dev nlohmann-json3-dev
  libboost1.81-dev
  nats-server redis-server redis-tools
  chromium
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

# The browser test (tests/browser) runs on Node.js with playwright-core from
# npm. The machines carry Node.js 20; Debian's own is the fallback.
if ! command -v node >/dev/null 2>&1; then missing+=(nodejs); fi
if ! command -v npm >/dev/null 2>&1; then missing+=(npm); fi

if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# playwright-core for the browser test: `npm ci` when node_modules is missing
# or package-lock.json changed since the last install (a stamp records its
# hash). The test fails, not skips, without it.
browser="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/tests/browser"
lock_hash="$(sha256sum "$browser/package-lock.json" | cut -d' ' -f1)"
stamp="$browser/node_modules/.nova-lock-sha256"
if [ ! -d "$browser/node_modules/playwright-core" ] \
   || [ "$(cat "$stamp" 2>/dev/null)" != "$lock_hash" ]; then
  echo "setup: npm ci in tests/browser"
  npm ci --prefix "$browser" --no-audit --no-fund --loglevel=error >/dev/null
  echo "$lock_hash" >"$stamp"
fi
