#!/usr/bin/env bash
# Installs what starkv builds and tests with: Debian/Ubuntu packages (only those missing) and,
# for the Python binding's tests, pytest and numpy for the python3 on PATH.
# Usage: scripts/install_deps.sh [--bindings]
set -euo pipefail

packages=(cmake g++ pkg-config libzstd-dev liblapacke-dev libopenblas-dev libgtest-dev
          nlohmann-json3-dev)
bindings=0
if [[ "${1:-}" == "--bindings" ]]; then
  bindings=1
  packages+=(swig golang-go junit4 default-jdk-headless python3-dev python3-pytest python3-numpy
             python3-setuptools python3-wheel python3-venv)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]} > 0)); then
  echo "installing: ${missing[*]}"
  sudo_cmd=()
  if [[ $(id -u) -ne 0 ]]; then sudo_cmd=(sudo); fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# The python3 on PATH may not be Debian's (pyenv, a venv): give it what the binding tests import.
if ((bindings)) && command -v python3 >/dev/null; then
  if ! python3 -c 'import pytest, numpy, setuptools, wheel' >/dev/null 2>&1; then
    python3 -m pip install --quiet pytest numpy setuptools wheel
  fi
fi
