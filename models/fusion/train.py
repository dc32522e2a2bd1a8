#!/usr/bin/env python3
"""Trains the multimodal fusion model and exports it to ONNX, float and 4-bit.

Reads the feature vectors that the node itself dumped for every detected
event (models/fusion/dump_features.sh), labels each event from its scene's
labels.csv by time overlap, and trains, with numpy only, an ensemble of
small networks (`--ensemble`, 3 by default), each:

    audio   [N, A] -> pool bands -> normalise -> 256 -> 128 (ReLU) -> x mask[:,0]
    camera  [N, C] -> normalise -> 128 ->  64 (ReLU) -> x mask[:,1]
    climate [N, K] -> normalise ->  32 ->  16 (ReLU) -> x mask[:,2]
    concat(branches, mask) -> 256 (ReLU) -> 4 -> softmax -> probs [N, 4]

"pool bands" averages adjacent mel bands of the audio vector's per-band
blocks (`--pool-bands`; 1, the default and the committed model, averages
nothing), as a constant MatMul in the graph.
Classes, in output order: wildlife, machinery_anomaly, human_activity,
background. A missing modality arrives as zeros with a 0 in the mask; its
branch output is multiplied by the mask, so zeros are never read as values.
Training drops present modalities at random (modality dropout) so the model
degrades gracefully without one. The last epochs train through a fake 4-bit
quantiser (straight-through estimator) with the same block-wise scheme as
ONNX Runtime's MatMulNBits, so the 4-bit export loses little. The
networks are trained one after the other from the same random stream, and
the model's output is the softmax of their mean logit: an ensemble is less
often confidently wrong on data unlike its training data than any of its
members.

Training adds Gaussian noise to the features and drops modalities, and
makes a share of the rows look recorded at 8 or 11.025 kHz
(`--narrow-band`: the bands above that Nyquist frequency emptied), so
that a missing top octave is not read as a class. It uses label
smoothing, and the probabilities are calibrated by
temperature scaling: one temperature minimises the negative
log-likelihood of the mean logit on scenes the networks did not learn,
and it is folded into each network's last layer, so the exported model's
softmax is the calibrated probability. By default (`--calibration
cross-fit`) the ensemble learns every training scene and the temperature is
fitted to out-of-fold logits: the scenes are split into `--folds` folds of
whole scenes, and for each fold an ensemble of the same recipe trained on
the others predicts it. `--calibration held-out` instead keeps a share of
the scenes out of training (`--calib-share`) and fits on those.

Exports the ensemble as one graph, `fusion.float.onnx` (plain MatMul) and
`fusion.int4.onnx` (MatMulNBits, 4 bits, block 32, symmetric, by
onnxruntime's own quantiser),
evaluates both with onnxruntime on each test set (`--test NAME=DIR ...`:
per-class precision/recall/F1 of the detected events, expected calibration
error, confident mistakes), and writes a JSON report. Deterministic for a
given seed and dataset.

    python3 models/fusion/train.py --train DIR... --test NAME=DIR... --out DIR [--seed 1]
"""

import argparse
import glob
import json
import os
import sys
import time
from datetime import datetime

import numpy as np

CLASSES = ["wildlife", "machinery_anomaly", "human_activity", "background"]
MODALITIES = ["audio", "camera", "climate"]
BLOCK = 32


def scene_start_ms(path):
    """The scene's start (scene.toml `start`, RFC 3339) in ms since the epoch."""
    for line in open(path, encoding="utf-8"):
        line = line.strip()
        if line.startswith("start") and "=" in line:
            value = line.split("=", 1)[1].strip().strip('"')
            return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000)
    raise ValueError(f"{path}: no start")


def read_labels(path):
    out = []
    with open(path, encoding="utf-8") as f:
        next(f)
        for line in f:
            s, e, c = line.strip().split(",")
            out.append((float(s) * 1000.0, float(e) * 1000.0, c))
    return out


def label_event(start, end, labels):
    """Class of the non-background label with the largest overlap, else background."""
    best, best_overlap = "background", 0.0
    for s, e, c in labels:
        overlap = min(end, e) - max(start, s)
        if c != "background" and overlap > best_overlap:
            best, best_overlap = c, overlap
    return best


