#!/usr/bin/env python3
"""Time one training step of each AU architecture in PyTorch CPU, for
benches/training.rs, which runs this in the same session and prints ratios.

The networks are tools/model_reference.py's PyTorch versions at the
configurations the bench trains in burn (the tiny presets; TransAU on
torchvision's Inception3 at 96 px, as in the parity test). A step is what
auscope's trainer does per mini-batch: forward, the paper's loss
(training/losses.rs, in PyTorch from tools/loss_reference.py),
backward, and an Adam(W) update. FAN-Trans keeps its FAN frozen, as the
paper does.

Prints one JSON object {"<arch>": steps_per_second, ...}: after --warmup
steps, the mean over --steps steps, batch --batch of random inputs/labels.
Usage: python3 tools/bench_train.py [--batch 16] [--steps 5] [--threads 2]
"""
import argparse
import json
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(__file__))
import loss_reference as L  # noqa: E402
import model_reference as ref  # noqa: E402

N = 12
L.N = 12  # its class-weight functions read the AU count from the module


def wce_tversky(x, y, w):
    return L.wbce(x, y, w) + L.tversky(x, y, w)


def build(fa):
    ft = ref.FanTrans(fa)
    for p in ft.fan.parameters():
        p.requires_grad_(False)

    def ft_loss(m, x, y):
        z1, z2, ens, _ = m(x)
        w = L.occurrence_weights(y.mean(0))
        return L.wbce(z1, y, w) + L.wbce(z2, y, w) + L.wbce(ens, y, w) + 0.2 * (L.okd_kl(ens, z1) + L.okd_kl(ens, z2))

    ta = ref.TransAu()
    centers = torch.zeros(N, 32)

    def ta_loss(m, x, y):
        logits, att, maps, emb = m.forward_with_embeddings(x)
        w = L.soft_balance(y.sum(0))
        target = torch.rand_like(maps) * y[:, :, None, None]
        return (0.33 * wce_tversky(att, y, w) + 0.33 * wce_tversky(logits, y, w)
                + 0.15 * F.huber_loss(maps, target, delta=0.5) + 0.15 * L.center_cc(emb, centers, y))

    piap = ref.PiapStage3()

    def piap_loss(m, x, y):
        logits, pi = m(x)
        target = (torch.rand_like(pi) > 0.7).float()
        # L_AU and L_PI at 2:1 (no AP encoder), as the trainer weighs them.
        return (0.6 * F.binary_cross_entropy_with_logits(logits, y)
                + 0.3 * F.binary_cross_entropy(pi.clamp(1e-6, 1 - 1e-6), target)) / 0.9

    lrp = ref.LrpArlFf()

    def lrp_loss(m, x, y):
        logits, _ = m(x)
        return F.binary_cross_entropy_with_logits(logits, y) + L.circle(logits, y)

    return {
        "fan_trans": (ft, 64, ft_loss, "adamw"),
        "transau": (ta, 96, ta_loss, "adam"),
        "piap": (piap, 64, piap_loss, "adam"),
        "lrp_arl_ff": (lrp, 32, lrp_loss, "adam"),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    import importlib.util
    spec = importlib.util.find_spec("face_alignment")
    path = os.path.join(os.path.dirname(spec.origin), "models", "fan.py")
    mspec = importlib.util.spec_from_file_location("fa_models", path)
    fa = importlib.util.module_from_spec(mspec)
    mspec.loader.exec_module(fa)
    out = {}
    for name, (model, side, loss_fn, opt) in build(fa).items():
        model.train()
        params = [p for p in model.parameters() if p.requires_grad]
        optim = (torch.optim.AdamW(params, lr=1e-4, weight_decay=0.0) if opt == "adamw"
                 else torch.optim.Adam(params, lr=1e-4))
        x = torch.rand(a.batch, 3, side, side)
        y = (torch.rand(a.batch, N) > 0.6).float()

        def step():
            optim.zero_grad()
            loss = loss_fn(model, x, y)
            loss.backward()
            optim.step()

        for _ in range(a.warmup):
            step()
        start = time.perf_counter()
        for _ in range(a.steps):
            step()
        out[name] = a.steps / (time.perf_counter() - start)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
