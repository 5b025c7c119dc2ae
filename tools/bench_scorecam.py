#!/usr/bin/env python3
"""Score-CAM timings in PyTorch CPU for benches/explain.rs (same run):
one forward pass, and pytorch-grad-cam's ScoreCAM for all 12 AUs (one call
per AU: it scores one target per pass), on tools/model_reference.py's
networks at the tiny configurations, at the layers the bench uses in burn.

Prints {"<arch>": {"forward_ms": f, "score_cam_all_ms": s, "channels": k}}.
Usage: python3 tools/bench_scorecam.py [--repeats 3] [--threads 2]
"""
import argparse
import json
import os
import sys
import time

import torch
from pytorch_grad_cam import ScoreCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

sys.path.insert(0, os.path.dirname(__file__))
import model_reference as ref  # noqa: E402
import scorecam_reference as sr  # noqa: E402


class First(torch.nn.Module):
    def __init__(self, m, index):
        super().__init__()
        self.m, self.index = m, index

    def forward(self, x):
        return self.m(x)[self.index]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    ft = ref.FanTrans(sr.fan_models())
    piap = ref.PiapStage3()
    lrp = ref.LrpArlFf()
    cases = {
        "fan_trans": (First(ft, 1), ft.fan.conv4, 64),
        "piap": (First(piap, 0), piap.encoder.features[3], 64),
        "lrp_arl_ff": (First(lrp, 0), lrp.backbone.layer3, 32),
    }
    out = {}
    for name, (model, layer, size) in cases.items():
        model.eval()
        x = torch.rand(1, 3, size, size)
        with torch.no_grad():
            model(x)
            t = time.perf_counter()
            for _ in range(a.repeats * 5):
                model(x)
            fwd = (time.perf_counter() - t) / (a.repeats * 5) * 1e3
        acts = {}
        h = layer.register_forward_hook(lambda m, i, o: acts.__setitem__("a", o))
        with torch.no_grad():
            model(x)
        h.remove()
        with ScoreCAM(model=model, target_layers=[layer]) as cam:
            cam.batch_size = 32
            cam(input_tensor=x, targets=[ClassifierOutputTarget(0)])
            t = time.perf_counter()
            for _ in range(a.repeats):
                for au in range(12):
                    cam(input_tensor=x, targets=[ClassifierOutputTarget(au)])
            sc = (time.perf_counter() - t) / a.repeats * 1e3
        out[name] = {"forward_ms": fwd, "score_cam_all_ms": sc, "channels": int(acts["a"].shape[1])}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
