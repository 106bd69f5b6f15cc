#!/usr/bin/env bash
# Debian packages the test suite runs for real: the Cortex-M4 toolchain and QEMU board (chapter 8,
# tests/test_m4_*qemu*), g++ for RNNPool's C++ kernel (rnnpool_lite.op.compiled,
# tests/test_compiled_kernel.py), Chromium (tests/test_book_browser.py) and Fashion-MNIST's IDX files
# in /usr/share/datasets/fashion-mnist (rnnpool_lite.data.fashion_mnist). Installs only what is missing.
set -euo pipefail
packages=(gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm g++ chromium dataset-fashion-mnist)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then exit 0; fi
if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  echo "installing ${missing[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "cannot install ${missing[*]} (needs apt-get as root): their tests will skip" >&2
fi
