#!/usr/bin/env python3
"""PyTorch values (and input gradients) of the training losses, for tests/losses.rs.

Each loss is written here from the paper's equation in plain PyTorch, on
fixed random inputs, independently of the Rust code. Writes
tests/fixtures/losses.json. Usage: python3 tools/loss_reference.py
Needs: pip install torch numpy
"""
import json
import pathlib

import torch
import torch.nn.functional as F

torch.manual_seed(7)
B, N, D = 6, 5, 4


def occurrence_weights(r):
    # An AU never positive takes the weight of the most frequent one (auscope's choice).
    r = torch.where(r > 0, r, r.max() if bool((r > 0).any()) else torch.tensor(1.0))
    inv = 1.0 / r.clamp(0.05, 1.0)  # auscope's floor (MIN_OCCURRENCE_RATE)
    return N * inv / inv.sum()


def soft_balance(counts, lam=0.7):
    c = counts.clamp(min=1.0)
    pn = c / c.sum()
    ps = (1.0 / (N * pn)) ** lam * pn
    return ps.sum() / ps


def wbce(x, y, w):
    return (F.binary_cross_entropy_with_logits(x, y, reduction="none") * w).mean()


def okd_kl(ens, s):
    pt = torch.sigmoid(ens.detach())
    ps = torch.sigmoid(s)
    return (pt * torch.log(pt / ps) + (1 - pt) * torch.log((1 - pt) / (1 - ps))).mean()


def tversky(x, y, w, a=0.25, b=0.75, e=1.0):
    p = torch.sigmoid(x)
    tp, fp, fn = (p * y).sum(0), (p * (1 - y)).sum(0), ((1 - p) * y).sum(0)
    return (w * (a * fp + b * fn + e) / (tp + a * fp + b * fn + e)).mean()


def center_cc(f, c, y):
    d2 = ((f - c[None]) ** 2).sum(-1)
    return ((d2 * y).sum(1) / ((d2 * (1 - y)).sum(1) + 1e-6)).mean()


def center_update(c, f, y, rate):
    out = c.clone()
    for i in range(N):
        m = y[:, i] > 0.5
        delta = (c[i][None] - f[m, i]).sum(0) / (1 + m.sum())
        out[i] = c[i] - rate * delta
    return out


def ap(vp, va):
    cos = F.cosine_similarity(vp, va, dim=1, eps=1e-8).abs()
    return -torch.log(1 - cos).mean()


def circle(x, y):
    out = []
    for b in range(x.shape[0]):
        neg = x[b][y[b] < 0.5]
        pos = x[b][y[b] > 0.5]
        out.append(torch.log(1 + torch.exp(neg).sum()) + torch.log(1 + torch.exp(-pos).sum()))
    return torch.stack(out).mean()


def main():
    x1 = torch.randn(B, N) * 2
    x2 = torch.randn(B, N) * 2
    xe = torch.randn(B, N) * 2
    y = (torch.rand(B, N) < 0.4).float()
    y[0] = 1.0  # an all-positive row
    y[1] = 0.0  # an all-negative row
    rates = torch.tensor([0.05, 0.2, 0.5, 0.9, 0.0])
    counts = torch.tensor([3.0, 40.0, 10.0, 0.0, 7.0])
    w_occ = occurrence_weights(rates)
    w_sb = soft_balance(counts)
    maps_p = torch.randn(B, N, 3, 3)
    maps_t = torch.rand(B, N, 3, 3)
    emb = torch.randn(B, N, D)
    cen = torch.randn(N, D)
    vp, va = torch.randn(B, 8), torch.randn(B, 8)

    out = {"inputs": {"x1": x1.tolist(), "x2": x2.tolist(), "xe": xe.tolist(), "y": y.tolist(),
                      "rates": rates.tolist(), "counts": counts.tolist(),
                      "maps_p": maps_p.flatten().tolist(), "maps_t": maps_t.flatten().tolist(),
                      "maps_shape": list(maps_p.shape), "emb": emb.flatten().tolist(),
                      "cen": cen.flatten().tolist(), "dim": D, "vp": vp.tolist(), "va": va.tolist()},
           "occurrence_weights": w_occ.tolist(), "soft_balance_weights": w_sb.tolist()}

    def val_grad(fn, *leaves):
        leaves = [t.clone().requires_grad_(True) for t in leaves]
        v = fn(*leaves)
        v.backward()
        return {"value": v.item(), "grad": leaves[0].grad.flatten().tolist()}

    out["weighted_bce"] = val_grad(lambda a: wbce(a, y, w_occ), x1)
    out["okd_kl"] = val_grad(lambda a: okd_kl(xe, a), x1)
    out["fan_trans"] = val_grad(
        lambda a: wbce(a, y, w_occ) + wbce(x2, y, w_occ) + wbce(xe, y, w_occ)
        + 0.2 * (okd_kl(xe, a) + okd_kl(xe, x2)), x1)
    out["tversky"] = val_grad(lambda a: tversky(a, y, w_sb), x1)
    out["wce_tversky"] = val_grad(lambda a: wbce(a, y, w_sb) + tversky(a, y, w_sb), x1)
    out["huber"] = val_grad(lambda a: F.huber_loss(a, maps_t, delta=0.5), maps_p)
    out["center_contrastive"] = val_grad(lambda a: center_cc(a, cen, y), emb)
    out["center_update"] = center_update(cen, emb, y, 0.5).flatten().tolist()
    out["map_bce"] = val_grad(lambda a: F.binary_cross_entropy_with_logits(a, maps_t), maps_p)
    out["ap"] = val_grad(lambda a: ap(vp, a), va)
    out["circle"] = val_grad(lambda a: circle(a, y), x1)
    out["bce_circle"] = val_grad(lambda a: F.binary_cross_entropy_with_logits(a, y) + circle(a, y), x1)

    path = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "losses.json"
    path.write_text(json.dumps(out) + "\n")
    print("wrote", path)


if __name__ == "__main__":
    main()
