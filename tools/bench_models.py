#!/usr/bin/env python3
"""Time the PyTorch CPU references of the AU models' networks for
benches/models.rs, which runs this in the same session and prints ratios.

Reference code (tools/model_reference.py) exists for the four whole models
and for the backbones:
face-alignment's FAN-4 (FAN-Trans' backbone), torchvision's Inception3 up to
Mixed_6e (TransAU's), torchvision's EfficientNet-B1 + FC (PIAP's deployed
model, the whole of it) and insightface's IResNet100 (LRP-ARL-FF's).

Prints one JSON object {"<net>": {"1": ms, "16": ms}, ...}: mean forward time
over --iters runs after one warm-up, eval mode, no grad.
Usage: python3 tools/bench_models.py [--iters 3] [--threads 2] [--batches 1,16]
"""
import argparse
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(__file__))
import model_reference as ref  # noqa: E402


def timed(model, shape, iters):
    x = torch.rand(shape)
    with torch.no_grad():
        model(x)
        start = time.perf_counter()
        for _ in range(iters):
            model(x)
    return (time.perf_counter() - start) / iters * 1e3


class B1Head(torch.nn.Module):
    def __init__(self):
        super().__init__()
        import torchvision
        self.net = torchvision.models.efficientnet_b1(weights=None)
        self.net.classifier[1] = torch.nn.Linear(1280, 12)

    def forward(self, x):
        return self.net(x)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--batches", default="1,16")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    import importlib.util
    spec = importlib.util.find_spec("face_alignment")
    path = os.path.join(os.path.dirname(spec.origin), "models", "fan.py")
    mspec = importlib.util.spec_from_file_location("fa_models", path)
    fa = importlib.util.module_from_spec(mspec)
    mspec.loader.exec_module(fa)
    nets = {
        "fan4": (fa.FAN(4), 256),
        "inception_v3_mixed6e": (ref.InceptionTrunk(), 224),
        "efficientnet_b1": (B1Head(), 224),
        "iresnet100": (ref.IResNet([3, 13, 30, 3]), 112),
        # The whole models at the paper's sizes (auscope's choices for what the
        # papers leave open, as in ModelSpec::paper).
        "fan_trans": (ref.FanTrans(fa, n=12, stacks=4, depth=4, f=256, dim=512, blocks=5, top_k=3, size=256), 256),
        "transau": (ref.TransAu(n=12, side=12, a=256, b=128, e=256, layers=3, heads=8, ffn=1024, hidden=512), 224),
        # The whole stage-3 PIAP (B1, FC, PI decoder) at 256 -> 224.
        "piap": (ref.PiapStage3(n=12, width=1.0, depth=1.1, dec=(256, 128, 64, 32, 16), enc_size=224), 256),
        # The whole LRP-ARL-FF at the paper's sizes (auscope's choices for
        # what the paper leaves open, as in ModelSpec::paper).
        "lrp_arl_ff": (ref.LrpArlFf(n=12, layers=(3, 13, 30, 3), widths=(64, 128, 256, 512), emb=512, side=7,
                                    lanets=8, r=16, d=256, k=4, dim=256, heads=4, fusion_layers=2), 112),
    }
    out = {}
    for name, (m, side) in nets.items():
        m.eval()
        out[name] = {b: timed(m, (int(b), 3, side, side), a.iters) for b in a.batches.split(",")}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
