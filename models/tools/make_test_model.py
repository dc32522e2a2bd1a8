#!/usr/bin/env python3
"""Writes the tiny ONNX fixture that fusion's inference tests run through
ONNX Runtime (fusion/tests/data/tiny_fusion.onnx) and the raw weights the
tests recompute its outputs from (tiny_fusion.json).

The graph has the shape of the node's fusion model in miniature, with two
named inputs and two outputs, and a 4-bit layer so the tests prove that the
installed ONNX Runtime executes MatMulNBits:

    x [N, 64]  -> MatMulNBits (K=64, N=16, bits=4, block_size=32, no zero
                  points: the default zero point 8) -> + b1 -> Relu -> hidden [N, 16]
    m [N, 3]   -> MatMul W3 [3, 4]
    logits = hidden @ W2 [16, 4] + m @ W3 + b2 ;  probs = Softmax(logits, axis 1)

Deterministic (fixed seed); saved with IR version 10 because ONNX Runtime
1.31 reads at most IR 13 and onnx 1.23 writes 14 by default.

Usage: python3 models/tools/make_test_model.py [OUT_DIR]
(default OUT_DIR: fusion/tests/data beside this repository's root)
"""

import json
import pathlib
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

K, N_HIDDEN, CLASSES, MASK = 64, 16, 4, 3
BITS, BLOCK = 4, 32
ZERO_POINT = 8  # MatMulNBits' default for 4 bits when no zero points are given


def quantize_4bit(w):
    """w: float [N, K] -> (packed uint8 [N, K/BLOCK, BLOCK/2], scales [N*K/BLOCK])."""
    n, k = w.shape
    blocks = w.reshape(n, k // BLOCK, BLOCK)
    scales = np.abs(blocks).max(axis=2) / 7.0
    scales[scales == 0] = 1.0
    q = np.clip(np.round(blocks / scales[:, :, None]) + ZERO_POINT, 0, 15).astype(np.uint8)
    packed = (q[:, :, 0::2] | (q[:, :, 1::2] << 4)).astype(np.uint8)  # low nibble first
    return packed, scales.astype(np.float32).reshape(-1)


def build(out_dir: pathlib.Path):
    rng = np.random.default_rng(20240601)
    w1 = rng.normal(0.0, 0.3, size=(N_HIDDEN, K)).astype(np.float32)
    packed, scales = quantize_4bit(w1)
    b1 = rng.normal(0.0, 0.1, size=N_HIDDEN).astype(np.float32)
    w2 = rng.normal(0.0, 0.5, size=(N_HIDDEN, CLASSES)).astype(np.float32)
    w3 = rng.normal(0.0, 0.5, size=(MASK, CLASSES)).astype(np.float32)
    b2 = rng.normal(0.0, 0.1, size=CLASSES).astype(np.float32)

    inits = [
        numpy_helper.from_array(packed, "w1_q4"),
        numpy_helper.from_array(scales, "w1_scales"),
        numpy_helper.from_array(b1, "b1"),
        numpy_helper.from_array(w2, "w2"),
        numpy_helper.from_array(w3, "w3"),
        numpy_helper.from_array(b2, "b2"),
    ]
    nodes = [
        helper.make_node(
            "MatMulNBits",
            ["x", "w1_q4", "w1_scales"],
            ["h_lin"],
            domain="com.microsoft",
            K=K,
            N=N_HIDDEN,
            bits=BITS,
            block_size=BLOCK,
        ),
        helper.make_node("Add", ["h_lin", "b1"], ["h_pre"]),
        helper.make_node("Relu", ["h_pre"], ["hidden"]),
        helper.make_node("MatMul", ["hidden", "w2"], ["z_h"]),
        helper.make_node("MatMul", ["m", "w3"], ["z_m"]),
        helper.make_node("Add", ["z_h", "z_m"], ["z_sum"]),
        helper.make_node("Add", ["z_sum", "b2"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_fusion",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", K]),
            helper.make_tensor_value_info("m", TensorProto.FLOAT, ["N", MASK]),
        ],
        [
            helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", CLASSES]),
            helper.make_tensor_value_info("hidden", TensorProto.FLOAT, ["N", N_HIDDEN]),
        ],
        initializer=inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)],
        ir_version=10,
        producer_name="fieldnode make_test_model.py",
    )
    onnx.checker.check_model(model)
    out_dir.mkdir(parents=True, exist_ok=True)
    onnx.save(model, out_dir / "tiny_fusion.onnx")

    reference = {
        "about": "raw weights of tiny_fusion.onnx; tests recompute its outputs from these",
        "k": K,
        "n_hidden": N_HIDDEN,
        "classes": CLASSES,
        "mask": MASK,
        "bits": BITS,
        "block_size": BLOCK,
        "zero_point": ZERO_POINT,
        "w1_packed": packed.reshape(-1).tolist(),
        "w1_scales": scales.tolist(),
        "b1": b1.tolist(),
        "w2": w2.reshape(-1).tolist(),
        "w3": w3.reshape(-1).tolist(),
        "b2": b2.tolist(),
    }
    (out_dir / "tiny_fusion.json").write_text(json.dumps(reference, indent=1) + "\n")


if __name__ == "__main__":
    root = pathlib.Path(__file__).resolve().parents[2]
    out = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else root / "fusion" / "tests" / "data"
    build(out)
    print(out / "tiny_fusion.onnx")
