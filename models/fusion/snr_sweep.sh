#!/usr/bin/env bash
# Detection against loudness, on real recordings: the held-out real sources
# mixed by real/realmix.py at fixed signal-to-floor ratios (one 5 dB range
# per row), in calm air, moderate and strong wind; the node replays each scene with
# the committed model (own) and with the triggers alone (none), and
# `field-tools score` counts the labels found (overlapped by any stored
# event) and the events classed right.
#   models/fusion/snr_sweep.sh BUILD_DIR [OUT_DIR]
# BUILD_DIR is build.sh's (its venv and BUILD_DIR/real, the fetched clips).
# Scenes are 15 minutes, seeds 201 and 202 of the eval split (no scene of
# build.sh or evaluate.sh uses them), deleted once scored; one JSON score per
# run is kept in OUT_DIR. Prints a table.
set -euo pipefail
build=$1
out=${2:-$build/snr}
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
py="$build/venv/bin/python"
cargo build --release -q -p node --bin fieldnode -p field-tools --bin field-tools --manifest-path "$root/Cargo.toml"
mkdir -p "$out"
for snr in -10:-5 -5:0 0:5 5:10 10:15 15:20 20:25; do
  for wind in calm moderate strong; do
    for seed in 201 202; do
      name="$snr-$wind-$seed"
      todo=""
      for model in own none; do
        [ -f "$out/$model-$name.json" ] || todo="$todo $model"
      done
      [ -z "$todo" ] && continue
      scene=$(mktemp -d)
      "$py" "$here/real/realmix.py" --clips "$build/real" --split eval --seed "$seed" --duration 900 \
        --wind "$wind" --snr="$snr" --out "$scene" > /dev/null
      for model in $todo; do
        manifest=""
        [ "$model" = own ] && manifest="$here/fusion.int4.manifest.toml"
        "$here/score_scene.sh" "$scene" "$manifest" "$out/$model-$name.json"
      done
      rm -rf "$scene"
    done
  done
done

python3 - "$out" <<'PY'
import glob, json, os, sys
out = sys.argv[1]
CL = ["wildlife", "human_activity", "machinery_anomaly"]
rows = {}
for p in glob.glob(os.path.join(out, "*.json")):
    model, rest = os.path.basename(p)[:-5].split("-", 1)
    snr, wind, _seed = rest.rsplit("-", 2)
    rows.setdefault((float(snr.split(":")[0]), snr, wind, model), []).append(json.load(open(p)))
print("| signal to floor, dB | wind | model | wildlife found / classed right (labels) | human | machinery | false events per hour |")
print("|---|---|---|---|---|---|---|")
for key in sorted(rows):
    _, snr, wind, model = key
    rs = rows[key]
    cells = []
    for c in CL:
        ks = [next(x for x in r["classes"] if x["class"] == c) for r in rs]
        n = sum(k["labels"] for k in ks)
        found = sum(k["detected"] for k in ks)
        tp = sum(k["tp"] for k in ks)
        cells.append(f"{found / n:.2f} / {tp / n:.2f} ({n})" if n else "-")
    hours = sum(r["hours"] for r in rs)
    fa = sum(r["false_alarms"] for r in rs)
    print(f"| {snr} | {wind} | {model} | " + " | ".join(cells) + f" | {fa / hours:.1f} |")
PY
