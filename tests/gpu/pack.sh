#!/usr/bin/env bash
# tests/gpu/pack.sh -- ready a build to run on a GPU machine that has the
# CUDA toolkit but not the Debian libraries tftx links (libconfig, msgpack-c,
# OpenBLAS, cmocka, cJSON, utf8proc, libstemmer): copies each shared library
# that the build's programs and plugins need, other than the C library and
# the CUDA libraries (the GPU machine's own), into .gpulibs/, and packs
# them with the build directory into .gpupack.tar.xz. There,
# TFTX_GPU_PREBUILT=1 bash tests/gpu/run.sh unpacks and uses them.
#
#   bash tests/gpu/pack.sh [BUILD_DIR]     # default build-gpu
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build-gpu}
rm -rf .gpulibs && mkdir .gpulibs
find "$build" -type f \( -name '*.so' -o -perm -u+x \) ! -path '*/CMakeFiles/*' -print0 |
  xargs -0 ldd 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// {print $3}' | sort -u |
  grep -vE '/(libc|libm|libdl|librt|libpthread|ld-linux-x86-64|libstdc\+\+|libgcc_s|libcuda|libcudart|libcublas|libcublasLt)\.so' |
  while read -r lib; do cp -L "$lib" .gpulibs/; done
ls .gpulibs
# one compressed file (OpenBLAS alone is 35 MB), without the object files
tar -cJf .gpupack.tar.xz --exclude='*.o' .gpulibs "$build"
du -sh .gpupack.tar.xz
