#!/usr/bin/env bash
# Rebuilds the fusion model from nothing, reproducibly:
#   1. generates the training and held-out scenes with scenegen (fixed seeds;
#      the held-out seeds are never trained on),
#   2. runs the node over each with [fusion] dump_features (dump_features.sh),
#   3. trains and exports the float and 4-bit models (train.py, numpy only),
#   4. measures latency into the manifests (add_latency.py),
#   5. evaluates end to end on the held-out scenes (evaluate.sh).
#   models/fusion/build.sh [WORK_DIR]      (default /tmp/fusion-build; ~6 GB of
#                                           scenes, ~25 min on 2 cores)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
work=${1:-/tmp/fusion-build}
mkdir -p "$work"
cargo build --release -q -p hil-tests --bin scenegen -p node --manifest-path "$root/Cargo.toml"
gen() { [ -f "$3/scene.toml" ] || "$root/target/release/scenegen" --preset "$1" --seed "$2" --duration 3600 --out "$3" >/dev/null; }
for s in $(seq 1001 1016); do gen mixed "$s" "$work/scenes/train/mixed-$s"; done
for s in 2001 2002 2003 2004; do gen wildlife "$s" "$work/scenes/train/wildlife-$s"; done
for s in 3001 3002 3003 3004; do gen human "$s" "$work/scenes/train/human-$s"; done
for s in 4001 4002; do gen machinery "$s" "$work/scenes/train/machinery-$s"; done
for s in $(seq 5001 5008); do gen background "$s" "$work/scenes/train/background-$s"; done
for s in 9001 9002 9003 9004; do gen mixed "$s" "$work/scenes/test/mixed-$s"; done
for s in 9101 9102; do gen background "$s" "$work/scenes/test/background-$s"; done
gen wildlife 9201 "$work/scenes/test/wildlife-9201"
gen human 9301 "$work/scenes/test/human-9301"
"$here/dump_features.sh" "$work/scenes/train" "$work/features/train"
"$here/dump_features.sh" "$work/scenes/test" "$work/features/test"
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q -r "$root/models/requirements.txt"
"$work/venv/bin/python" "$here/train.py" --train "$work/features/train" --test "$work/features/test" --out "$here" --version 1
for m in int4 float; do python3 "$here/add_latency.py" "$here/fusion.$m.manifest.toml"; done
"$here/evaluate.sh" "$work/scenes/test" "$work/eval"
