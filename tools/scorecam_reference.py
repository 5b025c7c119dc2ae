#!/usr/bin/env python3
"""Score-CAM reference for tests/parity_models.rs: pytorch-grad-cam's
ScoreCAM (PyPI `grad-cam`) on the PyTorch FAN-Trans of
tools/model_reference.py (the tiny configuration, deployed one-to-many
output), filled with the same generated weights the burn model imports in
the parity test ("fan_trans_tiny"), on the same generated input (item 0).

Writes tests/fixtures/parity/score_cam_fan_trans_tiny.safetensors: "cams"
[12, 64, 64], one map per AU at the FAN's conv4 (auscope's "fan.conv4",
16x16), target = the AU's logit (ClassifierOutputTarget), and "input".

FAN-Trans rather than PIAP: with generated weights, PIAP's logits barely
move when the input is masked, so every channel gets weight 1/K and the
test could not tell a wrong weighting; FAN-Trans' scores move by ~0.6.

Usage: pip install grad-cam face-alignment torch torchvision safetensors
       python3 tools/scorecam_reference.py
"""
import os
import sys

import numpy as np
import torch
from pytorch_grad_cam import ScoreCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(__file__))
import model_reference as ref  # noqa: E402



class Logits(torch.nn.Module):
    """ScoreCAM wants model(x) -> [B, classes]; FanTrans returns
    (one-to-one, one-to-many, ensemble, heat-maps); the tiny preset deploys
    one-to-many."""

    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, x):
        return self.m(x)[1]


def fan_models():
    """face-alignment's models/fan.py alone (as model_reference.main does)."""
    import importlib.util
    spec = importlib.util.find_spec("face_alignment")
    path = os.path.join(os.path.dirname(spec.origin), "models", "fan.py")
    mspec = importlib.util.spec_from_file_location("fa_models", path)
    mod = importlib.util.module_from_spec(mspec)
    mspec.loader.exec_module(mod)
    return mod


def main():
    torch.manual_seed(0)
    ft = ref.FanTrans(fan_models())
    ft.eval()
    ref.fill(ft)
    model = Logits(ft).eval()
    x = ref.values("input", [2, 3, 64, 64], 0.0, 1.0)[:1].contiguous()
    cams = []
    with ScoreCAM(model=model, target_layers=[ft.fan.conv4]) as cam:
        cam.batch_size = 32
        for au in range(12):
            cams.append(cam(input_tensor=x, targets=[ClassifierOutputTarget(au)])[0])
    cams = torch.from_numpy(np.stack(cams).astype(np.float32))
    out = os.path.join(ref.OUT, "score_cam_fan_trans_tiny.safetensors")
    save_file({"cams": cams.contiguous(), "input": x}, out)
    print(f"wrote {out}: cams {list(cams.shape)}, range {cams.min():.3f}..{cams.max():.3f}")


if __name__ == "__main__":
    main()
