#!/usr/bin/env bash
# cuda_validate_test.sh -- `tftx validate` of an experiment with
# train.backend = "cuda": where the cuda backend's probe says it cannot run
# (no driver, no device), validation fails with exit 2 and the probe's
# reason; where a GPU is present, it passes. `tftx plugins backend` shows the
# same verdict. Needs TFTX_BIN and TFTX_SOURCE_DIR (ctest sets them).
set -u
cfg="$TFTX_SOURCE_DIR/experiments/quickstart.cfg"
fail() { echo "FAIL: $*"; exit 1; }

line=$("$TFTX_BIN" plugins backend 2>&1 | grep -E '^backend +cuda ') || fail "tftx plugins backend does not list cuda"
echo "plugins: $line"
out=$("$TFTX_BIN" validate "$cfg" --set 'train.backend="cuda"' 2>&1)
rc=$?
echo "validate (rc $rc): $out"
if [[ $line == *" unavailable "* ]]; then
  reason=${line#* -- }
  [[ $reason == "no CUDA driver: "* || $reason == "no CUDA device: "* ]] || fail "unexpected reason: $reason"
  [ "$rc" -eq 2 ] || fail "validate exit $rc, expected 2"
  [[ $out == *"backend plugin 'cuda' cannot run here: $reason"* ]] || fail "validate does not give the probe's reason"
else
  [ "$rc" -eq 0 ] || fail "a CUDA device is present but validate exits $rc"
fi
echo "ok"