def load(dirs, dims=None):
    """Features, mask, labels and scene names of every event under `dirs`;
    `dims`: the vector lengths, when a set may lack a modality entirely."""
    rows = {m: [] for m in MODALITIES}
    mask, y, scene = [], [], []
    dims = dict(dims or {})
    for d in dirs:
        for path in sorted(glob.glob(os.path.join(d, "*.jsonl"))):
            name = path[: -len(".jsonl")]
            t0 = scene_start_ms(name + ".scene.toml")
            labels = read_labels(name + ".labels.csv")
            for line in open(path, encoding="utf-8"):
                ev = json.loads(line)
                f = ev["features"]
                for m in MODALITIES:
                    if f.get(m) is not None:
                        dims[m] = len(f[m])
                y.append(CLASSES.index(label_event(ev["start_ms"] - t0, ev["end_ms"] - t0, labels)))
                scene.append(os.path.basename(name))
                mask.append([1.0 if f.get(m) is not None else 0.0 for m in MODALITIES])
                for m in MODALITIES:
                    rows[m].append(f.get(m))
    x = {}
    for m in MODALITIES:
        x[m] = np.array([r if r is not None else [0.0] * dims[m] for r in rows[m]], dtype=np.float32)
    return x, np.array(mask, dtype=np.float32), np.array(y), scene


def fake_quant(w):
    """Block-wise symmetric 4-bit quantise/dequantise along the input axis (K),
    as MatMulNBits stores it: blocks of 32 rows of W[K, N], one scale each."""
    k, n = w.shape
    pad = (-k) % BLOCK
    wp = np.concatenate([w, np.zeros((pad, n), w.dtype)]) if pad else w
    b = wp.reshape(-1, BLOCK, n)
    amax = np.abs(b).max(axis=1, keepdims=True)
    scale = np.where(amax > 0, amax / 7.0, 1.0)
    q = np.clip(np.round(b / scale), -8, 7) * scale
    return q.reshape(-1, n)[:k]


class Net:
    SIZES = {"audio": (256, 128), "camera": (128, 64), "climate": (32, 16)}
    FUSED = 256

    def __init__(self, dims, rng):
        self.p = {}

        def dense(name, k, n):
            self.p[name + ".w"] = (rng.standard_normal((k, n)) * np.sqrt(2.0 / k)).astype(np.float32)
            self.p[name + ".b"] = np.zeros(n, np.float32)

        for m in MODALITIES:
            h1, h2 = self.SIZES[m]
            dense(m + "1", dims[m], h1)
            dense(m + "2", h1, h2)
        fin = sum(self.SIZES[m][1] for m in MODALITIES) + len(MODALITIES)
        dense("fuse1", fin, self.FUSED)
        dense("fuse2", self.FUSED, len(CLASSES))
        self.norm = {}
        self.quant = False

    def weight(self, name):
        w = self.p[name + ".w"]
        return fake_quant(w) if self.quant else w

    def forward(self, x, mask):
        cache = {}
        outs = []
        for i, m in enumerate(MODALITIES):
            mu, sd = self.norm[m]
            a0 = (x[m] - mu) / sd
            z1 = a0 @ self.weight(m + "1") + self.p[m + "1.b"]
            a1 = np.maximum(z1, 0)
            z2 = a1 @ self.weight(m + "2") + self.p[m + "2.b"]
            a2 = np.maximum(z2, 0)
            out = a2 * mask[:, i : i + 1]
            cache[m] = (a0, z1, a1, z2)
            outs.append(out)
        f0 = np.concatenate(outs + [mask], axis=1)
        z3 = f0 @ self.weight("fuse1") + self.p["fuse1.b"]
        a3 = np.maximum(z3, 0)
        logits = a3 @ self.weight("fuse2") + self.p["fuse2.b"]
        cache["fuse"] = (f0, z3, a3)
        return logits, cache

    def backward(self, cache, mask, dlogits):
        g = {}
        f0, z3, a3 = cache["fuse"]
        g["fuse2.w"] = a3.T @ dlogits
        g["fuse2.b"] = dlogits.sum(0)
        da3 = dlogits @ self.weight("fuse2").T
        dz3 = da3 * (z3 > 0)
        g["fuse1.w"] = f0.T @ dz3
        g["fuse1.b"] = dz3.sum(0)
        df0 = dz3 @ self.weight("fuse1").T
        off = 0
        for i, m in enumerate(MODALITIES):
            h2 = self.SIZES[m][1]
            dout = df0[:, off : off + h2] * mask[:, i : i + 1]
            off += h2
            a0, z1, a1, z2 = cache[m]
            dz2 = dout * (z2 > 0)
            g[m + "2.w"] = a1.T @ dz2
            g[m + "2.b"] = dz2.sum(0)
            dz1 = (dz2 @ self.weight(m + "2").T) * (z1 > 0)
            g[m + "1.w"] = a0.T @ dz1
            g[m + "1.b"] = dz1.sum(0)
        return g


def softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def drop_modalities(x, mask, rng, p):
    """Modality dropout: each present modality is removed with its
    probability in `p` (one per modality), keeping at least one."""
    mask = mask.copy()
    x = {m: v.copy() for m, v in x.items()}
    drop = (rng.random(mask.shape) < np.asarray(p, dtype=np.float32)[None, :]) & (mask > 0)
    keep_one = drop.sum(1) >= mask.sum(1)
    drop[keep_one] = False
    for i, m in enumerate(MODALITIES):
        x[m][drop[:, i]] = 0.0
    mask[drop] = 0.0
    return x, mask


# The audio vector starts with three blocks of MEL_BANDS per-band values
# (mean, 90th percentile and spread of the excess over the floor), on mel
# bands from FMIN_HZ to FMAX_HZ (fusion/src/features/logmel.rs).
MEL_BANDS, FMIN_HZ, FMAX_HZ = 32, 60.0, 7600.0
# Audio features after the three per-band blocks (modulation, statistics).
AUDIO_REST = 14


def _band_lower_edges():
    mel = lambda hz: 2595.0 * np.log10(1.0 + hz / 700.0)
    hz = lambda m: 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    return hz(np.linspace(mel(FMIN_HZ), mel(FMAX_HZ), MEL_BANDS + 2))[:MEL_BANDS]


def narrow_band_cuts(pool=1):
    """Recordings made at 8 and 11.025 kHz hold nothing above their Nyquist
    frequency: the bands starting above it show no excess over their floor.
    One mask per rate over the (pooled) bands."""
    lower = _band_lower_edges()[::pool]
    return [lower >= cut for cut in (4000.0, 5512.5)]


NARROW_BAND_CUTS = narrow_band_cuts()


