#!/usr/bin/env python3
"""Reference outputs of the original MediaPipe TFLite models, for parity tests.

Runs the TFLite interpreter (ai-edge-litert) with the same pre- and
post-processing auscope implements (MediaPipe's: letterbox to the detector
input, SSD anchors, weighted NMS, rotated ROI x1.5, 256x256 landmark crop)
and writes tests/fixtures/mediapipe/:
  faces_<image>.json   per image and detector: boxes, scores, 6 keypoints,
                       478 landmarks, all in frame pixels, and the 52
                       blendshape scores of those landmarks' 146-point subset
  net_<model>.png      a fixed network input (uint8 RGB)
  net_<model>.json     the raw network outputs for that input (detectors:
                       all scores, regressors of the 8 best anchors)
Usage: python3 tools/mediapipe_reference.py [--shared ../shared]
Needs: pip install ai-edge-litert numpy pillow opencv-python-headless
"""
import argparse
import json
import math
import pathlib
import zipfile

import cv2
import numpy as np
from ai_edge_litert.interpreter import Interpreter
from PIL import Image

from convert_tflite import BLENDSHAPE_SUBSET

DETECTORS = {
    # name: (file, input size, anchor strides, two anchors per cell)
    "short": ("face_detection_short_range.tflite", 128, [8, 16, 16, 16], True),
    "full": ("face_detection_full_range.tflite", 192, [4], False),
}
MIN_SCORE = 0.5
NMS_IOU = 0.3
ROI_SCALE = 1.5
LANDMARK_SIZE = 256
IMAGES = ["single_face.jpg", "multi_face.jpg", "free-mountain-vector-01.jpg",
          "0-f1-su-ph.jpg", "45-m7-di-ph.jpg"]


def anchors(size, strides, two_per_cell):
    out = []
    layer = 0
    while layer < len(strides):
        stride = strides[layer]
        repeats = 0
        while layer < len(strides) and strides[layer] == stride:
            repeats += 2 if two_per_cell else 1
            layer += 1
        cells = math.ceil(size / stride)
        for y in range(cells):
            for x in range(cells):
                for _ in range(repeats):
                    out.append(((x + 0.5) / cells, (y + 0.5) / cells))
    return np.array(out, dtype=np.float32)


def warp(image, cx, cy, side, angle, out_size):
    """Bilinear sample a rotated square (centre, side, angle) into out_size^2.

    Pixel centres sit at +0.5; outside the image reads as zero. The Rust
    side (frame::warp) uses the same formula.
    """
    h, w, _ = image.shape
    t = (np.arange(out_size, dtype=np.float64) + 0.5) / out_size - 0.5
    s, r = np.meshgrid(t, t)  # s along x, r along y of the crop
    c, sn = math.cos(angle), math.sin(angle)
    px = cx + (c * s - sn * r) * side - 0.5
    py = cy + (sn * s + c * r) * side - 0.5
    x0 = np.floor(px).astype(np.int64)
    y0 = np.floor(py).astype(np.int64)
    fx = (px - x0)[..., None]
    fy = (py - y0)[..., None]

    def at(yy, xx):
        inside = (xx >= 0) & (xx < w) & (yy >= 0) & (yy < h)
        v = image[np.clip(yy, 0, h - 1), np.clip(xx, 0, w - 1)].astype(np.float64)
        return v * inside[..., None]

    top = at(y0, x0) * (1 - fx) + at(y0, x0 + 1) * fx
    bot = at(y0 + 1, x0) * (1 - fx) + at(y0 + 1, x0 + 1) * fx
    return top * (1 - fy) + bot * fy


