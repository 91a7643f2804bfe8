#!/usr/bin/env bash
# The shared library exports only the public C API: every defined dynamic symbol starts with
# "starkv_" (hidden visibility keeps C++ internals, and the libraries we link, out of the ABI).
set -euo pipefail
lib=$1
bad=$(nm -D --defined-only "$lib" | awk '{print $3}' | grep -v '^starkv_' | grep -v '^_init$\|^_fini$\|^_edata$\|^_end$\|^__bss_start$' || true)
if [[ -n "$bad" ]]; then
  echo "symbols outside the C API are exported:"; echo "$bad" | head -20; exit 1
fi
echo "$(nm -D --defined-only "$lib" | grep -c ' T starkv_') starkv_ functions exported, nothing else"