def pool_matrix(pool):
    """`[A, A']` matrix that averages groups of `pool` adjacent mel bands in
    each of the three per-band blocks and keeps the other audio features."""
    a = 3 * MEL_BANDS + AUDIO_REST
    nb = MEL_BANDS // pool
    out = np.zeros((a, 3 * nb + AUDIO_REST), np.float32)
    for block in range(3):
        for b in range(MEL_BANDS):
            out[block * MEL_BANDS + b, block * nb + b // pool] = 1.0 / pool
    for i in range(AUDIO_REST):
        out[3 * MEL_BANDS + i, 3 * nb + i] = 1.0
    return out


def band_limit(x, mask, rng, p, cuts=NARROW_BAND_CUTS):
    """Bandwidth augmentation: each row with audio is, with probability `p`,
    made to look recorded at 8 or 11.025 kHz (the per-band values of the
    bands above that rate's Nyquist frequency set to 0, as the node
    computes them for bands that hear nothing). Otherwise a missing top
    octave is learned as a class's sign: the training speech was recorded
    at 8 kHz, and a node or a recording at a low rate calls everything
    speech."""
    if p <= 0:
        return x
    a = x["audio"].copy()
    nb = len(cuts[0])
    rows = np.flatnonzero((rng.random(len(a)) < p) & (mask[:, 0] > 0))
    which = rng.integers(len(cuts), size=len(rows))
    for r, c in zip(rows, which):
        dead = cuts[c]
        for block in range(3):
            a[r, block * nb : (block + 1) * nb][dead] = 0.0
    out = dict(x)
    out["audio"] = a
    return out


def floor_shift(x, mask, rng, p, db, pool=1):
    """Floor augmentation: each row with audio is, with probability `p`,
    made to sound as if heard over another floor. The node's per-band
    values are the event's excess over the floor before it; a floor `d`
    dB higher in a band masks the quieter part of the sound there, a lower
    one uncovers it. `d` is a smooth curve across the bands (linear between
    four random points in [-db, db]): another site's wind, water or
    machine colours the floor band by band. The mean and 90th-percentile
    blocks are recomputed from the sound's level over the old floor; the
    spread block scales with the mean."""
    if p <= 0 or db <= 0:
        return x
    a = x["audio"].copy()
    nb = MEL_BANDS // pool
    rows = np.flatnonzero((rng.random(len(a)) < p) & (mask[:, 0] > 0))
    knots = rng.uniform(-db, db, size=(len(rows), 4)).astype(np.float32)
    pos = np.linspace(0.0, 3.0, nb)
    d = np.stack([np.interp(pos, np.arange(4), k) for k in knots]) if len(rows) else np.zeros((0, nb), np.float32)

    def reheard(e, shift):
        # Sound over the old floor, dB (E = 10 log10(10^(S/10) + 1)), heard over the new one.
        s = 10.0 * np.log10(np.maximum(10.0 ** (np.maximum(e, 0.0) / 10.0) - 1.0, 1e-3))
        return np.where(e > 0, 10.0 * np.log10(10.0 ** ((s - shift) / 10.0) + 1.0), e)

    mean_b = a[rows, 0:nb]
    new_mean = reheard(mean_b, d)
    a[rows, 0:nb] = new_mean
    a[rows, nb : 2 * nb] = reheard(a[rows, nb : 2 * nb], d)
    ratio = np.where(mean_b > 0.5, new_mean / np.maximum(mean_b, 0.5), 1.0)
    a[rows, 2 * nb : 3 * nb] *= np.clip(ratio, 0.2, 2.0)
    out = dict(x)
    out["audio"] = a.astype(np.float32)
    return out


def perturb(net, x, mask, rng, noise, feat_drop):
    """Feature-space augmentation against one generator's habits: Gaussian
    noise of `noise` standard deviations on every present feature, and each
    feature replaced by its training mean with probability `feat_drop`, so
    no single feature can carry a decision alone."""
    if noise <= 0 and feat_drop <= 0:
        return x
    out = {}
    for i, m in enumerate(MODALITIES):
        mu, sd = net.norm[m]
        v = x[m]
        present = mask[:, i : i + 1] > 0
        if noise > 0:
            v = v + (rng.standard_normal(v.shape).astype(np.float32) * noise) * sd
        if feat_drop > 0:
            v = np.where(rng.random(v.shape) < feat_drop, mu, v)
        out[m] = np.where(present, v, x[m]).astype(np.float32)
    return out


def train(net, x, mask, y, rng, epochs, qat_epochs, lr=2e-3, wd=1e-4, batch=64, p_drop=(0.25, 0.25, 0.25), smooth=0.05, noise=0.0, feat_drop=0.0, narrow=0.0, cuts=NARROW_BAND_CUTS, shift=(0.0, 0.0)):
    n = len(y)
    counts = np.bincount(y, minlength=len(CLASSES)).astype(np.float32)
    cw = (counts.sum() / np.maximum(counts, 1) / len(CLASSES)) ** 0.5
    m1 = {k: np.zeros_like(v) for k, v in net.p.items()}
    m2 = {k: np.zeros_like(v) for k, v in net.p.items()}
    step = 0
    for epoch in range(epochs + qat_epochs):
        net.quant = epoch >= epochs
        rate = lr * (0.3 if net.quant else 1.0) * (0.5 * (1 + np.cos(np.pi * min(epoch, epochs) / epochs)) * 0.9 + 0.1)
        order = rng.permutation(n)
        for s in range(0, n, batch):
            idx = order[s : s + batch]
            xb, mb = drop_modalities({m: x[m][idx] for m in MODALITIES}, mask[idx], rng, p_drop)
            xb = band_limit(xb, mb, rng, narrow, cuts)
            xb = floor_shift(xb, mb, rng, shift[0], shift[1], MEL_BANDS // len(cuts[0]))
            xb = perturb(net, xb, mb, rng, noise, feat_drop)
            logits, cache = net.forward(xb, mb)
            p = softmax(logits)
            w = cw[y[idx]]
            # Label smoothing: the target puts `smooth` on the other classes,
            # so the network never learns to be certain.
            target = np.full_like(p, smooth / (len(CLASSES) - 1))
            target[np.arange(len(idx)), y[idx]] = 1.0 - smooth
            d = p - target
            d *= (w / w.sum())[:, None]
            g = net.backward(cache, mb, d)
            step += 1
            for k in net.p:
                gk = g[k] + (wd * net.p[k] if k.endswith(".w") else 0.0)
                m1[k] = 0.9 * m1[k] + 0.1 * gk
                m2[k] = 0.999 * m2[k] + 0.001 * gk * gk
                mh = m1[k] / (1 - 0.9**step)
                vh = m2[k] / (1 - 0.999**step)
                net.p[k] -= (rate * mh / (np.sqrt(vh) + 1e-8)).astype(np.float32)
    net.quant = False


def f1_table(y, pred):
    out = {}
    for c in range(3):
        tp = int(((pred == c) & (y == c)).sum())
        fp = int(((pred == c) & (y != c)).sum())
        fn = int(((pred != c) & (y == c)).sum())
        prec = tp / (tp + fp) if tp + fp else 0.0
        rec = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        out[CLASSES[c]] = {"precision": round(prec, 3), "recall": round(rec, 3), "f1": round(f1, 3), "support": int((y == c).sum())}
    out["macro_f1"] = round(float(np.mean([out[CLASSES[c]]["f1"] for c in range(3)])), 4)
    return out


def export(nets, dims, path, pool=None):
    """One graph for the ensemble: the inputs are normalised once (the
    members share the normalisation), each member computes its logits,
    and their sum (each member's last layer already carries 1 / (K x
    temperature)) goes through one softmax."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes, inits = [], []

    def const(name, arr):
        inits.append(numpy_helper.from_array(np.asarray(arr, dtype=np.float32), name))
        return name

    def dense(net, pre, inp, name, relu=True):
        w = const(pre + name + ".w", net.p[name + ".w"])
        b = const(pre + name + ".b", net.p[name + ".b"])
        nodes.append(helper.make_node("MatMul", [inp, w], [pre + name + ".mm"], name=pre + name + "/MatMul"))
        nodes.append(helper.make_node("Add", [pre + name + ".mm", b], [pre + name + ".z"], name=pre + name + "/Add"))
        if not relu:
            return pre + name + ".z"
        nodes.append(helper.make_node("Relu", [pre + name + ".z"], [pre + name + ".a"], name=pre + name + "/Relu"))
        return pre + name + ".a"

    in_dims = dict(dims)
    if pool is not None:
        in_dims["audio"] = pool.shape[0]
    inputs = [helper.make_tensor_value_info(m, TensorProto.FLOAT, ["batch", in_dims[m]]) for m in MODALITIES]
    inputs.append(helper.make_tensor_value_info("mask", TensorProto.FLOAT, ["batch", len(MODALITIES)]))
    nodes.append(helper.make_node("Split", ["mask", "mask_split"], [f"mask_{m}" for m in MODALITIES], name="mask/Split", axis=1))
    inits.append(numpy_helper.from_array(np.array([1, 1, 1], dtype=np.int64), "mask_split"))
    source = {m: m for m in MODALITIES}
    if pool is not None:
        # The node's audio vector, its mel bands averaged in groups.
        nodes.append(helper.make_node("MatMul", ["audio", const("audio.pool", pool)], ["audio.pooled"], name=POOL_NODE))
        source["audio"] = "audio.pooled"
    for m in MODALITIES:
        mu, sd = nets[0].norm[m]
        nodes.append(helper.make_node("Sub", [source[m], const(m + ".mu", mu)], [m + ".c"], name=m + "/Sub"))
        nodes.append(helper.make_node("Mul", [m + ".c", const(m + ".isd", 1.0 / sd)], [m + ".n"], name=m + "/Mul"))
    member_logits = []
    for k, net in enumerate(nets):
        pre = f"m{k}."
        branch_outs = []
        for m in MODALITIES:
            h = dense(net, pre, m + ".n", m + "1")
            h = dense(net, pre, h, m + "2")
            nodes.append(helper.make_node("Mul", [h, f"mask_{m}"], [pre + m + ".out"], name=pre + m + "/Mask"))
            branch_outs.append(pre + m + ".out")
        nodes.append(helper.make_node("Concat", branch_outs + ["mask"], [pre + "fused"], name=pre + "fuse/Concat", axis=1))
        h = dense(net, pre, pre + "fused", "fuse1")
        member_logits.append(dense(net, pre, h, "fuse2", relu=False))
    nodes.append(helper.make_node("Sum", member_logits, ["logits"], name="ensemble/Sum"))
    nodes.append(helper.make_node("Softmax", ["logits"], ["probs"], name="probs/Softmax", axis=-1))
    outputs = [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", len(CLASSES)])]
    graph = helper.make_graph(nodes, "fusion", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="fieldnode-train")
    model.ir_version = 10
    flush_subnormals(model)
    onnx.checker.check_model(model)
    onnx.save(model, path)


def flush_subnormals(model):
    """Sets the float weights too small for a normal float32 to 0. Weight
    decay leaves a few hundred of them; on x86 every multiply by a
    subnormal runs many times slower (the committed model, batch of 8: 1.04
    ms with them, 0.22 ms without), and each weighs under 1e-37 in a sum."""
    from onnx import numpy_helper

    tiny = np.finfo(np.float32).tiny
    for i, t in enumerate(model.graph.initializer):
        a = numpy_helper.to_array(t)
        if a.dtype != np.float32:
            continue
        small = (a != 0) & (np.abs(a) < tiny)
        if small.any():
            model.graph.initializer[i].CopyFrom(numpy_helper.from_array(np.where(small, np.float32(0), a), t.name))


# The band-pooling MatMul stays in float: its weights are exact averages.
POOL_NODE = "audio/Pool"


def quantize(src, dst):
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import DefaultWeightOnlyQuantConfig, MatMulNBitsQuantizer

    cfg = DefaultWeightOnlyQuantConfig(block_size=BLOCK, is_symmetric=True)
    q = MatMulNBitsQuantizer(onnx.load(src), block_size=BLOCK, is_symmetric=True, algo_config=cfg, nodes_to_exclude=[POOL_NODE])
    q.process()
    model = q.model.model
    model.ir_version = 10
    flush_subnormals(model)
    onnx.save(model, dst)
    kinds = {}
    for node in model.graph.node:
        kinds[node.op_type] = kinds.get(node.op_type, 0) + 1
    return kinds


def write_manifest(path, model_path, version, quantization, dims, latency=None):
    import hashlib

    data = open(model_path, "rb").read()
    lines = [
        "# Written by models/fusion/train.py: do not edit by hand.",
        'name = "fusion"',
        f"version = {version}",
        f'file = "{os.path.basename(model_path)}"',
        f'sha256 = "{hashlib.sha256(data).hexdigest()}"',
        f"size_bytes = {len(data)}",
        f'quantization = "{quantization}"',
        'features = "fieldnode-features-2"',
        "classes = [" + ", ".join(f'"{c}"' for c in CLASSES) + "]",
    ]
    if latency:
        lines.append("")
        lines.append("[latency]")
        for k, v in latency.items():
            lines.append(f'{k} = "{v}"' if isinstance(v, str) else f"{k} = {v}")
    for m in MODALITIES + ["mask"]:
        dim = dims[m] if m in dims else len(MODALITIES)
        lines += ["", "[[inputs]]", f'name = "{m}"', 'dtype = "float32"', f"shape = [-1, {dim}]"]
    lines += ["", "[[outputs]]", 'name = "probs"', 'dtype = "float32"', f"shape = [-1, {len(CLASSES)}]"]
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


def run_onnx(path, x, mask):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    feeds = {m: x[m] for m in MODALITIES}
    feeds["mask"] = mask
    return s.run(["probs"], feeds)[0]


def subset(x, mask, y, keep):
    return {m: v[keep] for m, v in x.items()}, mask[keep], y[keep]


def fit_temperature(logits, y):
    """The temperature that minimises the negative log-likelihood of `y`
    (a grid over 0.5..8, then a finer grid around the best)."""

    def nll(t):
        p = softmax(logits / t)
        return float(-np.log(p[np.arange(len(y)), y] + 1e-12).mean())

    grid = np.exp(np.linspace(np.log(0.5), np.log(8.0), 41))
    best = min(grid, key=nll)
    fine = np.linspace(best * 0.9, best * 1.1, 21)
    return float(min(fine, key=nll))


def ece(probs, y, bins=10):
    """Expected calibration error of the top-label confidence."""
    conf = probs.max(1)
    correct = probs.argmax(1) == y
    total = 0.0
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        sel = (conf > lo) & (conf <= hi) if b else (conf <= hi)
        if sel.any():
            total += sel.sum() / len(y) * abs(conf[sel].mean() - correct[sel].mean())
    return float(total)


def evaluate(probs, y, thresholds):
    """Per-class figures, calibration and confident mistakes of one test set.
    `thresholds`: below its class's threshold a verdict counts as unknown
    (neither right nor wrong), as the node stores it."""
    pred = probs.argmax(1)
    out = f1_table(y, pred)
    conf = probs.max(1)
    unknown = np.array([c < 3 and conf[i] < thresholds[c] for i, c in enumerate(pred)], dtype=bool)
    thresholded = np.where(unknown, -1, pred)
    out["with_thresholds"] = f1_table(y, thresholded)
    out["unknown_share"] = round(float(unknown.mean()), 4) if len(y) else 0.0
    out["ece"] = round(ece(probs, y), 4) if len(y) else 0.0
    wrong = pred != y
    out["wrong_at_0.99"] = int((wrong & (conf >= 0.99)).sum())
    out["wrong_at_0.9"] = int((wrong & (conf >= 0.9)).sum())
    out["events"] = int(len(y))
    out["support"] = np.bincount(y, minlength=len(CLASSES)).tolist()
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--train", nargs="+", required=True, help="feature directories to train on")
    ap.add_argument("--test", nargs="+", required=True, help="NAME=DIR[,DIR...] test sets (never trained on)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=160)
    ap.add_argument("--qat-epochs", type=int, default=30)
    ap.add_argument(
        "--calibration",
        choices=["held-out", "cross-fit"],
        default="cross-fit",
        help="fit the temperature on held-out training scenes, or train on every scene and fit it to out-of-fold logits (--folds)",
    )
    ap.add_argument("--folds", type=int, default=5, help="folds of whole scenes for --calibration cross-fit")
    ap.add_argument("--calib-share", type=float, default=0.2, help="share of training scenes held out to fit the temperature (--calibration held-out)")
    ap.add_argument("--threshold", type=float, default=0.5, help="per-class threshold below which a verdict is unknown (reported)")
    ap.add_argument("--no-export", action="store_true", help="report only: write report.json but no model files")
    ap.add_argument("--version", type=int, default=1, help="model version written into the manifests")
    ap.add_argument("--noise", type=float, default=0.5, help="training noise on features, in standard deviations")
    ap.add_argument("--feat-drop", type=float, default=0.0, help="probability that a training feature is replaced by its mean")
    ap.add_argument("--narrow-band", type=float, default=0.2, help="probability that a training row is made to look recorded at 8 or 11.025 kHz")
    ap.add_argument("--floor-shift", type=float, default=0.0, help="probability that a training row is made to sound heard over another floor (see floor_shift)")
    ap.add_argument("--floor-shift-db", type=float, default=10.0, help="largest change of the floor per band, dB (--floor-shift)")
    ap.add_argument("--pool-bands", type=int, default=1, choices=[1, 2, 4], help="average this many adjacent mel bands (in the exported graph, so the node's features are unchanged)")
    ap.add_argument("--wd", type=float, default=1e-3, help="weight decay")
    ap.add_argument("--ensemble", type=int, default=3, help="networks in the ensemble (their mean logit is the output)")
    ap.add_argument(
        "--modality-drop",
        default="0.25,0.7,0.25",
        help="training dropout probability of each modality (audio,camera,climate)",
    )
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    p_drop = [float(v) for v in args.modality_drop.split(",")]
    if len(p_drop) != len(MODALITIES) or not all(0.0 <= v < 1.0 for v in p_drop):
        ap.error("--modality-drop takes one probability in [0, 1) per modality: audio,camera,climate")
    t0 = time.time()
    xall, mall, yall, scenes = load(args.train)
    # Whole scenes are held out for calibration, or assigned to folds for
    # cross-fitting, by a hash of their names so that adding a scene does not
    # reshuffle the others.
    import hashlib

    def scene_hash(n):
        return int(hashlib.sha256(n.encode()).hexdigest()[:8], 16)

    if args.calibration == "held-out":
        calib_names = {n for n in set(scenes) if scene_hash(n) / 2**32 < args.calib_share}
        is_cal = np.array([s in calib_names for s in scenes], dtype=bool)
    else:
        is_cal = np.zeros(len(yall), dtype=bool)
    xtr, mtr, ytr = subset(xall, mall, yall, ~is_cal)
    xca, mca, yca = subset(xall, mall, yall, is_cal)
    fold = np.array([scene_hash(s) % args.folds for s, c in zip(scenes, is_cal) if not c])
    tests = {}
    in_dims = {m: xtr[m].shape[1] for m in MODALITIES}
    for spec in args.test:
        name, _, dirs = spec.partition("=")
        tests[name] = load(dirs.split(","), in_dims)[:3]
    # The networks see the pooled audio vector; ONNX Runtime is fed the
    # node's own vector (the exported graph pools it first).
    pool = pool_matrix(args.pool_bands) if args.pool_bands > 1 else None

    def pooled(x):
        return x if pool is None else {**x, "audio": (x["audio"] @ pool).astype(np.float32)}

    raw_tests = tests
    tests = {k: (pooled(v[0]), v[1], v[2]) for k, v in raw_tests.items()}
    xtr, xca = pooled(xtr), pooled(xca)
    dims = {m: xtr[m].shape[1] for m in MODALITIES}
    cuts = narrow_band_cuts(args.pool_bands)
    print(
        f"train {len(ytr)} events {np.bincount(ytr, minlength=4).tolist()}, calibration {len(yca)}, "
        + ", ".join(f"{k} {len(v[2])}" for k, v in tests.items()),
        file=sys.stderr,
    )
    # The ensemble: K networks trained one after the other from the same
    # random stream (different initialisations, batches, dropout and noise),
    # sharing the normalisation of the training features.
    def normalisation(x, mask):
        """Mean and spread of each modality's present features."""
        out = {}
        for i, m in enumerate(MODALITIES):
            present = x[m][mask[:, i] > 0]
            out[m] = (present.mean(0).astype(np.float32), (present.std(0) + 1e-3).astype(np.float32))
        return out

    def ensemble(x, mask, y, rng):
        norm = normalisation(x, mask)
        nets = []
        for _ in range(args.ensemble):
            net = Net(dims, rng)
            net.norm = dict(norm)
            train(net, x, mask, y, rng, args.epochs, args.qat_epochs, wd=args.wd, noise=args.noise, feat_drop=args.feat_drop, p_drop=p_drop, narrow=args.narrow_band, cuts=cuts, shift=(args.floor_shift, args.floor_shift_db))
            nets.append(net)
        return nets

    nets = ensemble(xtr, mtr, ytr, rng)

    def logits(x, mask):
        return np.sum([n.forward(x, mask)[0] for n in nets], axis=0)

    k = len(nets)
    if args.calibration == "cross-fit":
        # Cross-fitting: every training scene is trained on, and the
        # temperature is fitted to out-of-fold logits. For each fold of
        # whole scenes, an ensemble of the same recipe trained on the other
        # folds gives its mean logits there.
        fold_rng = np.random.default_rng(args.seed + 1_000_003)
        fold_logits, fold_y = [], []
        for g in range(args.folds):
            xi, mi, yi = subset(xtr, mtr, ytr, fold != g)
            xo, mo, yo = subset(xtr, mtr, ytr, fold == g)
            if not len(yo):
                continue
            fold_nets = ensemble(xi, mi, yi, fold_rng)
            fold_logits.append(np.mean([n.forward(xo, mo)[0] for n in fold_nets], axis=0))
            fold_y.append(yo)
        temperature = fit_temperature(np.concatenate(fold_logits), np.concatenate(fold_y))
    else:
        # Calibration on the held-out scenes.
        temperature = fit_temperature(logits(xca, mca) / k, yca) if len(yca) else 1.0
    # The temperature of the members' mean logit: 1 / (K x temperature) is
    # folded into each member's last layer, so the sum of the members'
    # logits is the calibrated logit.
    for net in nets:
        net.p["fuse2.w"] = (net.p["fuse2.w"] / (k * temperature)).astype(np.float32)
        net.p["fuse2.b"] = (net.p["fuse2.b"] / (k * temperature)).astype(np.float32)
    thresholds = [args.threshold] * 3
    report = {
        "train_events": len(ytr),
        "train_support": np.bincount(ytr, minlength=4).tolist(),
        "calibration_events": len(yca),
        "ensemble": k,
        "temperature": round(temperature, 4),
        "threshold": args.threshold,
        "dims": in_dims,
    }
    if pool is not None:
        report["pool_bands"] = args.pool_bands
        report["network_dims"] = dims
    report["numpy_float"] = {name: evaluate(softmax(logits(t[0], t[1])), t[2], thresholds) for name, t in tests.items()}
    if not args.no_export:
        os.makedirs(args.out, exist_ok=True)
        fpath = os.path.join(args.out, "fusion.float.onnx")
        qpath = os.path.join(args.out, "fusion.int4.onnx")
        export(nets, dims, fpath, pool)
        report["int4_ops"] = quantize(fpath, qpath)
        for name, path in [("float", fpath), ("int4", qpath)]:
            report[name] = {"size_bytes": os.path.getsize(path)}
            for tname, (xte, mte, yte) in raw_tests.items():
                r = evaluate(run_onnx(path, xte, mte), yte, thresholds)
                ablation = {}
                for i, m in enumerate(MODALITIES):
                    x2 = {k: v.copy() for k, v in xte.items()}
                    m2 = mte.copy()
                    x2[m][:] = 0.0
                    m2[:, i] = 0.0
                    ablation["without_" + m] = f1_table(yte, run_onnx(path, x2, m2).argmax(1))["macro_f1"]
                r["ablation_macro_f1"] = ablation
                report[name][tname] = r
        report["size_ratio_int4_over_float"] = round(report["int4"]["size_bytes"] / report["float"]["size_bytes"], 4)
        write_manifest(os.path.join(args.out, "fusion.float.manifest.toml"), fpath, args.version, "none (float32)", in_dims)
        write_manifest(
            os.path.join(args.out, "fusion.int4.manifest.toml"),
            qpath,
            args.version,
            f"MatMulNBits, 4 bits, block {BLOCK}, symmetric (onnxruntime MatMulNBitsQuantizer)",
            in_dims,
        )
    report["train_seconds"] = round(time.time() - t0, 1)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "report.json"), "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
