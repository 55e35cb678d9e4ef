#!/usr/bin/env bash
# Installs what a fresh Debian machine lacks to build and test the project:
# libclang (bindgen for the rocksdb crate), a C++ compiler, and Debian's Chromium (the
# scoreboard page's screenshot test renders it headless). Idempotent.
set -euo pipefail

need=()
if ! ldconfig -p 2>/dev/null | grep -q 'libclang[-.0-9]*\.so'; then
  need+=(libclang-dev)
fi
command -v c++ >/dev/null 2>&1 || need+=(g++)
command -v make >/dev/null 2>&1 || need+=(make)
[ -x /usr/bin/chromium ] || need+=(chromium)

if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq "${need[@]}"
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo not found; install the Rust toolchain (rustup) first" >&2
  exit 1
fi
for c in rustfmt clippy; do
  if ! cargo "$( [ $c = clippy ] && echo clippy || echo fmt )" --version >/dev/null 2>&1; then
    rustup component add "$c" || true
  fi
done
