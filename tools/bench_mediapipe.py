#!/usr/bin/env python3
"""Google's MediaPipe FaceLandmarker (PyPI `mediapipe`, the shared
face_landmarker.task) on a video in VIDEO running mode: the speed and
fidelity reference for benches/engine.rs, which runs this in the same
session (under the same `taskset` CPU set as auscope) and prints ratios.

Times decode + detection/tracking + 478 landmarks + blendshapes per frame,
and writes per frame the first face's 52 blendshape scores, so the bench
can compare auscope's blendshape baseline with them.

Prints one JSON object: {"frames":N,"ms_per_frame":..,"decode_ms":..,
"blendshapes":[[52 floats] or null per frame],"names":[52 names]}
Usage: python3 tools/bench_mediapipe.py --task face_landmarker.task --video V [--image I]
Needs: pip install mediapipe (it brings OpenCV and numpy)
"""
import argparse
import json
import time

import cv2
import mediapipe as mp


def landmarker(task, mode):
    from mediapipe.tasks import python as mpt
    from mediapipe.tasks.python import vision
    opts = vision.FaceLandmarkerOptions(
        base_options=mpt.BaseOptions(model_asset_path=task),
        running_mode=mode,
        num_faces=1,
        output_face_blendshapes=True,
    )
    return vision.FaceLandmarker.create_from_options(opts)


def scores(result):
    if not result.face_blendshapes:
        return None
    return [c.score for c in result.face_blendshapes[0]]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--task", required=True)
    ap.add_argument("--video")
    ap.add_argument("--image", action="append", default=[])
    a = ap.parse_args()
    from mediapipe.tasks.python import vision
    out = {}
    names = None
    if a.video:
        lm = landmarker(a.task, vision.RunningMode.VIDEO)
        cap = cv2.VideoCapture(a.video)
        fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
        per_frame = []
        decode = 0.0
        start = time.perf_counter()
        i = 0
        while True:
            t0 = time.perf_counter()
            ok, bgr = cap.read()
            if not ok:
                break
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            decode += time.perf_counter() - t0
            image = mp.Image(image_format=mp.ImageFormat.SRGB, data=rgb)
            r = lm.detect_for_video(image, int(i * 1000 / fps))
            if names is None and r.face_blendshapes:
                names = [c.category_name for c in r.face_blendshapes[0]]
            per_frame.append(scores(r))
            i += 1
        total = time.perf_counter() - start
        out.update({"frames": i, "ms_per_frame": total / max(i, 1) * 1e3, "decode_ms": decode / max(i, 1) * 1e3, "blendshapes": per_frame})
    images = {}
    if a.image:
        lm = landmarker(a.task, vision.RunningMode.IMAGE)
        for path in a.image:
            rgb = cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2RGB)
            r = lm.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=rgb))
            if names is None and r.face_blendshapes:
                names = [c.category_name for c in r.face_blendshapes[0]]
            images[path] = scores(r)
    out["images"] = images
    out["names"] = names
    print(json.dumps(out))


if __name__ == "__main__":
    main()