def warp_cv(image, cx, cy, side, angle, out_size, replicate):
    """A rotated square sampled as MediaPipe's CPU ImageToTensorCalculator
    does: OpenCV's warpPerspective (bilinear, fixed point) on the 8-bit image
    from the region's corners to the output's, edge pixels repeated
    (landmarker) or black (detector letterbox) outside. The Rust side is
    frame::warp_like_mediapipe.
    """
    c, s = math.cos(angle), math.sin(angle)
    # Output pixel (i, j) reads the frame at centre + R((i/n - 0.5) side, (j/n - 0.5) side).
    k = side / out_size
    m = np.array([[c * k, -s * k, cx - (c - s) * side / 2],
                  [s * k, c * k, cy - (s + c) * side / 2],
                  [0.0, 0.0, 1.0]])
    border = cv2.BORDER_REPLICATE if replicate else cv2.BORDER_CONSTANT
    out = cv2.warpPerspective(np.ascontiguousarray(image), m, (out_size, out_size),
                              flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=border, borderValue=0)
    return out.astype(np.float64)


def run(interp, x):
    interp.set_tensor(interp.get_input_details()[0]["index"], x[None].astype(np.float32))
    interp.invoke()
    return {d["name"]: interp.get_tensor(d["index"]) for d in interp.get_output_details()}


