#!/usr/bin/env bash
# Runs the node over every scene under SCENES_DIR (one sub-directory per
# scene) with [fusion] dump_features set, so that the feature vectors the
# training script reads are computed by the node's own code.
#   models/fusion/dump_features.sh SCENES_DIR OUT_DIR [NAME]   (NAME: only that scene)
# Writes OUT_DIR/<scene>.jsonl (one line per detected event) and copies each
# scene's labels.csv and scene.toml beside it. The sun test is off
# ([detector.climate] sun_brightening = 0): every heat rise reaches the dump
# and the model learns the sun's as background, while the node in the field
# drops the rises the sun explains before the model sees them (and does not
# show the model the climate of an event such a rise overlaps); the training
# data stays what the committed model was built from.
set -euo pipefail
scenes=$1
out=$2
root="$(cd "$(dirname "$0")/../.." && pwd)"
node="$root/target/release/fieldnode"
[ -x "$node" ] || cargo build --release -q -p node --manifest-path "$root/Cargo.toml"
mkdir -p "$out"
only=${3:-}
for dir in "$scenes"/*/; do
  name=$(basename "$dir")
  [ -n "$only" ] && [ "$name" != "$only" ] && continue
  [ -f "$out/$name.jsonl" ] && continue
  tmp=$(mktemp -d)
  cat > "$tmp/config.toml" <<TOML
[fusion]
exclude = []
dump_features = "$tmp/features.jsonl"
[detector.climate]
sun_brightening = 0.0
[log]
level = "warn"
TOML
  "$node" run --config "$tmp/config.toml" --scene "$dir" --data-dir "$tmp/var" --speed max --exit-at-end >/dev/null
  cp "$dir/labels.csv" "$out/$name.labels.csv"
  cp "$dir/scene.toml" "$out/$name.scene.toml"
  mv "$tmp/features.jsonl" "$out/$name.jsonl"
  rm -rf "$tmp"
  echo "dumped $name: $(wc -l < "$out/$name.jsonl") events" >&2
done
