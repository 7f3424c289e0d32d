#!/usr/bin/env bash
# Installs the Debian packages Nova builds and tests with. Idempotent: runs
# apt-get update once and installs only what is missing.
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

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
