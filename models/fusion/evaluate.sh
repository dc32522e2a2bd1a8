#!/usr/bin/env bash
# End-to-end evaluation per condition, for docs/detection.md: the node runs
# every evaluation scene at --speed max and `field-tools score` compares its
# stored events with the scene's labels.
#
# Scenes (generated here from seeds that no model was trained on; each is
# deleted once scored):
#   - the three generator families (a = scenegen, b = fieldgen, c =
#     synth/wildgen.py), conditions calm, windy, hum, rain, night: one
#     30-minute scene with labelled events and one 2-hour scene of background
#     only (false events per hour);
#   - each missing modality: the random-condition event scene without
#     audio.wav, camera.y4m or climate.csv;
#   - real recordings (audio only): BUILD_DIR/scenes/r-test (calm and strong
#     wind), made by build.sh from the held-out sources, and the same scenes
#     resampled to 8 kHz by sox (r8-*; `scripts/setup --model-build`, which
#     build.sh runs, installs sox); twelve more mixtures of the held-out
#     sources, calm, moderate and strong wind (rx-*).
# Models:
#   - own:   the committed model (trained on all three families): own-family
#            figures on a, b and c (seeds it was not trained on); on the real
#            scenes, sources it never heard;
#   - cross: the model trained on the two other families only
#            (BUILD_DIR/cross-a, cross-b, cross-c), so no scene is scored by
#            a model that saw its generator;
#   - none:  triggers alone.
#   models/fusion/evaluate.sh BUILD_DIR [OUT_DIR]
#   EVAL_MODELS="own cross" models/fusion/evaluate.sh ...   (a subset of the models)
# Prints a table; one JSON score per run is kept in OUT_DIR.
set -euo pipefail
models=${EVAL_MODELS:-own cross none}
build=$1
out=${2:-$build/eval}
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cargo build --release -q -p node --bin fieldnode -p field-tools --bin field-tools -p hil-tests --bin scenegen --bin fieldgen --manifest-path "$root/Cargo.toml"
bin="$root/target/release"
mkdir -p "$out"

# run SCENE NAME MODEL: scores the node's events on SCENE into OUT/MODEL-NAME.json.
run() {
  local scene=$1 name=$2 model=$3
  local res="$out/$model-$name.json"
  [ -f "$res" ] && return 0
  local manifest
  case $model in
    own) manifest="$here/fusion.int4.manifest.toml" ;;
    # The real sources were never trained on: own is cross there.
    cross) case $name in a-*|b-*|c-*) ;; *) return 0 ;; esac
           manifest="$build/cross-${name%%-*}/fusion.int4.manifest.toml" ;;
    none) manifest="" ;;
  esac
  "$here/score_scene.sh" "$scene" "$manifest" "$res"
}

