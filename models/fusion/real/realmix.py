#!/usr/bin/env python3
"""Builds an audio-only scene (docs/scenes.md) from real recordings.

    realmix.py --clips DIR --split eval --seed 1 --duration 600 \\
               --wind moderate --out /tmp/scene

DIR is the output of fetch.sh (clips.csv and clips/). The scene has:

- a quiet outdoor floor: random stretches of the split's real night-time
  ambience clips, overlap-added with smooth windows (gently filtered noise
  when the split has none), at FLOOR_DBFS;
- events with gaps of 10 to 40 s: wildlife (one recording, or a few songs of
  one bird), human activity (a few prompts or sentences of one speaker with
  short pauses) and machinery (a machine sound repeated a few times), each
  at a signal-to-floor ratio drawn from 0 to 25 dB (--snr LO:HI sets
  that range). Every clip is trimmed to
  where it has energy before it is placed, so labels start and end with the
  sound;
- with --wind moderate|strong, gusty wind: low-passed noise (energy mostly
  below a few hundred Hz) whose level follows slow variations and gusts of a
  few seconds; gusts spread broadband; in the train split, the real wind
  recordings are layered in at the gusts. Gusts well above the floor are
  labelled `background`;
- with --rain showers, showers of 1 to 3 min from the real rain recordings,
  5 to 20 dB over the floor, labelled `background`.

labels.csv classes: wildlife, human_activity, machinery_anomaly (for the
machinery clips), background. The same seed gives the same bytes; the event
plan and the floor do not depend on --wind, so a calm and a windy scene of
one seed have the same events.
"""

import argparse
import csv
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from realclips import RATE, read_wav, write_wav16  # noqa: E402

FLOOR_DBFS = -50.0
FRAME = RATE // 50  # 20 ms
LABEL_OF = {"wildlife": "wildlife", "human_activity": "human_activity",
            "machinery": "machinery_anomaly"}
CLASS_WEIGHTS = {"wildlife": 0.4, "human_activity": 0.35, "machinery": 0.25}
WIND = {
    # mean low-frequency wind level over the floor (dB), gust peak excess
    # over that mean (dB range), gusts per minute
    "moderate": (10.0, (6.0, 15.0), 1.5),
    "strong": (18.0, (10.0, 24.0), 2.5),
}


def db(p):
    return 10.0 * np.log10(np.maximum(p, 1e-20))


def frame_power(x):
    n = len(x) // FRAME
    if n == 0:
        return np.array([np.mean(x ** 2) if len(x) else 0.0])
    return np.mean(x[:n * FRAME].reshape(n, FRAME) ** 2, axis=1)


def trim_active(x):
    """Trims a clip to the span where it has energy: frames within 35 dB of
    its loudest frame and 6 dB above its own quiet level. Returns the trimmed
    clip and the power of its active frames."""
    p = frame_power(x)
    if len(p) < 3:
        return x, float(np.mean(x ** 2) + 1e-20)
    lp = db(p)
    thr = max(lp.max() - 35.0, np.percentile(lp, 10) + 6.0)
    act = np.nonzero(lp >= thr)[0]
    if len(act) == 0:
        return x, float(np.mean(x ** 2) + 1e-20)
    a = max(0, act[0] * FRAME - FRAME)
    b = min(len(x), (act[-1] + 2) * FRAME)
    return x[a:b], float(np.mean(p[act]))


class Clips:
    def __init__(self, root, split):
        self.root = root
        self.rows = []
        with open(os.path.join(root, "clips.csv"), newline="") as f:
            for r in csv.DictReader(f):
                if r["split"] == split:
                    self.rows.append(r)
        self.cache = {}

    def of(self, cls):
        return [r for r in self.rows if r["class"] == cls]

    def load(self, row):
        p = row["path"]
        if p not in self.cache:
            x, sr = read_wav(os.path.join(self.root, p))
            if sr != RATE:
                raise SystemExit(f"{p}: {sr} Hz, expected {RATE} (run fetch.sh)")
            self.cache[p] = trim_active(x)
        return self.cache[p]


