#!/usr/bin/env bash
# Replays one scene in the node at --speed max, with a model or with the
# triggers alone, and writes what `field-tools score` makes of the events it
# stored (JSON). Used by evaluate.sh and snr_sweep.sh.
#   models/fusion/score_scene.sh SCENE MANIFEST OUT_JSON   (MANIFEST "": triggers alone)
# Needs the release binaries fieldnode and field-tools in target/release.
# OUT_JSON appears only once complete; on a failed run, or when the node
# does not load the model, the node's log is printed and the exit status is
# non-zero.
set -euo pipefail
scene=$1
manifest=$2
res=$3
root="$(cd "$(dirname "$0")/../.." && pwd)"
bin="$root/target/release"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp" "$res.part"' EXIT
printf '[fusion]\nmodel = "%s"\n[log]\nlevel = "warn"\n' "$manifest" > "$tmp/config.toml"
(cd "$root" && "$bin/fieldnode" run --config "$tmp/config.toml" --scene "$scene" --data-dir "$tmp/var" --speed max --exit-at-end > "$tmp/run.log" 2>&1) ||
  { echo "score_scene.sh: fieldnode failed on $scene:" >&2; cat "$tmp/run.log" >&2; exit 1; }
# A model the node refuses (a feature layout or shape this build does not
# compute) leaves it on its triggers alone: that is not a score of the model.
if [ -n "$manifest" ] && grep -q "model not loaded" "$tmp/run.log"; then
  echo "score_scene.sh: the node did not load $manifest:" >&2
  cat "$tmp/run.log" >&2
  exit 1
fi
"$bin/field-tools" score --data-dir "$tmp/var" --scene "$scene" --format json > "$res.part"
mv "$res.part" "$res"
