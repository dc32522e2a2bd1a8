#!/usr/bin/env python3
"""wildgen -- an independent synthetic field-scene generator (numpy only).

It models an outdoor sensor node (microphone, small camera, climate sensor in an
enclosure) at a forest edge / field / pump house, and writes a scene directory
(scene.toml, audio.wav, climate.csv, camera.y4m, labels.csv) as described in
docs/scenes.md.

How it works
------------
1. Environment.  Slow physical processes are simulated on a 20 Hz control grid:
   wind speed (wandering mean + turbulence + discrete gusts), sun visibility
   (cloud shadows with soft edges), rain intensity (showers with onsets),
   aircraft range (straight flight past the node), road traffic swells, and
   the controls (on / rpm / load / misfires) of a machine running near the node.
2. Events.  Wildlife, human and machinery-fault events are synthesised one by
   one (additive/modal/granular synthesis for sound, simple perspective-correct
   sprites for the camera), then placed in time with quiet gaps and occasional
   overlaps.  Machinery faults may edit the machine controls or heat the
   enclosure.
3. Audio.  All noise-like backgrounds (mic wind buffeting, foliage rustle,
   rain hiss, water, traffic, aircraft, machine flow noise, ambient floor) are
   one time-varying spectrum per STFT frame (layer gains x layer spectra),
   rendered as random-phase noise with a sine window overlap-add.  Tonal and
   impulsive backgrounds (wind howl, insects, rain drops, bubbles, thunder,
   machine hum) are added in the time domain.  Events are scaled to a drawn
   signal-to-background ratio measured against the local background level.
4. Camera.  A procedural backdrop (sky with drifting cloud texture, tree line,
   field, optional pump house, foreground grass) is composited per frame with
   per-row sway of vegetation, cloud-shadow illumination, a hysteretic
   auto-exposure (which jumps), rain streaks, sensor noise, and at night an
   infrared look (bright foliage, dark sky, vignetted flickering illuminator).
5. Climate.  Diurnal air temperature, solar heating of the enclosure through a
   first-order thermal lag (so shade/sun moves it several degrees in minutes),
   wind ventilation, rain cooling, constant dew point -> relative humidity,
   pressure drift, fronts and gust pressure fluctuations, machine heat.
6. Labels.  Event labels span the part that is perceivable (its own audio
   envelope within 20 dB of its level, unioned with the time a sprite is in
   view).  Strong gusts, showers, aircraft, thunder, cloud shadows, exposure
   jumps and gain steps are labelled `background`.

Same arguments -> same bytes (all randomness comes from one SeedSequence).
"""

import argparse
import datetime as dtm
import math
import os
import wave
import zlib

import numpy as np

VERSION = 1
CONDITIONS = ("calm", "windy", "hum", "rain", "night")
CTRL_HZ = 20.0            # control rate of the slow environment processes
F32 = np.float32


# --------------------------------------------------------------------------
# small signal helpers
# --------------------------------------------------------------------------

def db(x):
    return 10.0 ** (x / 20.0)


def smooth_noise(rng, n, dt, tau):
    """Zero-mean unit-variance Gaussian noise with correlation time tau (FFT-shaped)."""
    x = rng.standard_normal(n)
    f = np.fft.rfftfreq(n, dt)
    y = np.fft.irfft(np.fft.rfft(x) / (1.0 + (2 * np.pi * f * tau) ** 2), n)
    return (y - y.mean()) / (y.std() + 1e-12)


def band(x, sr, lo=None, hi=None, order=2):
    """Zero-phase band limiting of a short signal by a smooth FFT mask."""
    n = len(x)
    if n == 0:
        return x
    f = np.fft.rfftfreq(n, 1.0 / sr)
    g = np.ones_like(f)
    if lo:
        g /= np.sqrt(1 + (lo / np.maximum(f, 1e-3)) ** (2 * order))
    if hi:
        g /= np.sqrt(1 + (f / hi) ** (2 * order))
    return np.fft.irfft(np.fft.rfft(x) * g, n).astype(F32)


def conv(x, h):
    """Linear convolution of short signals via FFT (output length len(x))."""
    n = len(x) + len(h) - 1
    m = 1 << (n - 1).bit_length()
    return np.fft.irfft(np.fft.rfft(x, m) * np.fft.rfft(h, m), m)[:len(x)].astype(F32)


def ola_conv(x, h, block=1 << 16):
    """Long convolution in blocks (overlap-add), for full-scene impulse trains."""
    out = np.zeros(len(x) + len(h), F32)
    m = 1 << (block + len(h) - 1).bit_length()
    H = np.fft.rfft(h, m)
    for i in range(0, len(x), block):
        seg = x[i:i + block]
        if not seg.any():
            continue
        y = np.fft.irfft(np.fft.rfft(seg, m) * H, m)[:len(seg) + len(h) - 1]
        out[i:i + len(y)] += y
    return out[:len(x)]


def osc(freq, sr, phase0=0.0):
    """Sine with a time-varying frequency array; silent above 0.47*sr (no aliasing)."""
    ph = phase0 + 2 * np.pi * np.cumsum(freq) / sr
    return (np.sin(ph) * (freq < 0.47 * sr)).astype(F32)


def env(n, sr, att, rel):
    """Raised-cosine attack/release envelope of n samples."""
    e = np.ones(n, F32)
    a, r = min(int(att * sr), n // 2), min(int(rel * sr), n // 2)
    if a > 0:
        e[:a] = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, a))
    if r > 0:
        e[n - r:] = 0.5 + 0.5 * np.cos(np.linspace(0, np.pi, r))
    return e


def ring(sr, freqs, decays, amps, dur):
    """Modal (struck object) synthesis: decaying partials."""
    t = np.arange(int(dur * sr)) / sr
    y = np.zeros(len(t), F32)
    for f, d, a in zip(freqs, decays, amps):
        if f < 0.47 * sr:
            y += (a * np.exp(-t / d) * np.sin(2 * np.pi * f * t)).astype(F32)
    return y


def place(dst, src, i0):
    """Add src into dst starting at sample i0 (clipped to dst)."""
    a, b = max(i0, 0), min(i0 + len(src), len(dst))
    if b > a:
        dst[a:b] += src[a - i0:b - i0]


def concat(parts):
    return np.concatenate(parts).astype(F32) if parts else np.zeros(1, F32)


def silence(sr, s):
    return np.zeros(max(int(s * sr), 0), F32)


def block_rms(x, n):
    m = len(x) // n
    if m == 0:
        return np.array([np.sqrt(np.mean(x.astype(np.float64) ** 2))])
    return np.sqrt(np.mean(x[:m * n].astype(np.float64).reshape(m, n) ** 2, axis=1))


def pulse(t, t0, rise, decay):
    """Gust / swell shape: raised-cosine rise then exponential decay."""
    x = np.zeros_like(t)
    a = (t >= t0) & (t < t0 + rise)
    x[a] = 0.5 - 0.5 * np.cos(np.pi * (t[a] - t0) / rise)
    b = t >= t0 + rise
    x[b] = np.exp(-(t[b] - t0 - rise) / decay)
    return x


def trapezoid(t, t0, t1, ramp):
    """1 inside [t0, t1] with soft ramps of `ramp` seconds outside."""
    up = np.clip((t - t0 + ramp) / ramp, 0, 1)
    dn = np.clip((t1 + ramp - t) / ramp, 0, 1)
    return 0.5 - 0.5 * np.cos(np.pi * np.minimum(up, dn))


# --------------------------------------------------------------------------
# scene parameters
# --------------------------------------------------------------------------

def choose_params(rng, condition, duration):
    """Format + environment parameters.  `random` mixes conditions and formats."""
    base = condition
    if condition == "random":
        base = str(rng.choice(CONDITIONS, p=[0.25, 0.2, 0.2, 0.2, 0.15]))
    P = dict(condition=condition, base=base, night=(base == "night"))
    # format (typical node) or drawn from a range in `random`
    P.update(sr=16000, channels=1, W=320, H=240, fps=(4, 1), clim_dt=10.0,
             colour="mono", gain_steps=0, clip=False)
    if condition == "random":
        P["sr"] = int(rng.choice([8000, 11025, 16000, 22050, 32000, 44100, 48000]))
        P["channels"] = int(rng.choice([1, 2], p=[0.7, 0.3]))
        P["W"], P["H"] = [(160, 120), (176, 144), (240, 180), (320, 240)][rng.integers(4)]
        P["fps"] = [(2, 1), (3, 1), (4, 1), (5, 1), (25, 6)][rng.integers(5)]
        P["clim_dt"] = float(rng.choice([5.0, 6.0, 8.0, 10.0]))
        P["colour"] = str(rng.choice(["mono", "420jpeg"]))
        P["gain_steps"] = int(rng.choice([0, 0, 1, 2]))
        P["clip"] = bool(rng.random() < 0.3)
    elif base in ("hum", "rain"):
        P["fps"] = (5, 1) if base == "hum" else (3, 1)
    # weather, by condition; `random` perturbs further
    wind = dict(calm=(1.0, 0.4), windy=(8.5, 1.0), hum=(2.5, 0.6), rain=(4.0, 0.7),
                night=(0.8, 0.3))[base]
    P["wind_mean"] = wind[0] * rng.uniform(0.6, 1.4)
    P["gust_rate"] = wind[1] * rng.uniform(0.7, 1.3)           # gusts / minute
    P["clouds"] = dict(calm="partly", windy="broken", hum=str(rng.choice(["clear", "partly", "broken"])),
                       rain="overcast", night="none")[base]
    P["rain"] = "steady" if base == "rain" else "none"
    P["machine"] = str(rng.choice(["pump", "fan", "generator"])) if base == "hum" else None
    P["house"] = base == "hum" or rng.random() < 0.35
    P["stream"] = rng.random() < 0.3
    P["traffic"] = rng.uniform(0.2, 1.0) if rng.random() < 0.6 else 0.0
    P["aircraft"] = int(rng.choice([0, 1, 1, 2]) * duration / 1200 + rng.random() * 0.5)
    P["thunder"] = int(rng.integers(1, 4)) if base == "rain" and rng.random() < 0.5 else 0
    if condition == "random":
        if rng.random() < 0.3:
            P["wind_mean"] *= rng.uniform(1.5, 3.0)
        if P["rain"] == "none" and rng.random() < 0.25:
            P["rain"] = "shower"
        if P["machine"] is None and rng.random() < 0.25:
            P["machine"], P["house"] = str(rng.choice(["pump", "fan", "generator"])), True
    P["insects"] = ("night" if P["night"] else "day") if (P["rain"] == "none" and rng.random() < 0.7) else None
    P["mains"] = float(rng.choice([50.0, 60.0]))
    # climate baseline
    P["t_mean"] = dict(calm=19, windy=14, hum=21, rain=12, night=10)[base] + rng.uniform(-4, 4)
    P["dew_dep"] = dict(calm=8, windy=7, hum=9, rain=1.5, night=3)[base] * rng.uniform(0.7, 1.3)
    P["p0"] = rng.uniform(985, 1025) - (8 if base in ("rain", "windy") else 0)
    return P


def start_time(rng, P, start_arg):
    if start_arg:
        s = start_arg.replace("Z", "+00:00").replace("z", "+00:00")
        return dtm.datetime.fromisoformat(s)
    day = dtm.date(2026, 4, 15) + dtm.timedelta(days=int(rng.integers(0, 150)))
    if P["night"]:
        mins = int(rng.integers(21 * 60 + 30, 23 * 60 + 45))
    else:
        mins = int(rng.integers(7 * 60, 17 * 60))
    return dtm.datetime(day.year, day.month, day.day, mins // 60, mins % 60, 0,
                        tzinfo=dtm.timezone.utc)