def shaped_noise(rng, n, shape):
    """Gaussian noise of n samples whose power spectrum follows shape(f)."""
    spec = rng.standard_normal(n // 2 + 1) + 1j * rng.standard_normal(n // 2 + 1)
    f = np.fft.rfftfreq(n, 1.0 / RATE)
    spec *= np.sqrt(shape(f))
    y = np.fft.irfft(spec, n)
    return y / (np.sqrt(np.mean(y ** 2)) + 1e-20)


def make_floor(rng, clips, n):
    amb = clips.of("ambience")
    if not amb:
        # gently filtered noise: pinkish, rolled off above 4 kHz
        y = shaped_noise(rng, n, lambda f: 1.0 / (1.0 + f / 200.0) / (1.0 + (f / 4000.0) ** 4))
    else:
        seg = 3 * RATE
        hop = seg // 2
        win = np.sqrt(np.hanning(seg + 1)[:seg])
        y = np.zeros(n + seg)
        pos = 0
        while pos < n:
            r = amb[rng.integers(len(amb))]
            x = read_wav(os.path.join(clips.root, r["path"]))[0]
            if len(x) <= seg:
                x = np.tile(x, seg // max(1, len(x)) + 2)
            o = int(rng.integers(0, len(x) - seg))
            piece = x[o:o + seg]
            piece = piece / (np.sqrt(np.mean(piece ** 2)) + 1e-20)
            y[pos:pos + seg] += piece * win
            pos += hop
        y = y[:n]
    return y / (np.sqrt(np.mean(y ** 2)) + 1e-20) * 10 ** (FLOOR_DBFS / 20)


def compose_event(rng, clips, cls):
    """One event of a class: a clip, or a short sequence of clips from one
    recording group. Returns (signal, active power)."""
    pool = clips.of(cls)
    first = pool[rng.integers(len(pool))]
    group = [r for r in pool if r["group"] == first["group"]]
    x, _ = clips.load(first)
    dur = len(x) / RATE
    if cls == "human_activity":
        count = int(rng.integers(3, 9)) if dur < 5 else int(rng.integers(1, 3))
        pause = (0.2, 0.8)
    elif cls == "wildlife":
        count = int(rng.integers(2, 6)) if dur < 4 else 1
        pause = (1.0, 4.0)
    else:
        count = int(rng.integers(2, 5)) if dur < 5 else 1
        pause = (0.3, 1.5)
    parts, powers, total = [], [], 0.0
    for i in range(count):
        r = first if i == 0 else group[rng.integers(len(group))]
        x, p = clips.load(r)
        if len(x) > 25 * RATE:
            # a long chorus or ambience: an excerpt of 8 to 25 s
            m = int(rng.uniform(8.0, 25.0) * RATE)
            o = int(rng.integers(0, len(x) - m))
            x = x[o:o + m] * fades(m)
            x, p = trim_active(x)
        if i > 0:
            if total + len(x) / RATE > 30.0:
                break
            gap = np.zeros(int(rng.uniform(*pause) * RATE))
            parts.append(gap)
            total += len(gap) / RATE
        parts.append(x)
        powers.append((p, len(x)))
        total += len(x) / RATE
    sig = np.concatenate(parts)
    act = sum(p * m for p, m in powers) / sum(m for _, m in powers)
    return sig, act


def fades(m, seconds=0.2):
    k = min(m // 2, int(seconds * RATE))
    w = np.ones(m)
    ramp = np.sin(np.linspace(0, np.pi / 2, k)) ** 2
    w[:k] = ramp
    w[m - k:] = ramp[::-1]
    return w


def make_rain(rng, clips, n):
    """Rain showers of 1 to 3 min from the split's rain recordings (tiled
    with crossfades), 5 to 20 dB over the floor; labelled background."""
    pool = clips.of("rain")
    out = np.zeros(n)
    labels = []
    if not pool:
        return out, labels
    floor_amp = 10 ** (FLOOR_DBFS / 20)
    t = float(rng.uniform(20.0, 120.0))
    while True:
        length = float(rng.uniform(60.0, 180.0))
        a = int(t * RATE)
        m = min(int(length * RATE), n - a)
        if m < 20 * RATE:
            break
        seg = []
        got = 0
        while got < m + RATE:
            x, p = clips.load(pool[rng.integers(len(pool))])
            x = x / np.sqrt(p)
            seg.append(x * fades(len(x), 0.5))
            got += len(x)
        y = np.concatenate(seg)[:m]
        env = fades(m, 10.0)  # showers come and go over 10 s
        snr = float(rng.uniform(5.0, 20.0))
        out[a:a + m] += y * env * floor_amp * 10 ** (snr / 20)
        labels.append((a / RATE, (a + m) / RATE, "background"))
        t = (a + m) / RATE + float(rng.uniform(120.0, 400.0))
    return out, labels


def smooth_env(rng, n_ctrl, tau_ctrl):
    """Slow random variation (unit variance) sampled at control rate."""
    w = rng.standard_normal(n_ctrl + 10 * tau_ctrl)
    k = np.exp(-np.arange(5 * tau_ctrl) / tau_ctrl)
    y = np.convolve(w, k, mode="full")[5 * tau_ctrl:5 * tau_ctrl + n_ctrl]
    return y / (np.std(y) + 1e-20)


def make_wind(rng, clips, n, strength):
    mean_db, (g_lo, g_hi), per_min = WIND[strength]
    ctrl_rate = 100  # envelope control points per second
    nc = n * ctrl_rate // RATE + 2
    level = mean_db + 3.0 * smooth_env(rng, nc, 8 * ctrl_rate)  # slow swell
    gusts = []
    t = float(rng.uniform(3, 20))
    dur_s = n / RATE
    while t < dur_s - 3:
        length = float(rng.uniform(2.0, 8.0))
        peak = float(rng.uniform(g_lo, g_hi))
        gusts.append((t, length, peak))
        t += length + float(rng.exponential(60.0 / per_min))
    excess = np.zeros(nc)
    for (t0, length, peak) in gusts:
        a = int(t0 * ctrl_rate)
        m = int(length * ctrl_rate)
        shape = np.sin(np.linspace(0, np.pi, m)) ** 2
        seg = excess[a:a + m]
        excess[a:a + m] = np.maximum(seg, peak * shape[:len(seg)])
    # fast flutter inside the wind (a few Hz), stronger in gusts
    flutter = 2.0 * smooth_env(rng, nc, 15)
    level_db = level + excess + flutter * (0.5 + excess / max(g_hi, 1.0))
    tc = np.arange(nc) / ctrl_rate
    ts = np.arange(n) / RATE
    env_lf = np.interp(ts, tc, 10 ** (level_db / 20))
    # broadband share grows with the gust excess above 4 dB
    bb_db = level_db - 14.0 + 1.0 * np.maximum(excess - 4.0, 0.0)
    env_bb = np.interp(ts, tc, 10 ** (bb_db / 20) * (excess > 4.0))
    floor_amp = 10 ** (FLOOR_DBFS / 20)
    lf = shaped_noise(rng, n, lambda f: 1.0 / (1.0 + (f / 120.0) ** 4) * (f > 5))
    bb = shaped_noise(rng, n, lambda f: 1.0 / (1.0 + (f / 1500.0) ** 2) * (f > 20))
    wind = floor_amp * (lf * env_lf + bb * env_bb)
    # real wind recordings (train split only) layered in at the gusts
    reals = clips.of("wind")
    for (t0, length, peak) in gusts:
        if not reals:
            break
        x, p = clips.load(reals[rng.integers(len(reals))])
        a = int(t0 * RATE)
        m = min(len(x), int(length * RATE), n - a)
        if m <= 0:
            continue
        fade = np.sin(np.linspace(0, np.pi, m)) ** 2
        target = floor_amp * 10 ** ((mean_db + peak - 3.0) / 20)
        wind[a:a + m] += x[:m] / np.sqrt(p) * target * fade
    labels = []
    thr = 15.0  # dB over the floor
    for (t0, length, peak) in gusts:
        # the gust is mean + peak * sin^2(pi u), u in [0, 1]: the part above thr
        q = (thr - mean_db) / peak
        if q >= 1.0:
            continue
        u = np.arcsin(np.sqrt(max(q, 0.0))) / np.pi
        s, e = t0 + length * u, t0 + length * (1.0 - u)
        if e - s >= 0.5:
            labels.append((s, e, "background"))
    return wind, labels


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", required=True, help="fetch.sh output directory (clips.csv)")
    ap.add_argument("--split", choices=["train", "eval"], required=True)
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--duration", type=float, default=600.0, help="seconds (default 600)")
    ap.add_argument("--wind", choices=["calm", "moderate", "strong"], default="calm")
    ap.add_argument("--rain", choices=["none", "showers"], default="none",
                    help="rain showers of 1 to 3 min from real rain recordings (labelled background)")
    ap.add_argument("--snr", default="0:25", metavar="LO:HI",
                    help="range of the events' signal-to-floor ratio, dB (default 0:25)")
    ap.add_argument("--start", default="2026-06-01T05:00:00Z", help="scene start, RFC 3339")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    try:
        snr_lo, snr_hi = (float(v) for v in a.snr.split(":"))
    except ValueError:
        raise SystemExit(f"--snr {a.snr}: expected LO:HI in dB, for example 0:25")
    if not -40.0 <= snr_lo <= snr_hi <= 60.0:
        raise SystemExit(f"--snr {a.snr}: LO must not be above HI, both within -40 to 60 dB")

    clips = Clips(a.clips, a.split)
    if not clips.rows:
        raise SystemExit(f"no clips of split {a.split} in {a.clips}/clips.csv")
    n = int(a.duration * RATE)
    ss = np.random.SeedSequence([a.seed, 0 if a.split == "train" else 1])
    rng_floor, rng_events, rng_wind, rng_rain = (np.random.default_rng(s) for s in ss.spawn(4))

    floor = make_floor(rng_floor, clips, n)
    floor_p = float(np.mean(floor ** 2))
    mix = floor.copy()
    labels = []
    classes = [c for c in CLASS_WEIGHTS if clips.of(c)]
    weights = np.array([CLASS_WEIGHTS[c] for c in classes])
    weights = weights / weights.sum()
    t = float(rng_events.uniform(10.0, 40.0))
    while True:
        cls = classes[rng_events.choice(len(classes), p=weights)]
        sig, act_p = compose_event(rng_events, clips, cls)
        snr = float(rng_events.uniform(snr_lo, snr_hi))
        a0 = int(t * RATE)
        if a0 + len(sig) > n - RATE:
            break
        gain = np.sqrt(floor_p * 10 ** (snr / 10) / act_p)
        mix[a0:a0 + len(sig)] += sig * gain
        labels.append((a0 / RATE, (a0 + len(sig)) / RATE, LABEL_OF[cls]))
        t = (a0 + len(sig)) / RATE + float(rng_events.uniform(10.0, 40.0))

    if a.wind != "calm":
        wind, wl = make_wind(rng_wind, clips, n, a.wind)
        mix += wind
        labels += wl
    if a.rain == "showers":
        rain, rl = make_rain(rng_rain, clips, n)
        mix += rain
        labels += rl
    peak = float(np.max(np.abs(mix)))
    if peak > 0.98:
        mix *= 0.98 / peak

    os.makedirs(a.out, exist_ok=True)
    write_wav16(os.path.join(a.out, "audio.wav"), mix)
    labels.sort()
    with open(os.path.join(a.out, "labels.csv"), "w") as f:
        f.write("start_s,end_s,class\n")
        for s, e, c in labels:
            f.write(f"{s:.2f},{e:.2f},{c}\n")
    name = f"real-{a.split}-{a.seed}-{a.wind}" + ("-rain" if a.rain == "showers" else "")
    desc = (f"realmix.py: real recordings ({a.split} split of clips.csv), seed {a.seed}, "
            f"{a.duration:g} s, wind {a.wind}, rain {a.rain}; audio only")
    with open(os.path.join(a.out, "scene.toml"), "w") as f:
        f.write(f'start = "{a.start}"\nname = "{name}"\ndescription = "{desc}"\n')
    counts = {}
    for _, _, c in labels:
        counts[c] = counts.get(c, 0) + 1
    print(f"{a.out}: {a.duration:g} s, " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))


if __name__ == "__main__":
    sys.exit(main())
