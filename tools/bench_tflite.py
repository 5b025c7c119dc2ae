#!/usr/bin/env python3
"""Time the original MediaPipe TFLite models (ai-edge-litert, CPU) for
benches/pipeline.rs, which runs this in the same session and prints ratios.

Prints one JSON object: {"detect_full_ms":..,"detect_short_ms":..,"landmarks_ms":..,"blendshapes_ms":..}
(network invoke time only, mean over --iters runs after a warm-up).
Usage: python3 tools/bench_tflite.py --shared ../shared [--iters 30] [--threads 2]
"""
import argparse
import json
import pathlib
import time
import zipfile

import numpy as np
from ai_edge_litert.interpreter import Interpreter


def timed(interp, shape, iters):
    x = np.random.default_rng(0).uniform(-1, 1, size=shape).astype(np.float32)
    interp.allocate_tensors()
    inp = interp.get_input_details()[0]["index"]
    interp.set_tensor(inp, x)
    interp.invoke()
    start = time.perf_counter()
    for _ in range(iters):
        interp.set_tensor(inp, x)
        interp.invoke()
    return (time.perf_counter() - start) / iters * 1e3


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", type=pathlib.Path, required=True)
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    mp = a.shared / "data" / "mediapipe"
    full = Interpreter(model_path=str(mp / "face_detection_full_range.tflite"), num_threads=a.threads)
    short = Interpreter(model_path=str(mp / "face_detection_short_range.tflite"), num_threads=a.threads)
    with zipfile.ZipFile(mp / "face_landmarker.task") as zf:
        lm = Interpreter(model_content=zf.read("face_landmarks_detector.tflite"), num_threads=a.threads)
        bs = Interpreter(model_content=zf.read("face_blendshapes.tflite"), num_threads=a.threads)
    print(json.dumps({
        "detect_full_ms": timed(full, (1, 192, 192, 3), a.iters),
        "detect_short_ms": timed(short, (1, 128, 128, 3), a.iters),
        "landmarks_ms": timed(lm, (1, 256, 256, 3), a.iters),
        "blendshapes_ms": timed(bs, (1, 146, 2), a.iters),
    }))


if __name__ == "__main__":
    main()