# without SCENE MODALITY: a copy of SCENE (links) without that sensor's file.
without() {
  local src=$1 m=$2 dst="$1-no-$2"
  rm -rf "$dst"
  mkdir -p "$dst"
  for f in "$src"/*; do
    case "$(basename "$f")" in
      audio.wav) [ "$m" = audio ] && continue ;;
      camera.y4m) [ "$m" = camera ] && continue ;;
      climate.csv) [ "$m" = climate ] && continue ;;
    esac
    ln -s "$(realpath "$f")" "$dst/"
  done
  echo "$dst"
}

# missing "MODELS" NAME...: true when a score of one of MODELS on one of the
# named scenes is not in OUT yet (a scene is generated only then).
missing() {
  local want=$1 n m
  shift
  for n in "$@"; do
    for m in $want; do
      case $m-$n in
        cross-[abc]-*|own-*|none-*) [ -f "$out/$m-$n.json" ] || return 0 ;;
      esac
    done
  done
  return 1
}

scratch="$out/scenes"
mkdir -p "$scratch"
seed=70000
for fam in a b c; do
  for c in calm windy hum rain night random; do
    seed=$((seed + 1))
    ev="$scratch/$fam-$c"
    bg="$scratch/$fam-$c-bg"
    case $fam in
      a) gen=("$bin/scenegen" --preset mixed --condition "$c")
         genbg=("$bin/scenegen" --preset background --condition "$c") ;;
      b) gen=("$bin/fieldgen" --condition "$c")
         genbg=("$bin/fieldgen" --condition "$c" --background-only) ;;
      c) gen=("$build/venv/bin/python" "$here/synth/wildgen.py" --condition "$c")
         genbg=("$build/venv/bin/python" "$here/synth/wildgen.py" --condition "$c" --background-only) ;;
    esac
    if missing "$models" "$fam-$c" ||
      { [ "$c" = random ] && missing "own cross" "$fam-no-audio" "$fam-no-camera" "$fam-no-climate"; }; then
      rm -rf "$ev"
      "${gen[@]}" --seed "$seed" --duration 1800 --out "$ev" >/dev/null
    fi
    for model in $models; do
      [ -d "$ev" ] && run "$ev" "$fam-$c" "$model"
    done
    if [ "$c" = random ]; then
      for m in audio camera climate; do
        for model in own cross; do
          if missing "$model" "$fam-no-$m"; then
            run "$(without "$ev" "$m")" "$fam-no-$m" "$model"
          fi
        done
      done
      rm -rf "$ev"-no-*
    else
      if missing "$models" "$fam-$c-bg"; then
        rm -rf "$bg"
        "${genbg[@]}" --seed "$((seed + 500))" --duration 7200 --out "$bg" >/dev/null
      fi
      for model in $models; do
        [ -d "$bg" ] && run "$bg" "$fam-$c-bg" "$model"
      done
      rm -rf "$bg"
    fi
    rm -rf "$ev"
  done
done
for dir in "$build"/scenes/r-test/*/; do
  name="r-$(basename "$dir" | sed 's/^real-//')"
  for model in $models; do
    run "$dir" "$name" "$model"
  done
done
# The same real scenes recorded at 8 kHz (sox resamples the audio): nothing
# above 4 kHz, as from a node or a recorder set to a low rate. -D: no
# dither, whose noise is random on every run.
for dir in "$build"/scenes/r-test/*/; do
  name="r8-$(basename "$dir" | sed 's/^real-//')"
  low="$scratch/$name"
  rm -rf "$low"
  mkdir -p "$low"
  cp "$dir/labels.csv" "$dir/scene.toml" "$low/"
  sox "$dir/audio.wav" -D -r 8000 "$low/audio.wav"
  for model in $models; do
    run "$low" "$name" "$model"
  done
  rm -rf "$low"
done

# More mixtures of the held-out real sources (rx-*): seeds 103 to 106, each
# in calm air, moderate and strong wind.
for seed in 103 104 105 106; do
  for wind in calm moderate strong; do
    name="rx-$wind-$seed"
    missing "$models" "$name" || continue
    scene="$scratch/$name"
    rm -rf "$scene"
    "$build/venv/bin/python" "$here/real/realmix.py" --clips "$build/real" --split eval --seed "$seed" \
      --duration 900 --wind "$wind" --out "$scene" >/dev/null
    for model in $models; do
      run "$scene" "$name" "$model"
    done
    rm -rf "$scene"
  done
done

python3 - "$out" <<'PY'
import glob, json, os, sys
out = sys.argv[1]
CL = ["wildlife", "machinery_anomaly", "human_activity"]
def load(model, name):
    p = os.path.join(out, f"{model}-{name}.json")
    return json.load(open(p)) if os.path.exists(p) else None
def row(r):
    cells = []
    for c in CL:
        k = next(x for x in r["classes"] if x["class"] == c)
        if k["labels"] == 0 and k["events"] == 0:
            cells.append("-")
        else:
            cells.append(f'{k["precision"]:.2f}/{k["recall"]:.2f}/{k["f1"]:.2f} ({k["labels"]})')
    le = r.get("length_error_median_s")
    return cells + [f'{r["detection_recall"]:.2f}', f'{r["false_alarms_per_hour"]:.1f}', "-" if le is None else f"{le:.1f}"]
names = sorted({os.path.basename(p)[:-5].split("-", 1)[1] for p in glob.glob(os.path.join(out, "*.json"))})
print("| scene | model | wildlife P/R/F1 (labels) | machinery P/R/F1 | human P/R/F1 | found | false/h | median length error s | background false/h |")
print("|---|---|---|---|---|---|---|---|---|")
for name in names:
    if name.endswith("-bg"):
        continue
    for model in ["own", "cross", "none"]:
        r = load(model, name)
        if r is None:
            continue
        bg = load(model, name + "-bg")
        cells = row(r) + ["-" if bg is None else f'{bg["false_alarms_per_hour"]:.2f}']
        print(f"| {name} | {model} | " + " | ".join(cells) + " |")
PY
