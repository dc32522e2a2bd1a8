#!/usr/bin/env python3
"""Measures a model's latency with the node's own inference code
(`fusion/examples/infer_bench.rs`) and writes it into the model's manifest as
its `[latency]` table. The model file and its hash do not change.

    python3 models/fusion/add_latency.py models/fusion/fusion.int4.manifest.toml
"""

import os
import platform
import re
import subprocess
import sys


def main():
    manifest = sys.argv[1]
    root = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
    text = open(manifest, encoding="utf-8").read()
    model = re.search(r'^file = "([^"]+)"', text, re.M).group(1)
    model = os.path.join(os.path.dirname(os.path.abspath(manifest)), model)
    out = subprocess.run(
        ["cargo", "run", "--release", "-q", "-p", "fusion", "--example", "infer_bench", "--",
         model, "--runs", "500", "--wakes", "10", "--batches", "1,8"],
        cwd=root, check=True, capture_output=True, text=True,
    ).stdout
    wake = float(re.search(r"wake \(session\)\s+first [\d.]+ ms, p50 ([\d.]+) ms", out).group(1))
    b = {n: re.search(rf"run batch {n}\s+p50 ([\d.]+) ms, p99 ([\d.]+) ms", out).groups() for n in (1, 8)}
    cpu = platform.processor() or platform.machine()
    for line in open("/proc/cpuinfo", encoding="utf-8"):
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    table = "\n".join([
        "[latency]",
        f'measured_on = "{cpu}, 1 intra-op thread, ONNX Runtime 1.31.1"',
        f"session_create_ms = {wake}",
        f"batch1_p50_ms = {b[1][0]}",
        f"batch1_p99_ms = {b[1][1]}",
        f"batch8_p50_ms = {b[8][0]}",
        f"batch8_p99_ms = {b[8][1]}",
    ])
    text = re.sub(r"\n\[latency\]\n(?:[^\[\n][^\n]*\n)*", "\n", text)
    head, sep, rest = text.partition("\n[[inputs]]")
    text = head.rstrip("\n") + "\n\n" + table + "\n" + sep + rest
    open(manifest, "w", encoding="utf-8").write(text)
    print(table)


if __name__ == "__main__":
    main()