def iou(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def detect(interp, spec, image):
    file, size, strides, two = spec
    h, w, _ = image.shape
    side = max(w, h)
    crop = warp_cv(image, w / 2, h / 2, side, 0.0, size, replicate=False)
    out = run(interp, crop / 127.5 - 1.0)
    scores_raw = [v for k, v in out.items() if v.shape[-1] == 1][0].reshape(-1)
    reg = [v for k, v in out.items() if v.shape[-1] == 16][0].reshape(-1, 16)
    scores = 1 / (1 + np.exp(-np.clip(scores_raw, -100, 100)))
    anc = anchors(size, strides, two)
    dets = []
    for i in np.nonzero(scores >= MIN_SCORE)[0]:
        r = reg[i].astype(np.float64) / size
        ax, ay = (float(a) for a in anc[i])
        cx, cy, bw, bh = r[0] + ax, r[1] + ay, r[2], r[3]
        box = [cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2]
        kps = [[r[4 + 2 * k] + ax, r[5 + 2 * k] + ay] for k in range(6)]
        dets.append((float(scores[i]), box, kps))
    dets.sort(key=lambda d: -d[0])
    kept = []
    while dets:
        top = dets[0]
        group = [d for d in dets if iou(d[1], top[1]) > NMS_IOU]
        dets = [d for d in dets if iou(d[1], top[1]) <= NMS_IOU]
        total = sum(d[0] for d in group)
        box = [sum(d[0] * d[1][j] for d in group) / total for j in range(4)]
        kps = [[sum(d[0] * d[2][k][j] for d in group) / total for j in range(2)] for k in range(6)]
        kept.append((top[0], box, kps))
    # Letterbox removal: square-normalised -> frame pixels.
    ox, oy = (side - w) / 2, (side - h) / 2
    px = lambda p: [p[0] * side - ox, p[1] * side - oy]
    f = lambda v: [float(t) for t in v]
    return [(s, f(px(b[:2]) + px(b[2:])), [f(px(k)) for k in kps]) for s, b, kps in kept]


def roi(box, kps):
    (x0, y0), (x1, y1) = kps[0], kps[1]
    angle = -math.atan2(-(y1 - y0), x1 - x0)
    angle = (angle + math.pi) % (2 * math.pi) - math.pi
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    side = max(box[2] - box[0], box[3] - box[1]) * ROI_SCALE
    return cx, cy, side, angle


def landmarks(interp, image, r):
    cx, cy, side, angle = r
    crop = warp_cv(image, cx, cy, side, angle, LANDMARK_SIZE, replicate=True)
    out = run(interp, crop / 255.0)
    pts = out["Identity"].reshape(478, 3)
    c, s = math.cos(angle), math.sin(angle)
    res = []
    for x, y, z in pts:
        u, v = x / LANDMARK_SIZE - 0.5, y / LANDMARK_SIZE - 0.5
        res.append([float(cx + (c * u - s * v) * side), float(cy + (s * u + c * v) * side),
                    float(z / LANDMARK_SIZE * side)])
    # Identity_1 is the face-presence logit; Identity_2 is not used by MediaPipe's face graph.
    presence = float(1 / (1 + math.exp(-float(out["Identity_1"].reshape(-1)[0]))))
    return res, presence


def main():
    ap = argparse.ArgumentParser()
    here = pathlib.Path(__file__).resolve().parent.parent
    ap.add_argument("--shared", type=pathlib.Path, default=here.parent / "shared")
    args = ap.parse_args()
    mp = args.shared / "data" / "mediapipe"
    out_dir = here / "tests" / "fixtures" / "mediapipe"
    out_dir.mkdir(parents=True, exist_ok=True)
    interps = {}
    for name, spec in DETECTORS.items():
        interps[name] = Interpreter(model_path=str(mp / spec[0]))
        interps[name].allocate_tensors()
    with zipfile.ZipFile(mp / "face_landmarker.task") as zf:
        lm = Interpreter(model_content=zf.read("face_landmarks_detector.tflite"))
        bs = Interpreter(model_content=zf.read("face_blendshapes.tflite"))
    lm.allocate_tensors()
    bs.allocate_tensors()

    for img_name in IMAGES:
        image = np.asarray(Image.open(args.shared / "data" / "faces" / img_name).convert("RGB"))
        result = {"image": img_name, "width": image.shape[1], "height": image.shape[0]}
        short = detect(interps["short"], DETECTORS["short"], image)
        for det_name, spec in DETECTORS.items():
            faces = []
            for score, box, kps in detect(interps[det_name], spec, image):
                # The landmark region: the short-range (MediaPipe's own)
                # detection of the same face where there is one.
                guide = max(short, key=lambda d: iou(d[1], box), default=None)
                if guide is not None and iou(guide[1], box) > 0.5:
                    region = roi(guide[1], guide[2])
                else:
                    region = roi(box, kps)
                pts, presence = landmarks(lm, image, region)
                # MediaPipe feeds the subset in image pixels (x, y).
                subset = np.asarray(pts, dtype=np.float32)[BLENDSHAPE_SUBSET, :2]
                blend = run(bs, subset)
                faces.append({"score": score, "box": box, "keypoints": kps,
                              "landmarks478": pts, "presence": presence,
                              "blendshapes52": next(iter(blend.values())).reshape(-1).tolist()})
            result[det_name] = faces
        stem = img_name.rsplit(".", 1)[0]
        (out_dir / f"faces_{stem}.json").write_text(json.dumps(result) + "\n")
        print(img_name, {k: len(result[k]) for k in DETECTORS})

    # Raw-network parity inputs: the exact uint8 tensors both sides feed.
    image = np.asarray(Image.open(args.shared / "data" / "faces" / "single_face.jpg").convert("RGB"))
    h, w, _ = image.shape
    for det_name, spec in DETECTORS.items():
        size = spec[1]
        crop = np.clip(np.rint(warp(image, w / 2, h / 2, max(w, h), 0.0, size)), 0, 255).astype(np.uint8)
        Image.fromarray(crop).save(out_dir / f"net_blazeface_{det_name}.png")
        out = run(interps[det_name], crop / 127.5 - 1.0)
        scores = [v for v in out.values() if v.shape[-1] == 1][0].reshape(-1)
        reg = [v for v in out.values() if v.shape[-1] == 16][0].reshape(-1, 16)
        top = np.argsort(-scores)[:8]  # keep the fixture small: the anchors that matter
        (out_dir / f"net_blazeface_{det_name}.json").write_text(json.dumps({
            "scores": scores.tolist(), "top_anchors": top.tolist(),
            "top_regressors": reg[top].tolist()}) + "\n")
    ref = json.loads((out_dir / "faces_single_face.json").read_text())["short"][0]
    crop = warp(image, *roi(ref["box"], ref["keypoints"]), LANDMARK_SIZE)
    crop = np.clip(np.rint(crop), 0, 255).astype(np.uint8)
    Image.fromarray(crop).save(out_dir / "net_face_landmarker.png")
    out = run(lm, crop / 255.0)
    (out_dir / "net_face_landmarker.json").write_text(json.dumps(
        {k: v.reshape(-1).tolist() for k, v in out.items()}) + "\n")


if __name__ == "__main__":
    main()
