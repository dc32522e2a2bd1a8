#!/usr/bin/env bash
# End-to-end evaluation of the fusion model on held-out scenes: the node runs
# every scene under SCENES_DIR with each model (4-bit, float, none = triggers
# only) and with each modality removed, and `field-tools score` compares the
# stored events with the scene's labels. Prints one JSON object per run and a
# summary table (per-class F1 summed over scenes, false events per hour of
# background-only scene).
#   models/fusion/evaluate.sh SCENES_DIR [OUT_DIR]
set -euo pipefail
scenes=$1
out=${2:-$(mktemp -d)}
root="$(cd "$(dirname "$0")/../.." && pwd)"
cargo build --release -q -p node -p field-tools --manifest-path "$root/Cargo.toml"
node="$root/target/release/fieldnode"
tools="$root/target/release/field-tools"
mkdir -p "$out"
for model in int4 float none; do
  for without in none audio camera climate; do
    [ "$model" != int4 ] && [ "$without" != none ] && [ "$model" != float ] && continue
    for dir in "$scenes"/*/; do
      name=$(basename "$dir")
      run="$out/$model-$without-$name"
      [ -f "$run.json" ] && continue
      scene="$run.scene"
      rm -rf "$scene" "$run.var"
      mkdir -p "$scene"
      for f in "$dir"/*; do
        case "$(basename "$f")" in
          audio.wav) [ "$without" = audio ] && continue ;;
          camera.y4m) [ "$without" = camera ] && continue ;;
          climate.csv) [ "$without" = climate ] && continue ;;
        esac
        ln -s "$(realpath "$f")" "$scene/"
      done
      {
        echo "[fusion]"
        if [ "$model" = none ]; then echo 'model = ""'; else echo "model = \"$root/models/fusion/fusion.$model.manifest.toml\""; fi
        echo "[log]"
        echo 'level = "warn"'
      } > "$run.toml"
      "$node" run --config "$run.toml" --scene "$scene" --data-dir "$run.var" --speed max --exit-at-end > "$run.log"
      "$tools" score --data-dir "$run.var" --scene "$scene" --format json > "$run.json"
      rm -rf "$run.var" "$scene"
    done
  done
done
python3 - "$out" <<'PY'
import glob, json, os, sys
out = sys.argv[1]
runs = {}
for p in sorted(glob.glob(os.path.join(out, "*.json"))):
    model, without, scene = os.path.basename(p)[:-5].split("-", 2)
    runs.setdefault((model, without), []).append((scene, json.load(open(p))))
print(f"{'model':6} {'without':8} {'wildlife':>9} {'machinery':>9} {'human':>7} {'macro':>6} {'bg FA/h':>8}")
for (model, without), rs in sorted(runs.items()):
    f1s = []
    for c in ["wildlife", "machinery_anomaly", "human_activity"]:
        tp = fp = fn = 0
        for _, r in rs:
            k = next(x for x in r["classes"] if x["class"] == c)
            tp += k["tp"]; fp += k["fp"]; fn += k["fn_"]
        p = tp / (tp + fp) if tp + fp else 0.0
        rc = tp / (tp + fn) if tp + fn else 0.0
        f1s.append(2 * p * rc / (p + rc) if p + rc else 0.0)
    bg = [r for s, r in rs if s.startswith("background")]
    fa = sum(r["false_alarms"] for r in bg) / max(sum(r["hours"] for r in bg), 1e-9) if bg else float("nan")
    print(f"{model:6} {without:8} {f1s[0]:9.3f} {f1s[1]:9.3f} {f1s[2]:7.3f} {sum(f1s)/3:6.3f} {fa:8.2f}")
PY
