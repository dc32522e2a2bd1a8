#!/usr/bin/env bash
# Downloads the real-recording sources listed in models/fusion/DATA.md by
# pinned version, checks their sha256, unpacks them and converts the clips to
# 16 kHz mono 16-bit WAV with a manifest OUT_DIR/clips.csv.
#
#   models/fusion/real/fetch.sh OUT_DIR
#
# Needs: python3 with numpy (PYTHON=... to choose it; the packages of
# models/requirements.txt are enough), pip, curl, apt-get (for
# `apt-get download`, no root needed), dpkg-deb, unzip, tar, and sox with
# Ogg Vorbis support (Debian packages sox and libsox-fmt-base).
# Downloads about 350 MB into OUT_DIR/downloads (kept, so a second run
# downloads nothing); the clips take about 130 MB. A run with nothing
# changed (downloads, committed clips, these scripts; OUT_DIR/clips.stamp)
# leaves the clips alone; otherwise the new clips replace the old ones
# only once all are written.
set -euo pipefail

if [ $# -ne 1 ]; then
    echo "usage: $0 OUT_DIR" >&2
    exit 2
fi
here="$(cd "$(dirname "$0")" && pwd)"
out="$(mkdir -p "$1" && cd "$1" && pwd)"
py="${PYTHON:-python3}"
dl="$out/downloads"
ex="$out/extracted"
mkdir -p "$dl"

"$py" -c 'import numpy' 2>/dev/null || {
    echo "fetch.sh: $py has no numpy; set PYTHON to a python with numpy (models/requirements.txt)" >&2
    exit 1
}
command -v sox >/dev/null || {
    echo "fetch.sh: needs sox with Ogg Vorbis (apt-get install sox libsox-fmt-base)" >&2
    exit 1
}

check() { # FILE SHA256
    local got
    got="$(sha256sum "$1" | cut -d' ' -f1)"
    if [ "$got" != "$2" ]; then
        echo "fetch.sh: sha256 mismatch for $1: got $got, want $2" >&2
        exit 1
    fi
}

# --- PyPI wheels (pip, pinned version) -----------------------------------
pip_wheel() { # NAME VERSION FILE SHA256
    if [ ! -f "$dl/$3" ]; then
        "$py" -m pip download --quiet --no-deps --only-binary :all: -d "$dl" "$1==$2"
    fi
    check "$dl/$3" "$4"
}
pip_wheel pykanto 0.1.8 pykanto-0.1.8-py3-none-any.whl \
    44b0df060e83087950fd5b6780bbc3bc13f3122abdadb1cb7f979e641adc3077
pip_wheel opensoundscape 0.13.2 opensoundscape-0.13.2-py3-none-any.whl \
    f50b3ee4aa32538cdc8cde8aba934689663dde7f94769338219fcc43828cb24c

# --- PyPI sdist (the registry's file for that version; pip would try to
# build it, which needs its build backend, so it is fetched directly) -----
ps_sdist=pocketsphinx-5.1.1.tar.gz
if [ ! -f "$dl/$ps_sdist" ]; then
    curl -fsSL -o "$dl/$ps_sdist.part" \
        "https://files.pythonhosted.org/packages/61/e7/13e0e787ff467218de880310d79cba14424f13b87171ac44af0bde1e428c/$ps_sdist"
    mv "$dl/$ps_sdist.part" "$dl/$ps_sdist"
fi
check "$dl/$ps_sdist" 675778b309a22dfc9b7d37f7621976bba491d2a5f8c59696bd77fd6d07271355

# --- Debian packages (apt-get download, pinned version) ------------------
deb() { # PACKAGE VERSION SHA256
    local f="${1}_${2}_all.deb"
    if [ ! -f "$dl/$f" ]; then
        (cd "$dl" && apt-get download -q "$1=$2" 2>&1 | grep -v '^W: Download is performed unsandboxed' || true)
    fi
    [ -f "$dl/$f" ] || { echo "fetch.sh: apt-get download $1=$2 failed (run apt-get update?)" >&2; exit 1; }
    check "$dl/$f" "$3"
}
deb openttd-opensfx 1.0.3-2 2898b4677a3caccc4abc08fb4cf83319047b5a04729291deb5c77a8cd713c006
deb asterisk-core-sounds-en-wav 1.6.1-1 2be3ea287d83299d143815fa804f11179a75b7affd4a758b98b55f5afc18a35d
deb asterisk-core-sounds-fr-wav 1.6.1-1 8d4e1bc32ed5ba7fbda40841ca1825ed20cc6232724a473c90f8bb0e53e6073e
deb asterisk-core-sounds-it-wav 1.6.1-1 5a26638089e134b8ac39363fe249c5c93c50cd8bfdc9b2499ae61ec4a35e2fcb
deb megaglest-data 3.13.0-3 ed4783d9fc78e201a548b266f7c30325eb16cfd58a20bf4597dd6e622f84a07e

# --- up to date? ----------------------------------------------------------
# The clips depend only on the pinned downloads (checked above), the
# committed clips and these scripts: when none changed since the clips were
# made, they are left alone, so a build reading them is never disturbed.
stamp="$(cat "$0" "$here/realclips.py" $(find "$here/clips" -type f | LC_ALL=C sort) | sha256sum | cut -d' ' -f1)"
if [ -f "$out/clips.csv" ] && [ "$(cat "$out/clips.stamp" 2>/dev/null)" = "$stamp" ]; then
    echo "clips and manifest (up to date): $out/clips.csv"
    exit 0
fi

# --- unpack only what is used --------------------------------------------
rm -rf "$ex"
mkdir -p "$ex"/{pykanto,opensoundscape,pocketsphinx,opensfx,asterisk-en,asterisk-fr,asterisk-it,megaglest,megaglest-wav}
unzip -q "$dl/pykanto-0.1.8-py3-none-any.whl" 'pykanto/data/segmented/great_tit/WAV/*' \
    'pykanto-0.1.8.dist-info/LICENSE' -d "$ex/pykanto"
unzip -q "$dl/opensoundscape-0.13.2-py3-none-any.whl" 'opensoundscape/sample_data/birds_10s.wav' \
    'opensoundscape-0.13.2.dist-info/licenses/LICENSE' -d "$ex/opensoundscape"
tar -xzf "$dl/$ps_sdist" -C "$ex/pocketsphinx" \
    pocketsphinx-5.1.1/LICENSE pocketsphinx-5.1.1/test/data/librivox \
    pocketsphinx-5.1.1/test/data/goforward.raw pocketsphinx-5.1.1/test/data/numbers.raw \
    pocketsphinx-5.1.1/test/data/something.raw
dpkg-deb -x "$dl/openttd-opensfx_1.0.3-2_all.deb" "$ex/opensfx"
for l in en fr it; do
    dpkg-deb -x "$dl/asterisk-core-sounds-${l}-wav_1.6.1-1_all.deb" "$ex/asterisk-$l"
done
# MegaGlest: the tilesets' ambient and animal sounds (Ogg Vorbis or WAV),
# decoded with sox to 16-bit mono WAV at their own rate
mg=./usr/share/games/megaglest
dpkg-deb --fsys-tarfile "$dl/megaglest-data_3.13.0-3_all.deb" |
    tar -x -C "$ex/megaglest" --wildcards "$mg/tilesets/*/sounds/*" \
        "$mg/docs/AUTHORS.data.txt" "$mg/docs/COPYRIGHT.data.txt"
for f in "$ex/megaglest/$mg"/tilesets/*/sounds/*; do
    [ -s "$f" ] || continue
    ts="$(basename "$(dirname "$(dirname "$f")")")"
    b="$(basename "$f")"
    sox -V1 "$f" -D -b 16 -c 1 "$ex/megaglest-wav/$ts-${b%.*}.wav"
done

# Machine recordings committed in clips/machinery/ (Ogg Vorbis, 16 kHz mono)
mkdir -p "$ex/machinery-wav"
for f in "$here"/clips/machinery/*.ogg; do
    b="$(basename "$f")"
    sox -V1 "$f" -D -b 16 -c 1 "$ex/machinery-wav/${b%.ogg}.wav"
done

# --- convert, write the manifest -----------------------------------------
# Into a staging directory first: the clips and manifest in OUT_DIR are
# replaced only once the new ones are complete.
stage="$out/.staging.$$"
rm -rf "$stage" "$out/clips.stamp"
mkdir -p "$stage"
trap 'rm -rf "$stage"' EXIT
"$py" "$here/realclips.py" build "$ex" "$here/clips" "$stage"

# licence and attribution texts beside the clips
lic="$stage/clips/LICENSES"
mkdir -p "$lic"
cp "$ex/pykanto/pykanto-0.1.8.dist-info/LICENSE" "$lic/pykanto-LICENSE"
cp "$ex/opensoundscape/opensoundscape-0.13.2.dist-info/licenses/LICENSE" "$lic/opensoundscape-LICENSE"
cp "$ex/pocketsphinx/pocketsphinx-5.1.1/LICENSE" "$lic/pocketsphinx-LICENSE"
cp "$ex/opensfx/usr/share/doc/openttd-opensfx/copyright" "$lic/opensfx-copyright"
zcat "$ex/opensfx/usr/share/doc/openttd-opensfx/readme.txt.gz" > "$lic/opensfx-readme.txt"
cp "$ex/asterisk-en/usr/share/doc/asterisk-core-sounds-en-wav/copyright" "$lic/asterisk-core-sounds-copyright"
cp "$here/clips/scikit-maad/LICENSE" "$lic/scikit-maad-LICENSE"
cp "$ex/megaglest/$mg/docs/AUTHORS.data.txt" "$lic/megaglest-AUTHORS.data.txt"
dpkg-deb --fsys-tarfile "$dl/megaglest-data_3.13.0-3_all.deb" |
    tar -xO ./usr/share/doc/megaglest-data/copyright > "$lic/megaglest-data-copyright"
cp "$here/clips/scikit-maad/ATTRIBUTION.md" "$lic/scikit-maad-ATTRIBUTION.md"
cp "$here/clips/machinery/SOURCES.md" "$lic/machinery-SOURCES.md"
rm -rf "$ex" "$out/clips.old"
[ -d "$out/clips" ] && mv "$out/clips" "$out/clips.old"
mv "$stage/clips" "$out/clips"
mv "$stage/clips.csv" "$out/clips.csv"
rm -rf "$out/clips.old"
echo "$stamp" > "$out/clips.stamp"
echo "clips and manifest: $out/clips.csv"
