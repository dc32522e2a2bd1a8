#!/usr/bin/env python3
"""Turns the downloaded real-recording sources into 16 kHz mono 16-bit WAV
clips and a manifest, clips.csv (see models/fusion/DATA.md).

    realclips.py build EXTRACTED_DIR COMMITTED_CLIPS_DIR OUT_DIR
    realclips.py convert IN.wav OUT.wav [--start S] [--dur S]

`build` is run by fetch.sh once the packages are downloaded, checked and
unpacked into EXTRACTED_DIR; `convert` is how the clips committed under
clips/ were made from their repository's files. Needs numpy only.
"""

import argparse
import csv
import glob
import os
import struct
import sys

import numpy as np

RATE = 16000


# --------------------------------------------------------------------------
# WAV input/output

def parse_wav_bytes(data, name="<bytes>"):
    """Returns (float64 mono samples in [-1, 1], sample rate) of a RIFF/WAVE."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError(f"{name}: not a RIFF/WAVE file")
    pos, fmt = 12, None
    while pos + 8 <= len(data):
        cid = data[pos:pos + 4]
        size = struct.unpack("<I", data[pos + 4:pos + 8])[0]
        body = data[pos + 8:pos + 8 + size]
        if cid == b"fmt ":
            tag, ch, sr, _, align, bits = struct.unpack("<HHIIHH", body[:16])
            if tag == 0xFFFE and len(body) >= 26:
                tag = struct.unpack("<H", body[24:26])[0]
            fmt = (tag, ch, sr, align, bits)
        elif cid == b"data":
            if fmt is None:
                raise ValueError(f"{name}: data before fmt")
            tag, ch, sr, align, bits = fmt
            n = len(body) // align
            body = body[:n * align]
            if tag == 1 and bits == 16:
                x = np.frombuffer(body, "<i2").astype(np.float64) / 32768.0
            elif tag == 1 and bits == 8:
                x = (np.frombuffer(body, "u1").astype(np.float64) - 128.0) / 128.0
            elif tag == 1 and bits == 24:
                b = np.frombuffer(body, "u1").reshape(-1, 3).astype(np.int32)
                v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
                v = np.where(v >= 1 << 23, v - (1 << 24), v)
                x = v.astype(np.float64) / float(1 << 23)
            elif tag == 1 and bits == 32:
                x = np.frombuffer(body, "<i4").astype(np.float64) / 2147483648.0
            elif tag == 3 and bits == 32:
                x = np.frombuffer(body, "<f4").astype(np.float64)
            else:
                raise ValueError(f"{name}: unsupported format tag {tag}, {bits} bits")
            x = x.reshape(-1, ch).mean(axis=1)
            return x, sr
        pos += 8 + size + (size & 1)
    raise ValueError(f"{name}: no data chunk")


def read_wav(path):
    with open(path, "rb") as f:
        return parse_wav_bytes(f.read(), path)


def read_raw_s16(path, rate):
    with open(path, "rb") as f:
        return np.frombuffer(f.read(), "<i2").astype(np.float64) / 32768.0, rate


def write_wav16(path, x, rate=RATE):
    """Writes mono 16-bit PCM (stdlib wave)."""
    import wave
    pcm = np.clip(np.round(np.asarray(x) * 32767.0), -32768, 32767).astype("<i2")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())


def to_rate(x, sr, rate=RATE, highpass_hz=20.0):
    """Band-limited resampling by FFT (clips are short), removing DC and
    everything below highpass_hz (recorders' offsets and rumble)."""
    n = len(x)
    if n == 0:
        return np.zeros(0)
    m = int(round(n * rate / sr))
    spec = np.fft.rfft(x)
    freqs = np.fft.rfftfreq(n, 1.0 / sr)
    # gentle high-pass ramp between highpass_hz/2 and highpass_hz
    ramp = np.clip((freqs - highpass_hz / 2) / (highpass_hz / 2), 0.0, 1.0)
    spec = spec * ramp
    k = m // 2 + 1
    if k <= len(spec):
        out_spec = spec[:k].copy()
        # taper the top 5 % of the new band against aliasing-like ringing
        t = max(1, k // 20)
        out_spec[-t:] *= np.linspace(1.0, 0.0, t)
    else:
        out_spec = np.zeros(k, dtype=complex)
        out_spec[:len(spec)] = spec
    y = np.fft.irfft(out_spec, m) * (m / n)
    return y


# --------------------------------------------------------------------------
# Sources

SOURCES = {
    # key: (licence, attribution)
    "pykanto": ("MIT", "pykanto 0.1.8 (PyPI), great tit dawn songs recorded by Nilo M. Recalde"),
    "opensoundscape": ("MIT", "opensoundscape 0.13.2 (PyPI), sample_data/birds_10s.wav (Kitzes Lab)"),
    "pocketsphinx": ("public domain (LibriVox) / BSD-2-Clause (CMU)", "pocketsphinx 5.1.1 sdist (PyPI), test/data"),
    "asterisk-en": ("CC-BY-SA-3.0", "asterisk-core-sounds-en-wav 1.6.1-1 (Debian), voice: Allison Smith"),
    "asterisk-fr": ("CC-BY-SA-3.0", "asterisk-core-sounds-fr-wav 1.6.1-1 (Debian), voice: June Wallack"),
    "asterisk-it": ("CC-BY-3.0", "asterisk-core-sounds-it-wav 1.6.1-1 (Debian), voice: Carlo Flora"),
    "opensfx": (None, "openttd-opensfx 1.0.3-2 (Debian), OpenSFX 1.0.3; per-sound author in the attribution column"),
    "megaglest": ("CC-BY-SA-3.0", "megaglest-data 3.13.0-3 (Debian), tileset ambient sounds, The MegaGlest Team and contributors (docs/AUTHORS.data.txt)"),
    "scikit-maad": ("BSD-3-Clause", "scikit-maad repository data/ (commit a726add), see clips/scikit-maad/ATTRIBUTION.md"),
    "tumult": ("CC0-1.0", "consint/Tumult repository Samples/machine/ (commit 723c05f), Freesound recordings; see clips/machinery/SOURCES.md"),
    "openclonk": (None, "openclonk/openclonk repository planet/ (commit db975b4), Freesound recordings; see clips/machinery/SOURCES.md"),
}

# Machine recordings committed in clips/machinery/ (16 kHz mono Ogg Vorbis,
# decoded by fetch.sh): name -> (split, source, licence, original recording).
# Split by machine: each machine's sounds are on one side only.
MACHINERY = {
    "tumult-computer-fan": ("train", "tumult", "CC0-1.0", "Gutek, freesound.org/s/350928"),
    "tumult-dough-machine": ("train", "tumult", "CC0-1.0", "frenkfurth, freesound.org/s/650536"),
    "tumult-fridge-kitchen": ("train", "tumult", "CC0-1.0", "TRP, freesound.org/s/616830"),
    "tumult-fridge-loud": ("train", "tumult", "CC0-1.0", "TRP, freesound.org/s/573933"),
    "tumult-furnace-pump": ("train", "tumult", "CC0-1.0", "kyles, freesound.org/s/454030"),
    "tumult-letter-sorter": ("train", "tumult", "CC0-1.0", "SortsApostata, freesound.org/s/233594"),
    "tumult-oven": ("train", "tumult", "CC0-1.0", "felixdembinski, freesound.org/s/659645"),
    "tumult-washing-machine": ("train", "tumult", "CC0-1.0", "afnan808, freesound.org/s/384121"),
    "tumult-air-conditioning": ("eval", "tumult", "CC0-1.0", "felix.blume, freesound.org/s/711101"),
    "tumult-vending-machine": ("eval", "tumult", "CC0-1.0", "HECKFRICKER, freesound.org/s/730438"),
    "openclonk-elevator": ("train", "openclonk", "CC-BY-3.0", "pempi, freesound.org/s/33873"),
    "openclonk-drilling": ("train", "openclonk", "CC-BY-3.0", "jenc, freesound.org/s/519"),
    "openclonk-electrical": ("train", "openclonk", "CC-BY-3.0", "Halleck, freesound.org/s/19483"),
    "openclonk-furnace": ("train", "openclonk", "CC0-1.0", "tc630, freesound.org/s/47835"),
    "openclonk-sawmill-ripcut": ("train", "openclonk", "CC0-1.0", "kolczok, freesound.org/s/198988"),
    "openclonk-sawmill-engine": ("train", "openclonk", "CC0-1.0", "gthall, freesound.org/s/222808"),
    "openclonk-steam-engine": ("train", "openclonk", "CC0-1.0", "BenNevis, freesound.org/s/203175"),
    "openclonk-fan": ("eval", "openclonk", "CC-BY-3.0", "Cambra, freesound.org/s/102710"),
    "openclonk-pumpjack": ("eval", "openclonk", "CC0-1.0", "felix.blume, freesound.org/s/203990"),
    "openclonk-wheels": ("eval", "openclonk", "CC-BY-3.0", "earthsounds, freesound.org/s/101486"),
}

# OpenSFX sounds used, by index in opensfx.cat: (class, split, short name).
# Split by original recording: sounds edited from the same original stay in
# one split.
OPENSFX = {
    8: ("machinery", "train", "propeller-plane-start"),
    11: ("machinery", "train", "mining-machinery"),
    24: ("machinery", "train", "helicopter"),
    25: ("machinery", "train", "truck-start"),
    28: ("machinery", "train", "old-bus-start"),
    33: ("machinery", "train", "jackhammer"),
    39: ("machinery", "train", "smithy"),
    27: ("machinery", "eval", "modern-bus-start"),
    40: ("machinery", "eval", "circular-saw"),
    56: ("machinery", "eval", "chainsaw"),
    36: ("wildlife", "train", "sheep"),
    37: ("wildlife", "train", "cow"),
    38: ("wildlife", "train", "horse"),
    66: ("wildlife", "train", "tropical-bird-1"),
    72: ("wildlife", "train", "tropical-bird-2"),
    68: ("wildlife", "eval", "monkeys"),
    29: ("human_activity", "train", "applause"),
    52: ("wind", "train", "wind"),
    57: ("wind", "train", "heavy-wind"),
}

# MegaGlest tileset sounds used (decoded by fetch.sh to
# megaglest-wav/<tileset>-<name>.wav): (class, split, group). Tilesets share
# recordings; each recording is named once, from one tileset.
MEGAGLEST = {
    "birch_forest-day": ("wildlife", "train", "megaglest-day-a"),
    "dark_forest-day": ("wildlife", "train", "megaglest-day-b"),
    "fernland-day": ("wildlife", "train", "megaglest-day-c"),
    "birch_forest-wolf": ("wildlife", "train", "megaglest-wolf"),
    "birch_forest-chicken": ("wildlife", "train", "megaglest-chicken"),
    "autumn-rooster": ("wildlife", "train", "megaglest-rooster"),
    "pine_peat-mudchute_cow_1": ("wildlife", "train", "megaglest-cow"),
    "spring-day": ("wildlife", "eval", "megaglest-day-spring"),
    "autumn-owl": ("wildlife", "eval", "megaglest-owl"),
    "desert2-hawk": ("wildlife", "eval", "megaglest-hawk"),
    "birch_forest-rain": ("rain", "train", "megaglest-rain-a"),
    "dark_forest-rain": ("rain", "train", "megaglest-rain-b"),
    "desert2-rain": ("rain", "train", "megaglest-rain-c"),
    "autumn-rain": ("rain", "eval", "megaglest-rain-autumn"),
    "winter-wind": ("wind", "eval", "megaglest-wind"),
    "winter_forest-wind": ("wind", "eval", "megaglest-wind"),
}

# scikit-maad clips committed under clips/scikit-maad/: (class, split)
MAAD = {
    "S4A03895_20190522_010000.wav": ("ambience", "train"),
    "S4A03895_20190522_011500.wav": ("ambience", "train"),
    "S4A03895_20190522_033000.wav": ("ambience", "eval"),
    "S4A03895_20190522_034500.wav": ("ambience", "eval"),
    "S4A03895_20190522_060000.wav": ("wildlife", "train"),
    "S4A03895_20190522_070000.wav": ("wildlife", "train"),
    "S4A03895_20190522_080000.wav": ("wildlife", "eval"),
    "spinetail.wav": ("wildlife", "eval"),
}


def opensfx_entries(cat_path):
    """Yields (index, description, wav bytes) from OpenTTD's .cat container:
    a table of (offset, size) pairs, each entry a length-prefixed name
    followed by a RIFF/WAVE file."""
    with open(cat_path, "rb") as f:
        d = f.read()
    count = (struct.unpack("<I", d[:4])[0] & 0x7FFFFFFF) // 8
    for i in range(count):
        off, size = struct.unpack("<II", d[i * 8:i * 8 + 8])
        off &= 0x7FFFFFFF
        nl = d[off]
        name = d[off + 1:off + 1 + nl].rstrip(b"\0").decode("latin-1")
        yield i, name, d[off + 1 + nl:off + size]


def opensfx_licence(desc):
    if "Creative Commons Zero" in desc:
        return "CC0-1.0"
    if "Attribution-ShareAlike 3.0" in desc:
        return "CC-BY-SA-3.0"
    if "Attribution 3.0" in desc:
        return "CC-BY-3.0"
    return "CC-BY-SA-3.0"  # the collection's licence


def build(extracted, committed, out):
    rows = []
    clips_dir = os.path.join(out, "clips")

    def add(x, sr, rel, source, cls, split, group, attribution="", min_s=0.3):
        y = to_rate(x, sr)
        if len(y) < min_s * RATE or np.max(np.abs(y)) < 1e-4:
            return
        peak = np.max(np.abs(y))
        if peak > 0.999:
            y = y * (0.999 / peak)
        path = os.path.join(clips_dir, rel)
        write_wav16(path, y)
        lic = SOURCES[source][0]
        rows.append({
            "path": os.path.join("clips", rel),
            "source": source,
            "licence": lic,
            "class": cls,
            "duration_s": f"{len(y) / RATE:.3f}",
            "split": split,
            "group": group,
            "attribution": attribution or SOURCES[source][1],
        })

    # pykanto: great tit songs; split by bird/recording (B32 train, SW83 eval)
    for p in sorted(glob.glob(os.path.join(extracted, "pykanto", "pykanto", "data",
                                           "segmented", "great_tit", "WAV", "*.wav"))):
        base = os.path.basename(p)
        bird = base.split("-")[1]
        split = "eval" if bird == "SW83" else "train"
        x, sr = read_wav(p)
        add(x, sr, f"pykanto/great_tit/{base}", "pykanto", "wildlife", split,
            f"pykanto-great-tit-{bird}")

    # opensoundscape: one 10 s clip of birdsong (Pennsylvania), eval
    p = os.path.join(extracted, "opensoundscape", "opensoundscape", "sample_data", "birds_10s.wav")
    x, sr = read_wav(p)
    add(x, sr, "opensoundscape/birds_10s.wav", "opensoundscape", "wildlife", "eval",
        "opensoundscape-birds_10s")

    # pocketsphinx: LibriVox read speech and CMU test utterances, eval
    ps = os.path.join(extracted, "pocketsphinx", "pocketsphinx-5.1.1", "test", "data")
    for p in sorted(glob.glob(os.path.join(ps, "librivox", "*.wav"))):
        x, sr = read_wav(p)
        add(x, sr, f"pocketsphinx/librivox/{os.path.basename(p)}", "pocketsphinx",
            "human_activity", "eval", "pocketsphinx-librivox",
            "LibriVox: Sense and Sensibility ch. 1 (public domain), via pocketsphinx 5.1.1 test/data")
    for name in ("goforward.raw", "numbers.raw", "something.raw"):
        x, sr = read_raw_s16(os.path.join(ps, name), 16000)
        add(x, sr, f"pocketsphinx/cmu/{name[:-4]}.wav", "pocketsphinx", "human_activity",
            "eval", "pocketsphinx-cmu",
            "CMU Sphinx test utterances (pocketsphinx 5.1.1 test/data, BSD-2-Clause)")

    # asterisk prompts: one speaker per package; en and fr train, it eval
    for lang, split in (("en", "train"), ("fr", "train"), ("it", "eval")):
        root = os.path.join(extracted, f"asterisk-{lang}", "usr", "share", "asterisk", "sounds")
        for p in sorted(glob.glob(os.path.join(root, "*", "**", "*.wav"), recursive=True)):
            rel = os.path.relpath(p, root)
            if "/silence/" in "/" + rel:
                continue
            x, sr = read_wav(p)
            add(x, sr, f"asterisk-{lang}/{rel}", f"asterisk-{lang}", "human_activity", split,
                f"asterisk-{lang}", min_s=0.6)

    # OpenSFX (OpenTTD base sounds): real recordings edited for the game
    cat = os.path.join(extracted, "opensfx", "usr", "share", "games", "openttd", "baseset",
                       "opensfx", "opensfx.cat")
    for i, desc, wav in opensfx_entries(cat):
        if i not in OPENSFX:
            continue
        cls, split, short = OPENSFX[i]
        x, sr = parse_wav_bytes(wav, f"opensfx.cat[{i}]")
        before = len(rows)
        add(x, sr, f"opensfx/{i:02d}-{short}.wav", "opensfx", cls, split,
            f"opensfx-{short}", desc.replace("\n", " "))
        if len(rows) > before:
            rows[-1]["licence"] = opensfx_licence(desc)

    # MegaGlest tileset sounds
    for name, (cls, split, group) in sorted(MEGAGLEST.items()):
        x, sr = read_wav(os.path.join(extracted, "megaglest-wav", name + ".wav"))
        add(x, sr, f"megaglest/{name}.wav", "megaglest", cls, split, group,
            f"MegaGlest tileset sound tilesets/{name.replace('-', '/sounds/', 1)} "
            "(megaglest-data 3.13.0-3), CC BY-SA 3.0, The MegaGlest Team and contributors")

    # scikit-maad clips committed in the repository (already 16 kHz mono)
    for name, (cls, split) in sorted(MAAD.items()):
        p = os.path.join(committed, "scikit-maad", name)
        x, sr = read_wav(p)
        add(x, sr, f"scikit-maad/{name}", "scikit-maad", cls, split,
            "scikit-maad-" + name[:-4], maad_attribution(name))

    # Machine recordings committed in clips/machinery/, decoded by fetch.sh
    for name, (split, source, lic, origin) in sorted(MACHINERY.items()):
        x, sr = read_wav(os.path.join(extracted, "machinery-wav", name + ".wav"))
        before = len(rows)
        add(x, sr, f"machinery/{name}.wav", source, "machinery", split, name,
            f"{origin} ({lic}), via {SOURCES[source][1].split(',')[0]}")
        if len(rows) > before:
            rows[-1]["licence"] = lic

    fields = ["path", "source", "licence", "class", "duration_s", "split", "group", "attribution"]
    with open(os.path.join(out, "clips.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow(r)
    summary(rows)


def maad_attribution(name):
    if name == "spinetail.wav":
        return ("scikit-maad data/spinetail.wav: Valle del Cauca, Colombia, 2018-09-19 "
                "(scrub near cloud forest edge); BSD-3-Clause, scikit-maad developers")
    return (f"scikit-maad data/indices/{name}: spruce forest, Jura, France, 2019-05-22 "
            "(24-h cycle, one 10 s recording every 15 min); BSD-3-Clause, scikit-maad developers")


def summary(rows):
    tot = {}
    for r in rows:
        k = (r["class"], r["split"])
        tot[k] = tot.get(k, 0.0) + float(r["duration_s"])
    print(f"{len(rows)} clips")
    for (cls, split), s in sorted(tot.items()):
        print(f"  {cls:15s} {split:5s} {s / 60:6.2f} min")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build")
    b.add_argument("extracted")
    b.add_argument("committed")
    b.add_argument("out")
    c = sub.add_parser("convert")
    c.add_argument("src")
    c.add_argument("dst")
    c.add_argument("--start", type=float, default=0.0)
    c.add_argument("--dur", type=float, default=None)
    a = ap.parse_args()
    if a.cmd == "build":
        build(a.extracted, a.committed, a.out)
    else:
        x, sr = read_wav(a.src)
        i0 = int(a.start * sr)
        x = x[i0:] if a.dur is None else x[i0:i0 + int(a.dur * sr)]
        y = to_rate(x, sr)
        write_wav16(a.dst, y)
        print(f"{a.dst}: {len(y) / RATE:.2f} s")


if __name__ == "__main__":
    sys.exit(main())