# --------------------------------------------------------------------------
# environment processes on the control grid
# --------------------------------------------------------------------------

def environment(rng, P, duration):
    tc = np.arange(int(duration * CTRL_HZ) + 2) / CTRL_HZ
    n, dt = len(tc), 1 / CTRL_HZ
    E, bg = dict(tc=tc), []
    # wind: wandering mean (minutes), turbulence (~1 s), discrete gusts
    m = P["wind_mean"]
    mean = m * np.clip(1 + 0.3 * smooth_noise(rng, n, dt, 240.0), 0.2, None)
    U = mean + 0.35 * m * smooth_noise(rng, n, dt, 1.2) + 0.15 * m * smooth_noise(rng, n, dt, 0.15)
    for _ in range(rng.poisson(P["gust_rate"] * duration / 60)):
        t0, amp = rng.uniform(0, duration), rng.uniform(0.3, 1.0) * (0.6 * m + 2)
        rise, decay = rng.uniform(1, 5), rng.uniform(3, 18)
        U += amp * pulse(tc, t0, rise, decay)
        if amp >= max(2.5, 0.5 * m):
            bg.append((t0, t0 + rise + 1.5 * decay, "gust"))
    E["U"] = 28 * np.tanh(np.clip(U, 0, None) / 28)      # storm-force gusts saturate
    # sun visibility: cloud shadows crossing (edge ramp shorter in wind)
    sun = np.ones(n)
    if P["night"]:
        sun[:] = 0
    elif P["clouds"] == "overcast":
        sun = 0.18 + 0.06 * smooth_noise(rng, n, dt, 60.0)
    else:
        rate = dict(clear=0.3, partly=1.5, broken=3.0)[P["clouds"]] * duration / 600
        for _ in range(rng.poisson(rate)):
            t0, d = rng.uniform(-30, duration), rng.uniform(15, 150)
            ramp = rng.uniform(2, 15) / (1 + 0.1 * m)
            depth = rng.uniform(0.25, 0.85)
            sun *= 1 - depth * trapezoid(tc, t0, t0 + d, ramp)
            if depth >= 0.35:
                bg.append((t0 - ramp, t0 + d + ramp, "cloud"))
    E["sun"] = np.clip(sun, 0, 1)
    # rain intensity (0..~1.5); showers have onsets of seconds to tens of seconds
    rain = np.zeros(n)
    if P["rain"] == "steady":
        t_on = rng.uniform(0, 0.1) * duration if rng.random() < 0.5 else -10
        t_off = duration * rng.uniform(0.9, 1.2)
        rain = rng.uniform(0.25, 0.55) * trapezoid(tc, t_on, t_off, 20) * np.clip(
            1 + 0.3 * smooth_noise(rng, n, dt, 30.0), 0.3, None)
        if t_on > 0:
            bg.append((t_on - 20, t_on + 20, "rain onset"))
    nshow = {"steady": rng.integers(1, 4), "shower": 1}.get(P["rain"], 0)
    for _ in range(int(nshow * max(duration / 1200, 0.3) + 0.5)):
        t0, d, ramp = rng.uniform(0, duration * 0.85), rng.uniform(30, 180), rng.uniform(5, 25)
        rain += rng.uniform(0.4, 1.0) * trapezoid(tc, t0, t0 + d, ramp)
        bg.append((t0 - ramp, t0 + d + ramp, "shower"))
    E["rain"] = rain
    # aircraft: straight flight at altitude h, speed v; range r(t) drives level and Doppler
    E["air"] = []
    for _ in range(P["aircraft"]):
        tcpa, h, v = rng.uniform(60, duration - 30), rng.uniform(1500, 9000), rng.uniform(70, 240)
        E["air"].append((tcpa, h, v, bool(rng.random() < 0.4)))
        half = 8 * h / v
        bg.append((tcpa - half, tcpa + half, "aircraft"))
    E["thunder"] = []
    for _ in range(P["thunder"]):
        t0, dist = rng.uniform(10, duration - 30), rng.uniform(1.0, 10.0)
        E["thunder"].append((t0, dist))
        bg.append((t0, t0 + 6 + 2.2 * dist, "thunder"))
    # distant traffic swells (vehicles pass a road ~0.5-2 km away)
    tr = np.full(n, 0.3)
    for _ in range(rng.poisson(2.5 * duration / 60 * P["traffic"])):
        tr += rng.uniform(0.3, 1.2) / (1 + ((tc - rng.uniform(0, duration)) / rng.uniform(4, 12)) ** 2)
    E["traffic"] = tr * P["traffic"]
    # machine controls, edited later by machinery-fault events
    on = np.ones(n) if P["condition"] in ("hum",) or (P["machine"] and P["condition"] == "random") else np.zeros(n)
    if P["machine"] is None:
        on[:] = 0
    E["on"], E["rpm"] = on, 1 + 0.004 * smooth_noise(rng, n, dt, 20.0)
    E["load"] = 1 + 0.15 * smooth_noise(rng, n, dt, 90.0)
    E["misfire"] = np.zeros(n)
    E["bg"] = bg
    return E


# --------------------------------------------------------------------------
# camera actors (sprites with perspective: size and speed scale with distance)
# --------------------------------------------------------------------------

