#!/usr/bin/env bash
# Rebuilds the fusion model from nothing, reproducibly, and measures how it
# generalises across scene families:
#   1. scenes from three independent generator families, each over randomised
#      field conditions (a: scenegen with --condition, b: fieldgen, c:
#      synth/wildgen.py), and audio-only scenes mixed from real recordings
#      (real/fetch.sh, real/realmix.py; sources and licences in DATA.md);
#      fixed seeds, held-out seeds never trained on;
#   2. the node dumps its feature vectors over each (dump_features.sh); the
#      training scenes are deleted once dumped;
#   3. cross-family runs: for each family a model trained on the two others
#      (plus the real training clips), tested on all of that family's scenes
#      (report only, models kept in WORK_DIR/cross-a, cross-b, cross-c): what
#      the recipe does on a generator it never saw;
#   4. the committed model: the same recipe trained on all three families
#      and the real training clips, calibrated, exported float and 4-bit
#      (train.py, numpy only), tested on the held-out seeds and sources;
#   5. latency into the manifests (add_latency.py).
# End-to-end figures per condition: models/fusion/evaluate.sh (docs/detection.md).
#   models/fusion/build.sh [WORK_DIR]      (default /tmp/fusion-build)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
work=${1:-/tmp/fusion-build}
mkdir -p "$work"
"$root/scripts/setup" --model-build
cargo build --release -q -p hil-tests --bin scenegen --bin fieldgen -p node --bin fieldnode --manifest-path "$root/Cargo.toml"
[ -x "$work/venv/bin/python" ] || python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q -r "$root/models/requirements.txt"
py="$work/venv/bin/python"
# One BLAS thread: training gives the same bytes whatever the machine's core
# count (threaded sums round differently), and it runs faster than threaded
# on these small matrices.
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
PYTHON="$py" "$here/real/fetch.sh" "$work/real" >/dev/null

scenegen="$root/target/release/scenegen"
fieldgen="$root/target/release/fieldgen"
# make SET NAME COMMAND...: writes the scene into WORK_DIR/scenes/SET/NAME
# (kept for the test sets, deleted after dumping for the training sets) and
# its features into WORK_DIR/features/SET.
make() {
  local set=$1 name=$2
  shift 2
  local dir="$work/scenes/$set/$name"
  [ -f "$work/features/$set/$name.jsonl" ] && return 0
  [ -f "$dir/scene.toml" ] || "$@" --out "$dir" >/dev/null
  "$here/dump_features.sh" "$work/scenes/$set" "$work/features/$set" "$name"
  case $set in *train*) rm -rf "$dir" ;; esac
}
conditions=(calm windy hum rain night random)
d=1200
# Family A: scenegen.
i=0
for s in $(seq 1001 1012); do
  c=${conditions[$((i % 6))]}; i=$((i + 1))
  make a-train "mixed-$c-$s" "$scenegen" --preset mixed --seed "$s" --duration "$d" --condition "$c"
done
for p in wildlife human machinery; do
  for c in windy random; do
    s=$((2000 + i)); i=$((i + 1))
    make a-train "$p-$c-$s" "$scenegen" --preset "$p" --seed "$s" --duration "$d" --condition "$c"
  done
done
for c in "${conditions[@]}"; do
  s=$((5000 + i)); i=$((i + 1))
  make a-train "background-$c-$s" "$scenegen" --preset background --seed "$s" --duration "$d" --condition "$c"
done
for c in none "${conditions[@]}"; do
  s=$((9000 + i)); i=$((i + 1))
  make a-test "mixed-$c-$s" "$scenegen" --preset mixed --seed "$s" --duration "$d" --condition "$c"
done
# Family B: fieldgen.
i=0
for s in $(seq 1001 1018); do
  c=${conditions[$((i % 6))]}; i=$((i + 1))
  make b-train "field-$c-$s" "$fieldgen" --seed "$s" --duration "$d" --condition "$c"
done
for c in "${conditions[@]}"; do
  s=$((5000 + i)); i=$((i + 1))
  make b-train "field-background-$c-$s" "$fieldgen" --seed "$s" --duration "$d" --condition "$c" --background-only
done
for c in "${conditions[@]}"; do
  s=$((9000 + i)); i=$((i + 1))
  make b-test "field-$c-$s" "$fieldgen" --seed "$s" --duration "$d" --condition "$c"
done
# Family C: wildgen.
i=0
for s in $(seq 2001 2018); do
  c=${conditions[$((i % 6))]}; i=$((i + 1))
  make c-train "wild-$c-$s" "$py" "$here/synth/wildgen.py" --seed "$s" --duration "$d" --condition "$c"
done
for c in "${conditions[@]}"; do
  s=$((6000 + i)); i=$((i + 1))
  make c-train "wild-background-$c-$s" "$py" "$here/synth/wildgen.py" --seed "$s" --duration "$d" --condition "$c" --background-only
done
for c in "${conditions[@]}"; do
  s=$((9100 + i)); i=$((i + 1))
  make c-test "wild-$c-$s" "$py" "$here/synth/wildgen.py" --seed "$s" --duration "$d" --condition "$c"
done
# Real recordings (audio only).
i=0
for s in $(seq 1 60); do
  w=(calm moderate strong); w=${w[$((i % 3))]}; i=$((i + 1))
  make r-train "real-$w-$s" "$py" "$here/real/realmix.py" --clips "$work/real" --split train --seed "$s" --duration 900 --wind "$w"
done
for s in 101 102; do
  for w in calm strong; do
    make r-test "real-$w-$s" "$py" "$here/real/realmix.py" --clips "$work/real" --split eval --seed "$s" --duration 900 --wind "$w"
  done
done

f="$work/features"
# The four trainings run side by side, up to BUILD_JOBS at once (default:
# the machine's cores). Each uses one core (one BLAS thread) and writes its
# own directory, so the bytes do not depend on how many run together.
# (nproc obeys OMP_NUM_THREADS, set to 1 above: ask it without.)
jobs_max=${BUILD_JOBS:-$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)}
running=0
failed=0
# Frees a slot: waits for whichever training ends first. The count of
# running trainings is kept here (counting the lines of `jobs -rp` in a
# command substitution counts one too many).
reap() {
  wait -n || failed=1
  running=$((running - 1))
}
train() {
  local log=$1
  shift
  while [ "$running" -ge "$jobs_max" ]; do reap; done
  "$py" "$here/train.py" "$@" > "$log" &
  running=$((running + 1))
}
# cross-X: trained on the two families other than X.
train "$work/cross-a.log" --train "$f/b-train" "$f/c-train" "$f/r-train" --test "a=$f/a-train,$f/a-test" "real=$f/r-test" --out "$work/cross-a"
train "$work/cross-b.log" --train "$f/a-train" "$f/c-train" "$f/r-train" --test "b=$f/b-train,$f/b-test" "real=$f/r-test" --out "$work/cross-b"
train "$work/cross-c.log" --train "$f/a-train" "$f/b-train" "$f/r-train" --test "c=$f/c-train,$f/c-test" "real=$f/r-test" --out "$work/cross-c"
# The committed model: every family and the real training scenes.
train "$work/committed.log" --train "$f/a-train" "$f/b-train" "$f/c-train" "$f/r-train" --test "a=$f/a-test" "b=$f/b-test" "c=$f/c-test" "real=$f/r-test" --out "$here" --version 18
while [ "$running" -gt 0 ]; do reap; done
[ "$failed" = 0 ] || { echo "a training failed: see $work/*.log" >&2; exit 1; }
for m in int4 float; do python3 "$here/add_latency.py" "$here/fusion.$m.manifest.toml"; done
