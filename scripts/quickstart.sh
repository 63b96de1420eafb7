#!/usr/bin/env bash
# quickstart.sh -- the README's main job: installs what is missing, builds,
# runs the sweep of experiments/quickstart.cfg (four optimizers x two
# learning rates, a small transformer on the shipped SpamAssassin sample,
# two runs at a time), then prints the report and draws the curves.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh build
build/bin/tftx run experiments/quickstart.cfg -j 2 "$@"
build/bin/tftx report results/quickstart/results.msgpack --plot results/quickstart/curves.svg
echo "curves: results/quickstart/curves.svg (open it in a browser); every run: results/quickstart/results.msgpack"