def blob(img, cx, cy, rx, ry, val, alpha=1.0, soft=1.0):
    H, W = img.shape
    rx, ry = max(rx, 0.6), max(ry, 0.6)
    x0, x1 = max(int(cx - rx - soft - 1), 0), min(int(cx + rx + soft + 2), W)
    y0, y1 = max(int(cy - ry - soft - 1), 0), min(int(cy + ry + soft + 2), H)
    if x0 >= x1 or y0 >= y1:
        return
    yy, xx = np.ogrid[y0:y1, x0:x1]
    d = np.sqrt(((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2)
    a = np.clip((1 - d) * min(rx, ry) / soft + 0.5, 0, 1) * alpha
    reg = img[y0:y1, x0:x1]
    reg += a.astype(F32) * (val - reg)


class Actor:
    """A sprite moving along a path.  kind selects the body drawing."""

    def __init__(self, kind, t0, t1, x0, x1, yfeet, size, val, ir_val=None, **kw):
        self.kind, self.t0, self.t1 = kind, t0, t1
        self.x0, self.x1, self.y, self.size, self.val = x0, x1, yfeet, size, val
        self.ir_val = ir_val if ir_val is not None else val
        self.kw = kw

    def pos(self, t):
        u = np.clip((t - self.t0) / max(self.t1 - self.t0, 1e-6), 0, 1)
        x = self.x0 + (self.x1 - self.x0) * u
        y = self.y + self.kw.get("arc", 0) * math.sin(math.pi * u) + self.kw.get("wob", 0) * math.sin(9 * t)
        return x, y

    def visible(self, t, W, H):
        if not (self.t0 <= t <= self.t1):
            return False
        x, y = self.pos(t)
        s = self.size * W
        return -s < x * W < W + s and -s < y * H < H + s * 2

    def draw(self, img, t, ir):
        if not (self.t0 <= t <= self.t1):
            return
        H, W = img.shape
        x, y = self.pos(t)
        cx, cy, s = x * W, y * H, self.size * H
        v = self.ir_val if ir else self.val
        k, ph = self.kind, 2 * math.pi * self.kw.get("gait", 1.8) * t
        if k == "person":            # s = body height in px
            bob = 0.02 * s * abs(math.sin(ph))
            for side in (-1, 1):
                blob(img, cx + side * 0.12 * s * math.sin(ph), cy - 0.23 * s, 0.05 * s, 0.24 * s, v)
            blob(img, cx, cy - 0.62 * s - bob, 0.13 * s, 0.24 * s, v * 0.9 + 10)
            blob(img, cx, cy - 0.93 * s - bob, 0.07 * s, 0.08 * s, v + 25)
            if self.kw.get("arm"):     # working: a swinging arm
                blob(img, cx + 0.18 * s, cy - 0.7 * s + 0.12 * s * math.sin(2 * ph), 0.12 * s, 0.035 * s, v)
        elif k in ("deer", "fox", "boar"):   # s = shoulder height
            L = dict(deer=1.4, fox=1.5, boar=1.3)[k] * s
            body_h = dict(deer=0.35, fox=0.35, boar=0.55)[k] * s
            legs = dict(deer=0.6, fox=0.45, boar=0.4)[k] * s
            d = 1 if self.x1 > self.x0 else -1
            for i, off in enumerate((-0.35, -0.25, 0.3, 0.4)):
                sw = 0.08 * s * math.sin(ph + i * 1.6)
                blob(img, cx + off * L + sw, cy - legs / 2, 0.03 * s + 0.5, legs / 2, v)
            blob(img, cx, cy - legs - body_h / 2, L / 2, body_h / 2, v)
            hx, hy = cx + d * 0.55 * L, cy - legs - body_h * (1.4 if k == "deer" else 0.6)
            blob(img, hx, hy, 0.13 * s, 0.1 * s, v)
            if k == "fox":
                blob(img, cx - d * 0.65 * L, cy - legs - 0.1 * s, 0.3 * s, 0.07 * s, v)
            if ir:                   # eyeshine under the IR illuminator
                blob(img, hx + d * 0.06 * s, hy - 0.02 * s, 0.9, 0.9, 255, 0.9, 0.5)
        elif k == "bird":            # flying: flapping wings
            flap = abs(math.sin(2 * math.pi * self.kw.get("flap", 6) * t))
            blob(img, cx, cy, s, 0.4 * s, v)
            blob(img, cx, cy - 0.3 * s * flap, 2.2 * s * (0.4 + 0.6 * flap), 0.25 * s, v, 0.9)
        elif k == "perch":           # a bird sitting, hopping now and then
            hop = 0.6 * s * max(0.0, math.sin(2 * math.pi * 0.7 * t)) ** 8
            blob(img, cx, cy - hop, 0.8 * s, 0.55 * s, v)
            blob(img, cx + 0.6 * s, cy - hop - 0.45 * s, 0.35 * s, 0.35 * s, v)
        elif k == "bike":            # rider + two wheels
            blob(img, cx - 0.35 * s, cy - 0.17 * s, 0.17 * s, 0.17 * s, v, 0.7)
            blob(img, cx + 0.35 * s, cy - 0.17 * s, 0.17 * s, 0.17 * s, v, 0.7)
            blob(img, cx, cy - 0.62 * s, 0.12 * s, 0.22 * s, v)
            blob(img, cx + 0.05 * s, cy - 0.9 * s, 0.07 * s, 0.07 * s, v + 20)
        elif k == "near":            # small animal/insect right at the lens: big and blurred
            jx = 0.04 * W * math.sin(3.1 * t) + 0.02 * W * math.sin(7.7 * t)
            blob(img, cx + jx, cy, s, 0.7 * s, v, 0.95, soft=0.5 * s)
        elif k == "light":           # flashing warning lamp
            rate = self.kw.get("rate", 1.5)
            if (t * rate) % 1.0 < 0.5:
                blob(img, cx, cy, s, s, 255, 1.0, 0.8)
                blob(img, cx, cy, 3 * s, 3 * s, 255, 0.25, 2 * s)
        elif k == "smoke":           # exhaust puffs rising and spreading
            for p in self.kw["puffs"]:
                a = t - p
                if 0 <= a < 4:
                    blob(img, cx + 2 * a * s / 3, cy - a * s * 1.2, s * (0.5 + a), s * (0.4 + 0.8 * a),
                         self.kw.get("shade", 70), 0.8 * (1 - a / 4), soft=s * (0.5 + a))


# --------------------------------------------------------------------------
# event synthesis: wildlife
# --------------------------------------------------------------------------

class Event:
    def __init__(self, kind, cls):
        self.kind, self.cls = kind, cls
        self.audio, self.actors, self.spans = None, [], None
        self.machine = None          # callable(E, t0) editing machine controls
        self.heat = None             # (rise_s, dT) warming the enclosure
        self.t0, self.snr = 0.0, 0.0

    @property
    def dur(self):
        d = len(self.audio) / self.sr if self.audio is not None else 0.0
        return max([d] + [a.t1 for a in self.actors] + [s[1] for s in (self.spans or [])])


def note(sr, f0, f1, dur, am_rate=0.0, am_depth=0.0, h2=0.12, att=0.01):
    n = max(int(dur * sr), 8)
    f = f0 * (f1 / f0) ** np.linspace(0, 1, n)
    y = osc(f, sr) + h2 * osc(2 * f, sr)
    if am_rate:
        y *= 1 - am_depth * (0.5 + 0.5 * np.sin(2 * np.pi * am_rate * np.arange(n) / sr)).astype(F32)
    return y * env(n, sr, min(att, dur / 3), min(0.02, dur / 3))


def songbird(rng, sr, P):
    """Song bout of several phrases built from whistles, trills, buzzes, chips, sweeps."""
    fb = min(rng.uniform(2200, 5500), 0.4 * sr)
    parts = []
    for _ in range(rng.integers(3, 9)):
        kind = rng.choice(["whistle", "trill", "buzz", "chip", "sweep"])
        if kind == "whistle":
            ph = [note(sr, fb * rng.uniform(0.8, 1.3), fb * rng.uniform(0.8, 1.3), rng.uniform(0.15, 0.6))
                  for _ in range(rng.integers(1, 4))]
        elif kind == "trill":
            d, f = 1 / rng.uniform(10, 25), fb * rng.uniform(0.8, 1.4)
            ph = [concat([note(sr, f * 1.15, f * 0.85, d * 0.6), silence(sr, d * 0.4)])] * rng.integers(5, 20)
        elif kind == "buzz":
            ph = [note(sr, fb * 0.9, fb, rng.uniform(0.3, 0.9), rng.uniform(80, 250), 0.9)]
        elif kind == "chip":
            ph = [concat([note(sr, fb * 1.5, fb * 0.8, 0.02, h2=0.4, att=0.002), silence(sr, rng.uniform(0.1, 0.4))])
                  for _ in range(rng.integers(2, 7))]
        else:
            ph = [note(sr, fb * rng.uniform(1.2, 1.6), fb * rng.uniform(0.5, 0.8), rng.uniform(0.08, 0.3))
                  for _ in range(rng.integers(2, 6))]
        parts += ph + [silence(sr, rng.uniform(0.4, 4.0))]
    return concat(parts[:-1])


def harsh_call(rng, sr, P):
    """Crow/jay: harmonic-rich caws with a nasal formant and a rasp."""
    f0, form, rasp = rng.uniform(450, 800), rng.uniform(1200, 1900), rng.uniform(0.3, 0.9)
    parts = []
    for _ in range(rng.integers(2, 7)):
        d = rng.uniform(0.25, 0.55)
        n = int(d * sr)
        f = f0 * np.linspace(1.05, 0.9, n)
        y = np.zeros(n, F32)
        for k in range(1, 14):
            y += osc(k * f, sr, rng.uniform(0, 6)) * math.exp(-((k * f0 - form) / 900) ** 2) / k ** 0.5
        y *= 1 + rasp * smooth_noise(rng, n, 1 / sr, 1 / f0).astype(F32) * 0.5
        y += 0.3 * band(rng.standard_normal(n).astype(F32), sr, 800, 4000) * y.std()
        parts += [y * env(n, sr, 0.03, 0.08), silence(sr, rng.uniform(0.2, 1.2))]
    return concat(parts[:-1])


def woodpecker(rng, sr, P):
    """Drum rolls: 15-25 strikes/s exciting a wood resonance, fading at the end."""
    hit = ring(sr, [rng.uniform(700, 1500), rng.uniform(2000, 3500)], [0.012, 0.005], [1, 0.5], 0.06)
    parts = []
    for _ in range(rng.integers(1, 4)):
        d, rate = rng.uniform(0.8, 2.0), rng.uniform(15, 25)
        x = np.zeros(int(d * sr) + hit.size, F32)
        k = np.arange(int(d * rate))
        x[(k / rate * sr).astype(int)] = np.linspace(1, 0.4, k.size) * rng.uniform(0.8, 1.0, k.size)
        parts += [conv(x, hit), silence(sr, rng.uniform(2, 10))]
    return concat(parts[:-1])


def owl(rng, sr, P):
    """Tawny-owl-like hoots (with tremolo) or a small owl's repeated toots."""
    parts = []
    if rng.random() < 0.6:
        f = rng.uniform(330, 450)
        for _ in range(rng.integers(2, 5)):
            hoot = note(sr, f, f * 0.97, 0.7, 5.0, 0.2, h2=0.2, att=0.05)
            trem = concat([note(sr, f * 1.03, f, 0.12, h2=0.2), silence(sr, 0.06)] * 3)
            parts += [hoot, silence(sr, rng.uniform(2, 4)), trem,
                      note(sr, f * 1.03, f * 0.95, 1.0, 6.0, 0.4, h2=0.2, att=0.05), silence(sr, rng.uniform(4, 10))]
    else:
        f = rng.uniform(900, 1400)
        for _ in range(rng.integers(5, 15)):
            parts += [note(sr, f * 1.1, f, 0.25, h2=0.1, att=0.03), silence(sr, rng.uniform(1.0, 3.0))]
    return concat(parts[:-1])


def frog_chorus(rng, sr, P):
    """Chorus bout of several individuals: pulsed croaks or long toad trills."""
    dur = rng.uniform(15, 60)
    n = int(dur * sr)
    y = np.zeros(n, F32)
    for _ in range(rng.integers(3, 10)):
        fc = min(rng.uniform(400, 2500), 0.4 * sr)
        pr = rng.uniform(40, 150) if rng.random() < 0.6 else rng.uniform(12, 35)   # pulses / s
        call = rng.uniform(0.2, 1.0) if pr > 36 else rng.uniform(2.0, 6.0)
        pl = min(0.5 / pr, 0.012)
        p = note(sr, fc * 1.05, fc, pl, h2=0.3, att=pl / 4)
        c = np.zeros(int(call * sr) + p.size, F32)
        for i in (np.arange(int(call * pr)) / pr * sr).astype(int):
            c[i:i + p.size] += p
        t = rng.uniform(0, 3)
        gain = rng.uniform(0.3, 1.0)
        while t < dur - call:
            place(y, c * gain * rng.uniform(0.7, 1.0), int(t * sr))
            t += call + rng.uniform(0.5, 4.0)
    return y * env(n, sr, 4.0, 4.0)


def mammal_bark(rng, sr, P):
    """Fox or roe-deer barks (harsh, falling pitch) or boar grunts (low, noisy)."""
    parts = []
    if rng.random() < 0.7:
        f0 = rng.uniform(450, 900)
        for _ in range(rng.integers(2, 7)):
            for _ in range(rng.integers(1, 4)):
                d = rng.uniform(0.12, 0.35)
                n = int(d * sr)
                f = f0 * np.linspace(1.1, 0.75, n)
                y = sum(osc(k * f, sr) / k for k in range(1, 9)).astype(F32)
                y += 0.5 * y.std() * band(rng.standard_normal(n).astype(F32), sr, 500, 3000)
                parts += [y * env(n, sr, 0.01, 0.05), silence(sr, rng.uniform(0.15, 0.4))]
            parts.append(silence(sr, rng.uniform(1.5, 8)))
    else:
        for _ in range(rng.integers(4, 14)):
            d = rng.uniform(0.2, 0.5)
            n = int(d * sr)
            pulses = (np.sin(2 * np.pi * rng.uniform(15, 30) * np.arange(n) / sr) > 0.3).astype(F32)
            y = band(rng.standard_normal(n).astype(F32), sr, 70, 500) * pulses
            parts += [y * env(n, sr, 0.02, 0.08), silence(sr, rng.uniform(0.3, 2.5))]
    return concat(parts[:-1])


def rustle(rng, sr, dur, rate=3.0):
    """Irregular leaf/grass rustle of an animal moving (granular noise bursts)."""
    n = int(dur * sr)
    e = np.clip(smooth_noise(rng, n // 64 + 2, 64 / sr, 1 / rate), 0, None) ** 2
    e = np.interp(np.arange(n), np.arange(e.size) * 64, e).astype(F32)
    return band(rng.standard_normal(n).astype(F32), sr, 1200, 7000) * e


# --------------------------------------------------------------------------
# event synthesis: human activity
# --------------------------------------------------------------------------

VOWELS = [(730, 1090, 2440), (530, 1840, 2480), (270, 2290, 3010), (570, 840, 2410),
          (300, 870, 2240), (500, 1500, 2500), (660, 1700, 2400)]


def utterance(rng, sr, f0, fscale):
    """One voiced utterance: syllables with consonant noise and formant-shaped harmonics."""
    nsyl = int(rng.integers(3, 16))
    sd = rng.uniform(0.12, 0.28, nsyl)
    n = int(sd.sum() * sr)
    t = np.arange(n) / sr
    T = t[-1] + 1e-9
    # pitch: declination + accents + jitter
    pitch = f0 * (1.15 - 0.3 * t / T) * (1 + 0.08 * np.sin(2 * np.pi * t / rng.uniform(0.5, 1.2)))
    pitch *= 1 + 0.01 * smooth_noise(rng, n, 1 / sr, 0.02)
    edges = np.concatenate([[0], np.cumsum(sd)])
    F = np.array([VOWELS[i] for i in rng.integers(0, len(VOWELS), nsyl)], float) * fscale
    Fi = np.stack([np.interp(t, edges[:-1] + sd / 2, F[:, j]) for j in range(3)])   # coarticulation
    amp = np.zeros(n, F32)
    cons = np.zeros(n, F32)
    for i in range(nsyl):
        a, b = int(edges[i] * sr), min(int(edges[i + 1] * sr), n)
        c = int((b - a) * rng.uniform(0.2, 0.4))
        amp[a + c:b] = np.sin(np.linspace(0, np.pi, b - a - c)) ** 0.7
        kind = rng.integers(0, 4)               # 0 none, 1 fricative, 2 plosive, 3 nasal
        if kind == 1:
            lo = rng.choice([2500.0, 4000.0])
            cons[a:a + c] = band(rng.standard_normal(c).astype(F32), sr, lo, lo * 2) * np.hanning(c) * 0.5
        elif kind == 2:
            m = min(int(0.02 * sr), c)
            cons[a + c - m:a + c] = band(rng.standard_normal(m).astype(F32), sr, 800, 5000) * 0.8
        elif kind == 3:
            amp[a:a + c] = 0.3
    ph = 2 * np.pi * np.cumsum(pitch) / sr
    y = np.zeros(n, F32)
    for k in range(1, int(min(4500, 0.45 * sr) / f0)):
        fk = k * pitch
        g = sum(1 / (1 + ((fk - Fi[j]) / (60 + 30 * j)) ** 2) for j in range(3)) / k ** 0.6
        y += (g * np.sin(k * ph) * (fk < 0.45 * sr)).astype(F32)
    y *= amp
    return y + cons * (y.std() + 1e-6)


def speech(rng, sr, P):
    """A conversation of one to three speakers, turns separated by pauses."""
    spk = [(rng.uniform(85, 150), 1.0) if rng.random() < 0.5 else (rng.uniform(165, 250), 1.15)
           for _ in range(rng.integers(1, 4))]
    parts = []
    for _ in range(rng.integers(2, 9)):
        f0, fs = spk[rng.integers(len(spk))]
        parts += [utterance(rng, sr, f0, fs) * rng.uniform(0.6, 1.0), silence(sr, rng.uniform(0.2, 2.0))]
    return concat(parts[:-1])


def footsteps(rng, sr, dur, surface):
    """Steps at ~1.8/s: gravel = dense micro-impacts (crunch), leaves = crackle."""
    n = int(dur * sr)
    y = np.zeros(n, F32)
    rate = rng.uniform(1.6, 2.1)
    for ts in np.arange(rng.uniform(0, 0.3), dur - 0.3, 1 / rate):
        ln = int(rng.uniform(0.08, 0.2) * sr)
        g = np.zeros(ln, F32)
        k = rng.integers(20, 80) if surface == "gravel" else rng.integers(8, 30)
        g[rng.integers(0, ln, k)] = rng.standard_normal(k) * np.exp(-rng.uniform(0, 3, k))
        lo = 1500 if surface == "gravel" else 800
        step = band(conv(g, rng.standard_normal(int(0.003 * sr)).astype(F32)), sr, lo, 7000)
        step += band(g, sr, 60, 300) * 2                      # heel thud
        place(y, step, int(ts * sr))
    return y


def walker_actor(rng, P, kind, dur_hint=None, val=None, side=None):
    """A ground actor crossing the view; speed and size follow ground distance."""
    hz = P["horizon"]
    yf = rng.uniform(hz + 0.06, 0.95)
    depth = yf - hz                                     # image-plane distance below horizon
    height = dict(person=1.7, deer=0.9, fox=0.4, boar=0.7, bike=1.7)[kind]
    speed = dict(person=1.3, deer=0.9, fox=1.2, boar=0.8, bike=4.5)[kind] * rng.uniform(0.7, 1.3)
    cam_h = 1.2
    size = depth * height / cam_h
    v_img = depth * speed / cam_h * P["H"] / P["W"]       # frame widths per second
    left = rng.random() < 0.5 if side is None else side
    margin = size * 1.5 * P["H"] / P["W"]
    x0, x1 = (-margin, 1 + margin) if left else (1 + margin, -margin)
    frac = 1.0
    if rng.random() < 0.3:                              # stops short or turns away in view
        frac = rng.uniform(0.4, 0.8)
        x1 = x0 + (x1 - x0) * frac
    T = abs(x1 - x0) / v_img
    val = val if val is not None else dict(person=rng.uniform(40, 170), deer=75, fox=95, boar=35,
                                           bike=rng.uniform(40, 120))[kind]
    return Actor(kind, 0.0, T, x0, x1, yf, size, val, ir_val=185, gait=speed * 1.4)


def walk_by(rng, sr, P):
    """Someone walking through (on gravel or leaves), usually seen, sometimes talking."""
    ev_a = walker_actor(rng, P, "person")
    dur = ev_a.t1
    y = footsteps(rng, sr, dur, str(rng.choice(["gravel", "leaves"])))
    tt = np.arange(len(y)) / sr
    y *= (1 / (1 + ((tt - dur / 2) / (dur / 4)) ** 2)).astype(F32)   # approach then recede
    if rng.random() < 0.3:
        s = speech(rng, sr, P)[: len(y)] * 0.7
        place(y, s, 0)
    return y, ([ev_a] if rng.random() < 0.85 else [])


def gate(rng, sr, P):
    """Hinge squeak (stick-slip) then a metallic clank; often opened and shut."""
    parts = []
    for _ in range(rng.integers(1, 3)):
        d = rng.uniform(0.3, 1.0)
        n = int(d * sr)
        f = rng.uniform(500, 1200) * (1 + 0.1 * smooth_noise(rng, n, 1 / sr, 0.05))
        sq = sum(osc(k * f, sr) / k for k in range(1, 6)) * env(n, sr, 0.05, 0.1) * 0.3
        f1 = rng.uniform(250, 700)
        clank = ring(sr, f1 * np.array([1, 2.76, 5.40, 8.93]), [0.9, 0.5, 0.25, 0.12],
                     [1, 0.7, 0.5, 0.3], 1.5)
        parts += [sq, silence(sr, rng.uniform(0.1, 0.5)), clank, silence(sr, rng.uniform(2, 8))]
    return concat(parts[:-1])


def hammering(rng, sr, P):
    """Bursts of hammer strikes: a ringing nail/metal ping plus a wood thud."""
    parts = []
    for _ in range(rng.integers(2, 6)):
        for _ in range(rng.integers(3, 12)):
            ping = ring(sr, rng.uniform(1800, 3500) * np.array([1, 2.3]), [0.04, 0.02], [1, 0.4], 0.15)
            thud = band(rng.standard_normal(int(0.15 * sr)).astype(F32), sr, 100, 500) * np.exp(
                -np.arange(int(0.15 * sr)) / (0.02 * sr)).astype(F32)
            parts += [ping + 2 * thud, silence(sr, 1 / rng.uniform(1.2, 2.5) - 0.15)]
        parts.append(silence(sr, rng.uniform(1, 5)))
    return concat(parts[:-1])


def sawing(rng, sr, P):
    """Hand saw: push strokes of tooth-modulated band noise, quieter pull strokes."""
    per = rng.uniform(0.6, 1.2)
    parts = []
    for _ in range(rng.integers(2, 4)):
        for i in range(rng.integers(8, 25)):
            n = int(per / 2 * sr)
            tooth = 1 + 0.7 * np.sin(2 * np.pi * rng.uniform(50, 150) * np.arange(n) / sr)
            s = band(rng.standard_normal(n).astype(F32), sr, 2000, 7000) * tooth.astype(F32)
            parts.append(s * np.sin(np.linspace(0, np.pi, n)).astype(F32) * (1.0 if i % 2 == 0 else 0.4))
        parts.append(silence(sr, rng.uniform(1, 4)))
    return concat(parts[:-1])


def whistling(rng, sr, P):
    """A whistled tune: scale notes with glides and vibrato, some breath noise."""
    base = rng.uniform(900, 1700)
    scale = np.array([0, 2, 4, 5, 7, 9, 11, 12])
    freqs, n_all = [], 0
    for _ in range(rng.integers(8, 30)):
        d = rng.choice([0.15, 0.25, 0.4, 0.6])
        freqs.append(np.full(int(d * sr), base * 2 ** (rng.choice(scale) / 12)))
    f = np.concatenate(freqs)
    k = max(int(0.03 * sr), 1)
    f = np.convolve(f, np.ones(k) / k, mode="same")                # glides
    f *= 1 + 0.01 * np.sin(2 * np.pi * 5.5 * np.arange(f.size) / sr)
    y = osc(f, sr) * env(f.size, sr, 0.05, 0.1)
    return y + 0.05 * band(rng.standard_normal(f.size).astype(F32), sr, 1000, 6000)


def ringtone(rng, sr, P):
    """A phone ringing: alternating square-ish tones or a marimba-like melody."""
    parts = []
    if rng.random() < 0.5:
        f1, f2 = rng.uniform(900, 1500), rng.uniform(1500, 2200)
        for _ in range(rng.integers(3, 7)):
            for _ in range(10):
                for f in (f1, f2):
                    n = int(0.05 * sr)
                    parts.append(sum(osc(np.full(n, k * f), sr) / k for k in (1, 3, 5)))
            parts.append(silence(sr, 2.0))
    else:
        mel = rng.uniform(500, 900) * 2 ** (rng.choice([0, 3, 5, 7, 10, 12], 8) / 12)
        for _ in range(rng.integers(3, 7)):
            for f in mel:
                parts.append(ring(sr, [f, 4 * f], [0.15, 0.04], [1, 0.3], 0.18))
            parts.append(silence(sr, 1.0))
    return concat(parts[:-1])


def bicycle(rng, sr, P, T):
    """Bicycle passing: tyre crunch, freewheel pawl clicks when coasting, maybe a bell."""
    n = int(T * sr)
    t = np.arange(n) / sr
    y = band(rng.standard_normal(n).astype(F32), sr, 300, 4000) * 0.3
    clicks = np.zeros(n, F32)
    rate = rng.uniform(15, 35)
    idx = (np.arange(0, T, 1 / rate) * sr).astype(int)
    coast = np.sin(2 * np.pi * t / rng.uniform(2, 5)) > 0
    clicks[idx] = coast[idx]
    y += conv(clicks, ring(sr, [rng.uniform(3000, 5000)], [0.002], [1], 0.01))
    if rng.random() < 0.4:
        place(y, ring(sr, [2600, 4100, 6300], [0.4, 0.25, 0.15], [1, 0.5, 0.3], 0.8) * 3, int(0.2 * n))
    return y * (1 / (1 + ((t - T / 2) / (T / 5)) ** 2)).astype(F32)


# --------------------------------------------------------------------------
# machines: steady running sound, and faults
# --------------------------------------------------------------------------

def wavetable(amps, size=2048, rng=None):
    x = np.arange(size) / size
    ph = rng.uniform(0, 2 * np.pi, len(amps)) if rng is not None else np.zeros(len(amps))
    return sum(a * np.sin(2 * np.pi * (k + 1) * x + p) for k, (a, p) in enumerate(zip(amps, ph))).astype(F32)


def machine_sound(rng, sr, kind, mains, on, rpm, misfire=None):
    """Running machine: mains magnetostriction hum (2x mains and harmonics, only
    while powered), rotor tone with blade-pass harmonics following rpm, or for a
    generator an engine firing-pulse train (cycles drop out where misfiring)."""
    n = on.size
    y = np.zeros(n, F32)
    if kind in ("pump", "fan"):
        hum = wavetable([0.05, 1.0, 0.1, 0.4, 0.05, 0.2, 0, 0.1], rng=rng)
        ph = (np.arange(n) * (mains / sr)) % 1.0
        y += hum[(ph * 2048).astype(np.int32)] * (on > 0.5)
        f_rot = (mains / 2 if kind == "fan" else mains) * 0.98          # 2- or 4-pole with slip
        blades = 6 if kind == "pump" else 5
        amps = [0.3, 0.15] + [0.0] * (blades - 3) + [0.6, 0, 0, 0] + [0.0] * (blades - 4) + [0.3]
        K = int(0.45 * sr / f_rot)
        rot = wavetable(amps[:K], rng=rng)
    else:
        f_rot = 50.0 if mains == 50 else 60.0                             # 3000/3600 rpm single cylinder
        rot = wavetable([0.8 / (k + 1) ** 0.7 for k in range(min(60, int(0.45 * sr / (f_rot / 2))))], rng=rng)
        f_rot /= 2                                                       # firing every 2 revs
    spd = np.clip(rpm, 0, 1.3)
    ph = np.cumsum(f_rot * spd / sr)
    r = rot[((ph % 1.0) * 2048).astype(np.int32)] * spd ** 2
    if misfire is not None and misfire.any():
        cyc = ph.astype(np.int64)
        miss = rng.random(cyc[-1] + 2) < np.interp(np.arange(cyc[-1] + 2), cyc[::max(1, sr // 200)],
                                                     misfire[::max(1, sr // 200)])
        r *= ~miss[cyc]
    return y * 0.5 + r


def stop_restart(rng, sr, P, E_unused=None):
    off = rng.uniform(15, 60)
    spin = rng.uniform(3, 9)
    start = rng.uniform(2, 5)

    def edit(E, t0):
        tc = E["tc"]
        a = (tc >= t0) & (tc < t0 + spin)                 # power cut: rotor coasts down
        E["rpm"][a] *= np.exp(-(tc[a] - t0) / (spin / 3))
        E["rpm"][(tc >= t0 + spin) & (tc < t0 + off)] = 0
        E["on"][(tc >= t0) & (tc < t0 + off)] = 0
        b = (tc >= t0 + off) & (tc < t0 + off + start)    # restart: run-up
        E["rpm"][b] *= (tc[b] - t0 - off) / start
    return off, spin, start, edit


# --------------------------------------------------------------------------
# event factory
# --------------------------------------------------------------------------

WILD_DAY = dict(songbird=3, harsh=2, woodpecker=1, flyby=1.5, deer=1, fox=0.7, bark=0.7, near=1, frogs=0.5)
WILD_NIGHT = dict(owl=3, frogs=3, bark=1.5, deer=1, fox=1, near=0.7, songbird=0.4, flyby=0.3)
HUMAN = dict(speech=3, walk=2.5, gate=1, hammer=1, saw=1, whistle=1, phone=0.8, bike=1)
MACH_RUN = dict(knock=2, squeal=2, cavitation=1.5, surge=2, stop=1.5, overheat=1.5, beeper=1, light=1)
MACH_IDLE = dict(beeper=2, startstop=2.5, light=1, puffs=1)


def pick(rng, table):
    k = list(table)
    w = np.array([table[x] for x in k], float)
    return k[rng.choice(len(k), p=w / w.sum())]


def make_event(rng, sr, P, cls):
    """Draw one event of class `cls` and synthesise its sound and sprites (relative times)."""
    night, running = P["night"], P["machine"] is not None and P["condition"] in ("hum", "random")
    if cls == "wildlife":
        t = dict(WILD_NIGHT if night else WILD_DAY)
        if P["rain"] != "none":
            t["frogs"] = 3
        kind = pick(rng, t)
    elif cls == "human_activity":
        t = dict(HUMAN)
        if night:
            t.update(hammer=0.2, saw=0.2, bike=0.3, whistle=0.3)
        kind = pick(rng, t)
    else:
        t = dict(MACH_RUN if running else MACH_IDLE)
        if not P["house"]:
            t.pop("light", None), t.pop("puffs", None)
        if running and P["machine"] == "generator":
            t["misfire"] = 2.5
        kind = pick(rng, t)
    ev = Event(kind, cls)
    ev.sr = sr
    hz, W, H = P["horizon"], P["W"], P["H"]
    seen = rng.random()
    if kind == "songbird":
        ev.audio = songbird(rng, sr, P)
        if seen < 0.4:      # singing from a perch in view (tree crown)
            x = P["tree_x"] + rng.uniform(-0.1, 0.1)
            ev.actors.append(Actor("perch", 0, ev.audio.size / sr, x, x + rng.uniform(-0.05, 0.05),
                                   hz - rng.uniform(0.05, 0.2), rng.uniform(0.012, 0.03), 45, 160))
    elif kind == "harsh":
        ev.audio = harsh_call(rng, sr, P)
        if seen < 0.6:
            T = rng.uniform(1.0, 4.0)
            a = Actor("bird", rng.uniform(0, 1), 0, -0.05, 1.05, rng.uniform(0.05, hz - 0.05),
                      rng.uniform(0.015, 0.04), 25, 150, arc=rng.uniform(-0.1, 0.1), flap=4)
            a.t1 = a.t0 + T
            if rng.random() < 0.5:
                a.x0, a.x1 = a.x1, a.x0
            ev.actors.append(a)
    elif kind == "flyby":
        T = rng.uniform(0.6, 3.5)
        a = Actor("bird", 0, T, -0.05, 1.05, rng.uniform(0.05, 0.8), rng.uniform(0.01, 0.05),
                  rng.uniform(20, 90), 160, arc=rng.uniform(-0.15, 0.15), flap=rng.uniform(4, 12))
        if rng.random() < 0.5:
            a.x0, a.x1 = a.x1, a.x0
        ev.actors.append(a)
        if seen < 0.3:
            ev.audio = concat([silence(sr, rng.uniform(0, T / 2)), note(sr, 4000, 3000, 0.05, h2=0.3)] * 3)
    elif kind == "woodpecker":
        ev.audio = woodpecker(rng, sr, P)
        if seen < 0.3:
            x = P["tree_x"]
            ev.actors.append(Actor("perch", 0, ev.audio.size / sr, x, x, hz - 0.05, 0.02, 40, 150))
    elif kind == "owl":
        ev.audio = owl(rng, sr, P)
        if seen < 0.25:
            a = Actor("bird", rng.uniform(0, 2), 0, -0.1, 1.1, rng.uniform(0.1, 0.5), 0.05, 60, 200, flap=3)
            a.t1 = a.t0 + rng.uniform(1.5, 3)
            ev.actors.append(a)
    elif kind == "frogs":
        ev.audio = frog_chorus(rng, sr, P)
    elif kind in ("deer", "fox"):
        a = walker_actor(rng, P, kind if rng.random() < 0.85 else "boar")
        ev.actors.append(a)
        if seen < 0.35:     # mostly silent; sometimes rustling or barking
            ev.audio = rustle(rng, sr, a.t1) if rng.random() < 0.6 else mammal_bark(rng, sr, P)[: int(a.t1 * sr)]
    elif kind == "bark":
        ev.audio = mammal_bark(rng, sr, P)
        if seen < 0.4:
            a = walker_actor(rng, P, str(rng.choice(["deer", "fox"])))
            ev.actors.append(a)
    elif kind == "near":
        T = rng.uniform(2, 10)
        y0 = rng.uniform(0.75, 1.0)
        ev.actors.append(Actor("near", 0, T, rng.uniform(0.1, 0.9), rng.uniform(0.1, 0.9), y0,
                               rng.uniform(0.1, 0.3), rng.uniform(20, 80), 230))
        if seen < 0.7:
            ev.audio = rustle(rng, sr, T, rate=6.0)
    elif kind == "speech":
        ev.audio = speech(rng, sr, P)
        if seen < 0.5:
            a = walker_actor(rng, P, "person")
            ev.actors.append(a)
    elif kind == "walk":
        ev.audio, ev.actors = walk_by(rng, sr, P)
    elif kind in ("gate", "hammer", "saw"):
        ev.audio = dict(gate=gate, hammer=hammering, saw=sawing)[kind](rng, sr, P)
        if seen < 0.5:       # a person standing at work, or at the gate
            x = P["house_x"] if P["house"] and kind == "gate" else rng.uniform(0.15, 0.85)
            yf = rng.uniform(hz + 0.1, 0.9)
            ev.actors.append(Actor("person", 0, ev.audio.size / sr, x, x + rng.uniform(-0.02, 0.02), yf,
                                   (yf - hz) * 1.4, rng.uniform(40, 160), 185, gait=0.5, arm=kind != "gate"))
    elif kind == "whistle":
        ev.audio = whistling(rng, sr, P)
        if seen < 0.6:
            ev.actors.append(walker_actor(rng, P, "person"))
    elif kind == "phone":
        ev.audio = ringtone(rng, sr, P)
    elif kind == "bike":
        a = walker_actor(rng, P, "bike")
        ev.audio = bicycle(rng, sr, P, a.t1 + 4)
        a.t0, a.t1 = 2, a.t1 + 2
        if seen < 0.85:
            ev.actors.append(a)
    else:
        machinery_event(rng, sr, P, ev, kind)
    if ev.audio is not None:
        ev.dist = rng.uniform(0, 1)
        ev.audio = propagate(rng, sr, ev.audio, ev.dist)
    return ev


def machinery_event(rng, sr, P, ev, kind):
    """Faults of the running machine, or changes of an otherwise idle one."""
    f_rot = P["mains"] * 0.98
    if kind == "knock":       # bearing damage: impacts once per revolution ringing the housing
        T = rng.uniform(8, 40)
        x = np.zeros(int(T * sr), F32)
        idx = (np.arange(0, T, 1 / f_rot) * sr).astype(int)
        idx = idx[idx < x.size]   # the last impact can round to one past the end
        x[idx] = np.linspace(0.2, 1, idx.size) ** 2 * rng.uniform(0.6, 1, idx.size)
        ev.audio = conv(x, ring(sr, [rng.uniform(1800, 4000), rng.uniform(5000, 7000)], [0.003, 0.001],
                                [1, 0.5], 0.02))
    elif kind == "squeal":    # slipping belt: stick-slip tone with jittery pitch, intermittent
        T = rng.uniform(3, 20)
        n = int(T * sr)
        f = rng.uniform(1500, 3500) * (1 + 0.03 * smooth_noise(rng, n, 1 / sr, 0.05))
        gate_ = (smooth_noise(rng, n, 1 / sr, 0.4) > -0.3).astype(F32)
        y = sum(osc(k * f, sr) / k ** 1.5 for k in range(1, 4)) * band(gate_, sr, None, 20)
        ev.audio = y * env(n, sr, 0.3, 0.3)
    elif kind == "cavitation":   # vapour bubbles collapsing: dense heavy-tailed crackle
        T = rng.uniform(8, 40)
        n = int(T * sr)
        x = np.zeros(n, F32)
        k = int(rng.uniform(200, 1500) * T)
        x[rng.integers(0, n, k)] = rng.pareto(2.5, k).astype(F32)
        ev.audio = band(x, sr, 1000, 8000) * env(n, sr, 2, 1)
    elif kind == "misfire":  # engine skipping cycles + backfire pops
        T = rng.uniform(10, 40)
        prob = rng.uniform(0.05, 0.3)

        def edit(E, t0, T=T, prob=prob):
            E["misfire"] += prob * trapezoid(E["tc"], t0, t0 + T, 0.5)
        ev.machine = edit
        y = np.zeros(int(T * sr), F32)
        for tp in rng.uniform(0, T - 0.2, rng.integers(2, 8)):
            place(y, band(rng.standard_normal(int(0.08 * sr)).astype(F32), sr, 80, 2500) * np.exp(
                -np.arange(int(0.08 * sr)) / (0.01 * sr)).astype(F32) * 4, int(tp * sr))
        ev.audio = y
        if P["house"] and rng.random() < 0.6:
            ev.actors.append(Actor("smoke", 0, T, P["stack"][0], P["stack"][0], P["stack"][1], 0.02, 60,
                                   140, puffs=list(np.sort(rng.uniform(0, T - 1, rng.integers(3, 10))))))
    elif kind == "surge":    # governor hunting: rpm and load oscillate
        T, A, fr = rng.uniform(10, 40), rng.uniform(0.03, 0.08), rng.uniform(0.3, 1.2)

        def edit(E, t0, T=T, A=A, fr=fr):
            w = trapezoid(E["tc"], t0 + 1, t0 + T - 1, 1) * np.sin(2 * np.pi * fr * (E["tc"] - t0))
            E["rpm"] *= 1 + A * w
            E["load"] *= 1 + 3 * A * w
        ev.machine, ev.spans = edit, [(0, T)]
    elif kind == "stop":
        off, spin, start, edit = stop_restart(rng, sr, P)
        ev.machine, ev.spans = edit, [(0, spin + 1.5), (off, off + start + 1.5)]
    elif kind == "overheat":   # motor heating: slip grows (pitch sags), a whine, enclosure warms
        T = rng.uniform(60, 150)
        dT = rng.uniform(2, 5)

        def edit(E, t0, T=T):
            E["rpm"] *= 1 - 0.03 * np.clip((E["tc"] - t0) / T, 0, 1) * (E["tc"] < t0 + T + 30)
        ev.machine, ev.heat, ev.spans = edit, (T, dT), [(0, T)]
        n = int(T * sr)
        ev.audio = osc(np.full(n, rng.uniform(3000, 6000)), sr) * np.linspace(0, 1, n, dtype=F32) ** 2 * 0.3
    elif kind == "beeper":     # piezo warning: odd harmonics, on/off pattern
        f, on_, off_ = rng.uniform(2300, 4000), rng.uniform(0.1, 0.5), rng.uniform(0.1, 0.8)
        n_on = int(on_ * sr)
        b = sum(osc(np.full(n_on, k * f), sr) / k for k in (1, 3)) * env(n_on, sr, 0.003, 0.003)
        ev.audio = concat([b, silence(sr, off_)] * int(rng.uniform(5, 30) / (on_ + off_)))
        if P["house"] and rng.random() < 0.5:
            ev.actors.append(lamp(P, ev.audio.size / sr, 1 / (on_ + off_)))
    elif kind == "light":
        T = rng.uniform(10, 60)
        ev.actors.append(lamp(P, T, rng.uniform(0.7, 3)))
    elif kind in ("startstop", "puffs"):   # an idle machine kicks in abruptly, runs, stops
        T = rng.uniform(10, 45)
        mk = "generator" if kind == "puffs" else str(rng.choice(["pump", "fan", "generator"]))
        n = int(T * sr)
        t = np.arange(n) / sr
        run = rng.uniform(1.5, 4)
        on = (t < T - run).astype(float)
        rpm = np.where(t < T - run, np.clip(t / rng.uniform(0.5, 2), 0, 1), np.exp(-(t - T + run) / (run / 3)))
        y = machine_sound(rng, sr, mk, P["mains"], on, rpm)
        y += band(rng.standard_normal(n).astype(F32), sr, 200, 2000) * 0.3 * rpm.astype(F32)
        y[: int(0.05 * sr)] += band(rng.standard_normal(int(0.05 * sr)).astype(F32), sr, 40, 400) * 3
        ev.audio = y * env(n, sr, 0.01, 0.05)
        if P["house"] and (kind == "puffs" or rng.random() < 0.3):
            ev.actors.append(Actor("smoke", 0, T - run, P["stack"][0], P["stack"][0], P["stack"][1], 0.02,
                                   50, 140, puffs=list(np.arange(0.2, T - run - 1, rng.uniform(0.4, 2.0)))))
            if kind == "puffs" and rng.random() < 0.5:
                ev.audio = None        # seen only: the generator is too far to hear
    if ev.actors == [] and ev.audio is None and ev.spans is None:
        ev.spans = [(0, 5)]
    if P["house"] and ev.machine is not None and rng.random() < 0.35:
        T = max(s[1] for s in ev.spans) if ev.spans else ev.dur
        ev.actors.append(lamp(P, T, 2.0))


def lamp(P, T, rate):
    x, y = P["lamp"]
    return Actor("light", 0, T, x, x, y, 0.008, 255, 255, rate=rate)


def propagate(rng, sr, y, dist):
    """Distance: air absorption (high frequencies first) and more forest reverberation."""
    y = band(y, sr, 40, 16000 * (1 - 0.8 * dist) + 1500)
    rt = rng.uniform(0.3, 1.0)
    n = int(rt * sr)
    ir = rng.standard_normal(n).astype(F32) * np.exp(-6.9 * np.arange(n) / n).astype(F32)
    ir = band(ir, sr, 100, 5000) / np.sqrt(np.sum(ir ** 2) + 1e-12)
    wet = 0.1 + 0.5 * dist
    out = np.concatenate([y, np.zeros(n // 2, F32)])
    return (out * (1 - wet) + wet * conv(out, ir)).astype(F32)


# --------------------------------------------------------------------------
# scheduling
# --------------------------------------------------------------------------

def schedule(rng, P, duration, sr):
    n_ev = int(round(rng.uniform(12, 25) * duration / 1200))
    w = dict(wildlife=0.5, human_activity=0.3, machinery_anomaly=0.2)
    if P["condition"] == "hum" or (P["machine"] and P["condition"] == "random"):
        w = dict(wildlife=0.35, human_activity=0.25, machinery_anomaly=0.4)
    elif P["night"]:
        w = dict(wildlife=0.65, human_activity=0.15, machinery_anomaly=0.2)
    evs = []
    for _ in range(max(n_ev, 1) if duration >= 60 else max(n_ev, 0)):
        evs.append(make_event(rng, sr, P, pick(rng, w)))
    # drop the longest events until they fit in 55% of the scene
    while evs and sum(e.dur for e in evs) > 0.55 * duration:
        evs.remove(max(evs, key=lambda e: e.dur))
    quiet = duration - 4 - sum(e.dur for e in evs)
    gaps = rng.dirichlet(np.ones(len(evs) + 1)) * max(quiet, 0)
    t, prev = 2.0, None
    for e, g in zip(evs, gaps):
        if prev is not None and rng.random() < 0.15:          # overlap with the previous one
            e.t0 = prev.t0 + rng.uniform(0.2, 0.8) * prev.dur
            t = max(t, e.t0 + e.dur)
        else:
            e.t0 = t + g
            t = e.t0 + e.dur
        prev = e
        e.snr = float(rng.choice([rng.uniform(-10, 0), rng.uniform(0, 12), rng.uniform(12, 26)],
                                 p=[0.25, 0.5, 0.25]))
        e.pan = rng.uniform(-1, 1)
    return [e for e in evs if e.t0 + 1 < duration]


# --------------------------------------------------------------------------
# audio rendering
# --------------------------------------------------------------------------

def spectrum(f, center, width, lo=None, hi=None):
    s = np.exp(-0.5 * (np.log(np.maximum(f, 1.0) / center) / width) ** 2)
    if lo:
        s /= np.sqrt(1 + (lo / np.maximum(f, 1e-3)) ** 4)
    if hi:
        s /= np.sqrt(1 + (f / hi) ** 4)
    return s / np.sqrt(np.sum(s ** 2))


def noise_layers(rng, n, sr, shapes, gains):
    """Time-varying coloured noise: per-frame power = sum_l gain_l^2 * shape_l^2,
    random phase, sine-window overlap-add (constant variance)."""
    nfft = 1024 if sr <= 24000 else 2048
    hop, nb = nfft // 2, nfft // 2 + 1
    nfr = n // hop + 2
    S2 = np.stack(shapes).astype(F32) ** 2
    G2 = np.stack([np.interp(np.arange(nfr) * hop / sr, g[0], g[1]) for g in gains], 1).astype(F32) ** 2
    win = np.sin(np.pi * (np.arange(nfft) + 0.5) / nfft).astype(F32)
    out = np.zeros((nfr + 1) * hop, F32)
    for c0 in range(0, nfr, 2048):
        c1 = min(c0 + 2048, nfr)
        mag = np.sqrt(G2[c0:c1] @ S2) * (nfft / 2)
        Z = (rng.standard_normal((c1 - c0, nb), F32) + 1j * rng.standard_normal((c1 - c0, nb), F32)) * mag
        fr = np.fft.irfft(Z, nfft, axis=1).astype(F32) * win
        m = c1 - c0
        seg = out[c0 * hop:(c1 + 1) * hop]
        seg[:m * hop] += fr[:, :hop].ravel()
        seg[hop:] += fr[:, hop:].ravel()
    return out[hop:hop + n]


def background_audio(rng, P, E, n, sr):
    tc = E["tc"]
    U, rain, sun = E["U"], E["rain"], E["sun"]
    f = np.fft.rfftfreq(1024 if sr <= 24000 else 2048, 1 / sr)
    floor = db(-62 if P["night"] else -57)
    shapes, gains = [], []

    def layer(shape, g):
        shapes.append(shape)
        gains.append((tc, g))
    layer(spectrum(f, 300, 1.6), np.full(tc.size, floor))                       # distant ambient
    layer(np.ones_like(f) / np.sqrt(f.size), np.full(tc.size, db(-68)))         # mic self-noise
    layer(spectrum(f, 60, 0.9, hi=200), np.minimum(db(-80) * U ** 3, 0.12))      # mic buffeting ~U^3
    layer(spectrum(f, 3000, 0.7, lo=400), db(-75) * U ** 2)                      # foliage rustle ~U^2
    if rain.any():
        layer(spectrum(f, 5000, 0.9, lo=800), db(-32) * rain)                     # rain hiss
    if P["stream"]:
        layer(spectrum(f, 800, 1.0), np.full(tc.size, db(rng.uniform(-50, -40))))
    if P["traffic"]:
        layer(spectrum(f, 150, 0.9, hi=1000), db(-56) * E["traffic"])
    tonal = np.zeros(n, F32)
    t_s = np.arange(n) / sr
    for tcpa, h, v, prop in E["air"]:
        r = np.sqrt(h ** 2 + (v * (tc - tcpa)) ** 2)
        lvl = db(rng.uniform(-34, -26)) * (h / r) ** 2
        layer(spectrum(f, 200, 0.8), lvl * np.exp(-(r - h) / 20000))
        layer(spectrum(f, 1500, 0.9), 0.5 * lvl * np.exp(-(r - h) / 3000))         # HF absorbed at range
        if prop:           # propeller blade-pass tone, Doppler-shifted: f = f0 * c / (c + dr/dt)
            drdt = v ** 2 * (tc - tcpa) / r
            fo = np.interp(t_s, tc, rng.uniform(70, 110) * 343 / (343 + drdt))
            a = np.interp(t_s, tc, lvl).astype(F32)
            tonal += a * sum(osc(k * fo, sr) / k for k in (1, 2, 3)) * 0.7
    if P["machine"] and E["on"].any():
        on, rpm, load = (np.interp(t_s, tc, E[k]) for k in ("on", "rpm", "load"))
        lvl = db(rng.uniform(-36, -26))
        mis = np.interp(t_s, tc, E["misfire"]) if E["misfire"].any() else None
        tonal += lvl * machine_sound(rng, sr, P["machine"], P["mains"], on, rpm, mis) * load.astype(F32)
        layer(spectrum(f, 700, 0.8, lo=80), lvl * 0.5 * E["load"] * np.clip(E["rpm"], 0, 1.3) ** 2)
        del on, rpm, load
    y = noise_layers(rng, n, sr, shapes, gains) + tonal
    del tonal
    # wind howl around the enclosure edges: Strouhal tone f = 0.2 U / d
    Us = np.interp(t_s, tc, U).astype(F32)
    if U.max() > 6:
        for d_, g in ((0.006, 1.0), (0.011, 0.6)):
            a = (db(-40) * g * np.clip((Us - 6) / 6, 0, 1) ** 2).astype(F32)
            y += a * osc(0.2 * np.maximum(Us, 0.5) / d_ * (1 + 0.02 * np.sin(2 * np.pi * 0.3 * t_s)), sr)
    del Us
    # rain drops on leaves and the enclosure: Poisson impacts through drop resonances
    if rain.any():
        rr = np.interp(t_s, tc, rain)
        for fr, dec in ((rng.uniform(1500, 3000), 0.004), (rng.uniform(400, 900), 0.01)):
            imp = (rng.random(n) < rr * 60 / sr).astype(F32) * rng.standard_normal(n).astype(F32)
            y += ola_conv(imp, ring(sr, [fr], [dec], [db(-38)], 0.04))
    if P["stream"]:    # bubbles: Minnaert resonance rising in pitch
        imp = (rng.random(n) < 15 / sr).astype(F32) * rng.uniform(0, 1, n).astype(F32)
        k = int(0.02 * sr)
        bub = osc(np.linspace(1, 1.4, k) * rng.uniform(800, 2500), sr) * np.exp(-np.arange(k) / (0.005 * sr))
        y += ola_conv(imp, bub.astype(F32) * db(-46))
    if P["insects"]:
        y += insects(rng, P, n, sr, t_s)
    for t0, dist in E["thunder"]:
        place(y, thunder(rng, sr, dist), int(t0 * sr))
    return y


def insects(rng, P, n, sr, t_s):
    """Crickets at night (chirp rate from temperature, Dolbear) or a day buzz chorus."""
    fc = min(rng.uniform(4000, 7000) if P["insects"] == "day" else rng.uniform(3800, 5200), 0.42 * sr)
    envelope = np.zeros(n // 16 + 1, F32)
    te = np.arange(envelope.size) * 16 / sr
    for _ in range(rng.integers(3, 9)):
        if P["insects"] == "night":
            rate = max((P["t_mean"] - 4 + 10) / 7.0, 0.5)     # chirps/s (Dolbear-like, warmer = faster)
            ph = (te * rate + rng.random()) % 1.0
            e = ((ph < 0.12) * (np.sin(2 * np.pi * 30 * te) > 0)).astype(F32)
        else:
            e = (0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(60, 180) * te)).astype(F32) * (
                np.sin(2 * np.pi * te / rng.uniform(3, 12) + rng.uniform(0, 6)) > -0.3)
        envelope += e * rng.uniform(0.3, 1.0)
    e = np.interp(np.arange(n), np.arange(envelope.size) * 16, envelope).astype(F32)
    return db(rng.uniform(-50, -40)) * e * osc(np.full(n, fc), sr)


def thunder(rng, sr, dist):
    """Crack (if close) then a long rolling low rumble of many arrivals."""
    T = 6 + 2.2 * dist
    n = int(T * sr)
    t = np.arange(n) / sr
    e = np.zeros(n)
    for _ in range(rng.integers(3, 10)):
        e += rng.uniform(0.3, 1) * pulse(t, rng.uniform(0, T * 0.5), rng.uniform(0.2, 1.0), rng.uniform(0.5, 3))
    y = band(rng.standard_normal(n).astype(F32), sr, 25, 2500 / dist) * (e / e.max()).astype(F32)
    if dist < 2.5:
        k = int(0.3 * sr)
        y[:k] += band(rng.standard_normal(k).astype(F32), sr, 200, 6000) * np.exp(-np.arange(k) / (0.05 * sr))
    return y * db(-10 - 4 * dist) / (y.std() + 1e-9) * env(n, sr, 0.05, 2.0)


def mix_events(evs, y_bg, sr, channels, rng):
    """Scale each event to its SNR against the local background and add it."""
    n = y_bg.size
    chans = [y_bg.copy() for _ in range(channels)]
    if channels == 2:   # microphones a few cm apart: partly independent wind noise
        chans[1] = (0.8 * y_bg + 0.6 * np.roll(y_bg, int(0.37 * sr))).astype(F32)
    blk = int(0.1 * sr)
    for e in evs:
        if e.audio is None:
            continue
        i0 = int(e.t0 * sr)
        seg = y_bg[max(i0, 0):i0 + e.audio.size]
        ref = max(np.median(block_rms(seg, blk)) if seg.size else 0, db(-58))
        active = np.percentile(block_rms(e.audio, int(0.05 * sr)), 90) + 1e-9
        g = min(ref * db(e.snr) / active, 0.9 / (np.abs(e.audio).max() + 1e-9))
        e.audio = e.audio * F32(g)
        for c, ch in enumerate(chans):
            pg = 1 + 0.3 * e.pan * (1 if c else -1) if channels == 2 else 1.0
            place(ch, e.audio * F32(pg), i0 + (int(0.0004 * sr * e.pan) if c else 0))
    return chans


def write_wav(path, chans, sr, P, rng, duration, bg):
    y = np.stack(chans, 1)
    t = np.arange(y.shape[0]) / sr
    g = np.ones(y.shape[0], F32)
    for _ in range(P["gain_steps"]):       # someone turns the input gain knob
        ts = rng.uniform(0.1, 0.9) * duration
        g[t >= ts] *= F32(db(rng.choice([-9, -6, -3, 3, 6, 9])))
        bg.append((ts - 0.5, ts + 1.0, "gain step"))
    if P["clip"]:                           # hot input: loud parts clip
        g *= F32(db(rng.uniform(3, 9)))
    y = y * g[:, None]
    if not P["clip"]:           # recorder limiter: soft knee above 0.9 of full scale
        a = np.abs(y)
        y = np.where(a > 0.9, np.sign(y) * (0.9 + 0.1 * np.tanh((a - 0.9) / 0.1)), y)
    y = np.clip(y, -1, 1)
    pcm = np.round(y * 32767).astype("<i2")
    with wave.open(path, "wb") as w:
        w.setnchannels(y.shape[1])
        w.setsampwidth(2)
        w.setframerate(sr)
        w.writeframes(pcm.tobytes())


# --------------------------------------------------------------------------
# camera rendering
# --------------------------------------------------------------------------

def fractal(rng, h, w, beta=1.8):
    fy, fx = np.fft.fftfreq(h)[:, None], np.fft.rfftfreq(w)[None, :]
    k = np.sqrt(fx ** 2 + fy ** 2)
    k[0, 0] = 1
    X = (rng.standard_normal((h, w // 2 + 1)) + 1j * rng.standard_normal((h, w // 2 + 1))) / k ** beta
    x = np.fft.irfft2(X, (h, w))
    return ((x - x.mean()) / x.std()).astype(F32)


def backdrop(rng, P):
    """Sky, tree line, field, pump house, foreground grass (day and IR palettes)."""
    W, H, ir = P["W"], P["H"], P["night"]
    yy, xx = np.mgrid[0:H, 0:W].astype(F32)
    hz = int(P["horizon"] * H)
    sky = np.where(yy < hz, (40 if ir else 175) + (0 if ir else 35) * yy / hz, 0).astype(F32)
    ground = (95 if ir else 105) + (8 if ir else 14) * fractal(rng, H, W, 1.2) + 10 * (yy - hz) / H
    path_x = W * (0.5 + 0.3 * np.sin(rng.uniform(0, 6)) + 0.4 * (yy - hz) / H * rng.choice([-1, 1]))
    path = (np.abs(xx - path_x) < 0.03 * W + 0.1 * (yy - hz)) & (yy >= hz)
    ground = np.where(path, ground + 25, ground)
    base = np.where(yy < hz, sky, ground).astype(F32)
    # tree line: crown tops vary along x; forest on one side thinning to open field
    prof = smooth_noise(rng, W, 1.0, W / 30)
    forest = np.clip(1.3 - np.linspace(0, 1.6, W)[::rng.choice([-1, 1])], 0, 1)
    top = hz - H * 0.3 * np.sqrt(forest) * (0.8 + 0.2 * prof)      # crowns taper into the field
    veg_a = ((yy >= top[None, :]) & (yy < hz + 0.02 * H)).astype(F32) * (forest[None, :] > 0)
    veg = (140 if ir else 60) + (15 if ir else 12) * fractal(rng, H, W, 1.0)
    weight = np.clip((hz - yy[:, 0]) / (0.3 * H), 0, 1)
    # foreground grass blades: vertical streaks at the bottom
    gy = int(0.86 * H)
    blades = fractal(rng, H, W, 0.6)
    blades = np.repeat(blades[::4], 4, axis=0)[:H] > 0.6
    grass_a = ((yy >= gy + 4 * np.sin(xx / 3)) & blades).astype(F32)
    veg_a = np.maximum(veg_a, grass_a)
    veg = np.where(grass_a > 0, (150 if ir else 85) + 10 * fractal(rng, H, W, 1.0), veg)
    weight = np.where(np.arange(H) >= gy, np.clip((H - np.arange(H)) / (0.14 * H), 0, 1) * 1.5 + 0.3, weight)
    rows = np.nonzero(veg_a.any(1))[0]
    # pump house (static, in front of everything)
    house = None
    if P["house"]:
        x0, x1 = int(P["house_x"] * W - 0.1 * W), int(P["house_x"] * W + 0.1 * W)
        y0, y1 = hz - int(0.12 * H), hz + int(0.08 * H)
        house = (y0, y1, x0, x1)
        veg_a[y0 - int(0.04 * H):y1, x0:x1] = 0
        base[y0:y1, x0:x1] = (110 if ir else 150) + 5 * fractal(rng, y1 - y0, x1 - x0, 1.0)
        base[y0 - int(0.04 * H):y0, x0 - 2:x1 + 2] = 45 if ir else 60                  # roof
        base[y0 + int(0.05 * H):y1, x0 + int(0.03 * W):x0 + int(0.07 * W)] = 40        # door
    cloudtex = fractal(rng, hz, W, 2.0) if hz > 4 else None
    vign = (1 - 0.6 * (((xx - W / 2) / W) ** 2 + ((yy - H / 2) / H) ** 2) * 2).astype(F32) if ir else None
    return dict(base=base, veg=(veg * veg_a).astype(F32), veg_a=veg_a, rows=rows, weight=weight[rows],
                hz=hz, cloudtex=cloudtex, vign=vign)


def render_video(path, rng, P, E, evs, duration):
    W, H, ir = P["W"], P["H"], P["night"]
    num, den = P["fps"]
    nfr = int(duration * num / den)
    B = backdrop(rng, P)
    tc, bg = E["tc"], E["bg"]
    ft = np.arange(nfr) * den / num
    U, sun, rain = (np.interp(ft, tc, E[k]) for k in ("U", "sun", "rain"))
    illum = 1.0 if ir else (0.35 + 0.65 * sun) * (1 - 0.25 * np.clip(rain, 0, 1))
    illum = np.broadcast_to(illum, ft.shape)
    # auto exposure: integrates toward the target but only moves in 1/3 EV steps
    # once the error exceeds 0.45 EV -> visible brightness jumps
    ev_gain, expo = round(-3 * math.log2(max(float(illum[0]), 1e-3))) / 3, np.zeros(nfr)
    for i in range(nfr):
        err = -np.log2(illum[i]) - ev_gain
        if abs(err) > 0.45 and not ir:
            ev_gain += np.sign(err) / 3
            bg.append((ft[i] - 0.5, ft[i] + 0.5, "exposure"))
        expo[i] = 2 ** ev_gain
    if not ir:                  # rare AE glitch: overshoot and recover
        for _ in range(rng.poisson(duration / 900)):
            i = int(rng.integers(0, nfr))
            k = int(num / den * rng.uniform(1, 4))
            expo[i:i + k] *= rng.choice([0.6, 1.6])
            bg.append((ft[i] - 0.3, ft[min(i + k, nfr - 1)] + 0.3, "exposure"))
    rowsh = rng.uniform(0, 2 * np.pi, B["rows"].size)
    rowf = rng.uniform(0.4, 1.2, B["rows"].size)
    xs = np.arange(W)
    nbank = rng.standard_normal((12, H, W)).astype(F32)
    streaks = rain_streaks(rng, P, 8) if E["rain"].any() else None
    sigma = 10.0 if ir else 2.2
    actors = [(a, e.t0) for e in evs for a in e.actors]
    tex = B["cloudtex"]
    hz = B["hz"]
    cloud_speed = 0.5 + 0.3 * P["wind_mean"]
    chroma = b"" if P["colour"] == "mono" else bytes([128]) * (2 * ((W + 1) // 2) * ((H + 1) // 2))
    cs = "mono" if P["colour"] == "mono" else "420jpeg"
    with open(path, "wb") as fo:
        fo.write(f"YUV4MPEG2 W{W} H{H} F{num}:{den} Ip A1:1 C{cs}\n".encode())
        for i in range(nfr):
            t = ft[i]
            img = B["base"].copy()
            if tex is not None and not ir:
                img[:hz] += (8 + 10 * (1 - sun[i])) * np.roll(tex, int(t * cloud_speed), axis=1)
            # vegetation sway: per-row shifts, amplitude ~ wind speed, lean ~ U^2
            amp = (W / 320) * (0.3 + 0.35 * U[i])
            sh = B["weight"] * (amp * np.sin(2 * np.pi * rowf * t * (0.5 + 0.05 * U[i]) + rowsh)
                                + 0.03 * U[i] ** 2 * (W / 320))
            idx = np.clip(xs[None, :] - np.round(sh).astype(int)[:, None], 0, W - 1)
            r = B["rows"][:, None]
            a = B["veg_a"][r, idx]
            img[B["rows"]] = img[B["rows"]] * (1 - a) + B["veg"][r, idx]
            for act, t0 in actors:
                act.draw(img, t - t0, ir)
            img *= illum[i] * expo[i]
            if streaks is not None and rain[i] > 0.05:
                img += min(rain[i], 1.5) * streaks[i % len(streaks)]
            if ir:    # IR illuminator: vignetting and a slight flicker
                img *= B["vign"] * (1 + 0.04 * math.sin(2 * math.pi * 0.37 * t) + 0.03 * (rng.random() < 0.02))
            img += nbank[rng.integers(12)] * (sigma * (0.6 + img * (1 / 255)))
            fo.write(b"FRAME\n")
            fo.write(np.clip(img, 0, 255).astype(np.uint8).tobytes())
            fo.write(chroma)


def rain_streaks(rng, P, k):
    W, H = P["W"], P["H"]
    bank = np.zeros((k, H, W), F32)
    slope = 0.05 * P["wind_mean"]
    for b in bank:
        m = int(W * H / 400)
        x0, y0 = rng.uniform(0, W, m), rng.uniform(0, H, m)
        L = rng.uniform(4, 14, m) * H / 240
        for s in np.linspace(0, 1, 10):
            xi = np.clip((x0 + slope * L * s).astype(int), 0, W - 1)
            yi = np.clip((y0 + L * s).astype(int), 0, H - 1)
            np.add.at(b, (yi, xi), 20.0)
    return bank


# --------------------------------------------------------------------------
# climate
# --------------------------------------------------------------------------

def render_climate(path, rng, P, E, evs, duration, start):
    dt = P["clim_dt"]
    t = np.arange(0, duration + 1e-9, dt)
    tc = E["tc"]
    hour = start.hour + start.minute / 60 + t / 3600
    # air: diurnal curve, minimum near 05h, maximum near 15h
    amp = 4 if P["clouds"] == "overcast" else 7
    air = P["t_mean"] + amp * np.sin(2 * np.pi * (hour - 9) / 24)
    rain = np.interp(t, tc, E["rain"])
    air -= 2.5 * np.clip(rain, 0, 1.2)                     # rain-cooled downdraft
    U = np.interp(t, tc, E["U"])
    sun = np.interp(t, tc, E["sun"])
    elev = np.clip(np.sin(np.pi * (hour - 6) / 14), 0, 1)  # crude solar elevation factor
    solar = 9.0 * sun * elev / (1 + 0.15 * U)              # enclosure heating, ventilated by wind
    heat = np.zeros_like(t)
    if P["machine"]:
        heat += 0.8 * np.interp(t, tc, E["on"])
    for e in evs:
        if e.heat:
            T, dT = e.heat
            x = t - e.t0
            heat += dT * np.where(x < 0, 0, np.where(x < T, x / T, np.exp(-(x - T) / 300)))
    target = air + solar + heat
    enc = np.empty_like(t)
    tau, a = 200.0, None                                   # enclosure thermal lag
    for i in range(t.size):
        a = target[i] if a is None else a + (target[i] - a) * (1 - math.exp(-dt / tau))
        enc[i] = a
    # dew point of the air rises toward saturation in rain; RH relative to enclosure temp
    td = air - P["dew_dep"] * (1 - 0.8 * np.clip(rain, 0, 1))
    b, c = 17.62, 243.12
    rh = 100 * np.exp(b * td / (c + td) - b * enc / (c + enc))
    # pressure: drift, a front in rainy/windy weather, gust dynamic pressure
    p = P["p0"] + rng.uniform(-1.5, 1.5) * t / 3600 + 0.05 * smooth_noise(rng, t.size, dt, 600)
    if P["base"] in ("rain", "windy") and rng.random() < 0.6:
        p += rng.choice([-1, 1]) * rng.uniform(0.8, 2.0) * (1 + np.tanh((t - rng.uniform(0.2, 0.8) * duration) / 300)) / 2
    p += 0.0006 * U ** 2 * rng.standard_normal(t.size)
    enc += 0.02 * rng.standard_normal(t.size)
    rh = np.clip(rh + 0.3 * rng.standard_normal(t.size), 0, 100)
    p += 0.015 * rng.standard_normal(t.size)
    with open(path, "w", newline="\n") as fo:
        fo.write("t_s,temperature_c,humidity_pct,pressure_hpa\n")
        for row in zip(t, enc, rh, p):
            fo.write(f"{row[0]:g},{row[1]:.2f},{row[2]:.1f},{row[3]:.2f}\n")


# --------------------------------------------------------------------------
# labels and main
# --------------------------------------------------------------------------

def event_spans(e, P, sr):
    """Perceivable extent: own audio envelope within 20 dB of its level, union sprite visibility."""
    if e.spans is not None:
        return [(e.t0 + a, e.t0 + b) for a, b in e.spans]
    lo, hi = [], []
    if e.audio is not None:
        blk = int(0.05 * sr)
        r = block_rms(e.audio, blk)
        on = np.nonzero(r > np.percentile(r, 90) * 0.1)[0]
        if on.size:
            lo.append(e.t0 + on[0] * blk / sr)
            hi.append(e.t0 + (on[-1] + 1) * blk / sr)
    for a in e.actors:
        ts = np.arange(a.t0, a.t1, 0.1)
        vis = [x for x in ts if a.visible(x, P["W"], P["H"])]
        if vis:
            lo.append(e.t0 + vis[0])
            hi.append(e.t0 + vis[-1] + 0.1)
    return [(min(lo), max(hi))] if lo else []


def merge(spans):
    out = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return out


def main():
    ap = argparse.ArgumentParser(description="wildgen: synthetic outdoor field scenes")
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--duration", type=float, required=True)
    ap.add_argument("--condition", required=True, choices=CONDITIONS + ("random",))
    ap.add_argument("--out", required=True)
    ap.add_argument("--background-only", action="store_true")
    ap.add_argument("--start")
    args = ap.parse_args()
    dur = args.duration
    ss = np.random.SeedSequence(entropy=args.seed, spawn_key=(zlib.crc32(args.condition.encode()),
                                                              int(args.background_only)))
    r_par, r_env, r_ev, r_aud, r_vid, r_cli, r_wav = (np.random.default_rng(s) for s in ss.spawn(7))
    P = choose_params(r_par, args.condition, dur)
    start = start_time(r_par, P, args.start)
    P["horizon"] = r_par.uniform(0.4, 0.52)
    P["tree_x"] = r_par.uniform(0.1, 0.35)
    P["house_x"] = r_par.uniform(0.6, 0.8)
    P["stack"] = (P["house_x"] + 0.07, P["horizon"] - 0.18)
    P["lamp"] = (P["house_x"] - 0.08, P["horizon"] - 0.1)
    sr = P["sr"]
    E = environment(r_env, P, dur)
    evs = [] if args.background_only else schedule(r_ev, P, dur, sr)
    for e in evs:
        if e.machine:
            e.machine(E, e.t0)
    n = int(dur * sr)
    y_bg = background_audio(r_aud, P, E, n, sr)
    chans = mix_events(evs, y_bg, sr, P["channels"], r_aud)
    del y_bg
    os.makedirs(args.out, exist_ok=True)
    bg = E["bg"]
    write_wav(os.path.join(args.out, "audio.wav"), chans, sr, P, r_wav, dur, bg)
    del chans
    render_video(os.path.join(args.out, "camera.y4m"), r_vid, P, E, evs, dur)
    render_climate(os.path.join(args.out, "climate.csv"), r_cli, P, E, evs, dur, start)
    rows = []
    for e in evs:
        for a, b in event_spans(e, P, sr):
            rows.append((a, b, e.cls))
    for kind in sorted({k for _, _, k in bg}):        # merge episodes of the same kind only
        rows += [(a, b, "background") for a, b in merge([(a, b) for a, b, k in bg if k == kind])]
    rows = sorted((max(a, 0.0), min(b, dur), c) for a, b, c in rows if b > 0 and a < dur and b - a > 0.05)
    with open(os.path.join(args.out, "labels.csv"), "w", newline="\n") as fo:
        fo.write("start_s,end_s,class\n")
        for a, b, c in rows:
            fo.write(f"{a:.2f},{b:.2f},{c}\n")
    counts = {c: sum(1 for r in rows if r[2] == c) for c in
              ("wildlife", "human_activity", "machinery_anomaly", "background")}
    desc = (f"wildgen {args.condition} (as {P['base']}), {dur:g} s, audio {sr} Hz x{P['channels']}, "
            f"camera {P['W']}x{P['H']} @ {P['fps'][0]}/{P['fps'][1]} fps, climate every {P['clim_dt']:g} s, "
            f"machine {P['machine'] or 'none'}, labels {counts}"
            + (", background only" if args.background_only else ""))
    with open(os.path.join(args.out, "scene.toml"), "w", newline="\n") as fo:
        fo.write(f'start = "{start.isoformat().replace("+00:00", "Z")}"\n')
        fo.write(f'name = "wildgen-{args.condition}-{args.seed}"\n')
        fo.write(f'description = "{desc.replace(chr(34), chr(39))}"\n\n')
        fo.write(f'[generator]\npreset = "wildgen-{args.condition}"\nseed = {args.seed}\nversion = {VERSION}\n')


if __name__ == "__main__":
    main()
