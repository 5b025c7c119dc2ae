#!/usr/bin/env python3
"""PyTorch references for auscope's burn model zoo (issue: model zoo, part 8).

For each case this builds the reference module (face-alignment's FAN,
torchvision's ResNet50 / Inception3 / EfficientNet, insightface's IResNet,
a timm-style transformer block with FAN-Trans' learned attention drop and a
TransAU encoder layer with relative positions), fills every tensor of its
state_dict from a counter-based generator keyed by the tensor's name, runs a
fixed input through it, and writes

    tests/fixtures/parity/<case>.json          keys, shapes and value ranges
    tests/fixtures/parity/<case>.safetensors   the input and the outputs

The generator (SplitMix64 over FNV-1a(name) + index) is re-implemented in
tests/parity_models.rs, so the Rust test regenerates the same weights,
writes them as a PyTorch-layout safetensors file and imports it through the
app's key tables: the weights never need to be committed.

It also records full-size parameter counts (params.json).

    pip install torch torchvision face-alignment   # CPU is enough
    python3 tools/model_reference.py
"""

import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "parity")


# ---- the shared generator -------------------------------------------------

def fnv1a64(s: str) -> int:
    h = 0xCBF29CE484222325
    for b in s.encode():
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def uniform(name: str, n: int) -> np.ndarray:
    """n values in [0, 1), 24-bit resolution, keyed by name."""
    with np.errstate(over="ignore"):
        i = np.arange(1, n + 1, dtype=np.uint64)
        z = np.uint64(fnv1a64(name)) + i * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(40)).astype(np.float64) / float(1 << 24)


def values(name: str, shape, offset: float, scale: float) -> torch.Tensor:
    n = int(np.prod(shape)) if len(shape) else 1
    v = offset + scale * (2.0 * uniform(name, n) - 1.0)
    return torch.from_numpy(v.astype(np.float32).reshape(shape))


def value_range(module_of: dict, key: str, shape):
    """(offset, scale) for a state_dict entry, by the kind of its module."""
    leaf = key.rsplit(".", 1)[-1]
    mod = module_of.get(key.rsplit(".", 1)[0])
    if isinstance(mod, (nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm)):
        return {"weight": (1.0, 0.1), "bias": (0.0, 0.1), "running_mean": (0.0, 0.1),
                "running_var": (1.0, 0.25)}[leaf]
    if isinstance(mod, nn.PReLU):
        return (0.25, 0.05)
    if leaf == "drop_mask":
        return (0.0, 2.0)
    if leaf in ("rel_k", "rel_v"):
        return (0.0, 0.5)
    if leaf == "bias" or leaf == "in_proj_bias":
        return (0.0, 0.1)
    fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
    return (0.0, math.sqrt(3.0 / fan_in))


def fill(model: nn.Module, strip: str = ""):
    """Fill every state_dict entry; values are keyed by the entry's name
    without `strip` (the name the exported file uses)."""
    module_of = dict(model.named_modules())
    sd = model.state_dict()
    keys = []
    new = {}
    for k, t in sd.items():
        if k.endswith("num_batches_tracked"):
            continue
        name = k[len(strip):] if strip and k.startswith(strip) else k
        off, sc = value_range(module_of, k, list(t.shape))
        new[k] = values(name, list(t.shape), off, sc)
        keys.append([name, list(t.shape), off, sc])
    model.load_state_dict(new, strict=False)
    return keys


def n_params(m: nn.Module) -> int:
    """Parameters plus BatchNorm running statistics: burn's `num_params`
    counts those (they are module state), so this is what we compare."""
    return sum(t.numel() for k, t in m.state_dict().items() if not k.endswith("num_batches_tracked"))


# ---- reference modules not in a PyPI package ------------------------------

class IBasicBlock(nn.Module):
    """insightface arcface_torch iresnet.py, verbatim in structure."""
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes, eps=1e-05)
        self.conv1 = nn.Conv2d(inplanes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes, eps=1e-05)
        self.prelu = nn.PReLU(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes, eps=1e-05)
        self.downsample = downsample

    def forward(self, x):
        identity = x
        out = self.bn1(x)
        out = self.conv1(out)
        out = self.bn2(out)
        out = self.prelu(out)
        out = self.conv2(out)
        out = self.bn3(out)
        if self.downsample is not None:
            identity = self.downsample(x)
        return out + identity


class IResNet(nn.Module):
    """insightface's IResNet; widths/side are parameters only so that the
    tiny test configuration can be built (defaults: insightface's)."""

    def __init__(self, layers, num_features=512, widths=(64, 128, 256, 512), side=7):
        super().__init__()
        self.fc_scale = side * side
        self.inplanes = widths[0]
        self.conv1 = nn.Conv2d(3, widths[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0], eps=1e-05)
        self.prelu = nn.PReLU(widths[0])
        self.layer1 = self._make_layer(widths[0], layers[0], 2)
        self.layer2 = self._make_layer(widths[1], layers[1], 2)
        self.layer3 = self._make_layer(widths[2], layers[2], 2)
        self.layer4 = self._make_layer(widths[3], layers[3], 2)
        self.bn2 = nn.BatchNorm2d(widths[3], eps=1e-05)
        self.dropout = nn.Dropout(p=0.0)
        self.fc = nn.Linear(widths[3] * self.fc_scale, num_features)
        self.features = nn.BatchNorm1d(num_features, eps=1e-05)

    def _make_layer(self, planes, blocks, stride):
        downsample = None
        if stride != 1 or self.inplanes != planes:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes, 1, stride, bias=False),
                nn.BatchNorm2d(planes, eps=1e-05))
        layers = [IBasicBlock(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes
        for _ in range(1, blocks):
            layers.append(IBasicBlock(self.inplanes, planes))
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.prelu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        fmap = self.bn2(x)
        x = torch.flatten(fmap, 1)
        x = self.fc(self.dropout(x))
        return fmap, self.features(x)


class Attention(nn.Module):
    """timm Attention + FAN-Trans' learned binary drop mask (straight-through)
    + optional relative positions (Shaw et al.) for TransAU."""

    def __init__(self, dim, heads, tokens, learned_mask=False, max_rel=None):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)
        self.drop_mask = nn.Parameter(torch.zeros(tokens, tokens)) if learned_mask else None
        hd = dim // heads
        self.max_rel = max_rel
        if max_rel is not None:
            self.rel_k = nn.Parameter(torch.zeros(2 * max_rel + 1, hd))
            self.rel_v = nn.Parameter(torch.zeros(2 * max_rel + 1, hd))

    def forward(self, x):
        B, T, C = x.shape
        H = self.heads
        qkv = self.qkv(x).reshape(B, T, 3, H, C // H).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        logits = q @ k.transpose(-2, -1)
        if self.max_rel is not None:
            idx = torch.arange(T)
            rel = (idx[None, :] - idx[:, None]).clamp(-self.max_rel, self.max_rel) + self.max_rel
            rk = self.rel_k[rel]  # [T, T, hd]
            logits = logits + torch.einsum("bhid,ijd->bhij", q, rk)
        attn = (logits * (C // H) ** -0.5).softmax(-1)
        if self.drop_mask is not None:
            soft = torch.sigmoid(self.drop_mask)
            hard = (soft > 0.5).float()
            attn = attn * (hard - soft.detach() + soft)
        out = attn @ v
        if self.max_rel is not None:
            out = out + torch.einsum("bhij,ijd->bhid", attn, self.rel_v[rel])
        return self.proj(out.transpose(1, 2).reshape(B, T, C)), attn


class Mlp(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.fc1 = nn.Linear(dim, dim * 4)
        self.fc2 = nn.Linear(dim * 4, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    """timm's ViT Block (pre-norm, eps 1e-6), heads = dim // 64."""

    def __init__(self, dim, tokens):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, max(dim // 64, 1), tokens, learned_mask=True)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim)

    def forward(self, x):
        a, attn = self.attn(self.norm1(x))
        x = x + a
        return x + self.mlp(self.norm2(x)), attn


class RelEncoderLayer(nn.Module):
    """nn.TransformerEncoderLayer (post-norm, ReLU) with relative positions
    in its attention; named like our PostNormLayer."""

    def __init__(self, dim, heads, ffn, tokens):
        super().__init__()
        self.self_attn = Attention(dim, heads, tokens, max_rel=tokens - 1)
        self.linear1 = nn.Linear(dim, ffn)
        self.linear2 = nn.Linear(ffn, dim)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)

    def forward(self, x):
        a, attn = self.self_attn(x)
        x = self.norm1(x + a)
        return self.norm2(x + self.linear2(F.relu(self.linear1(x)))), attn


class InceptionTrunk(nn.Module):
    """torchvision Inception3 forward up to Mixed_6e (TransAU's layer)."""

    def __init__(self):
        super().__init__()
        self.net = torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=False)

    def forward(self, x):
        n = self.net if hasattr(self, "net") else self.inception
        x = n.Conv2d_1a_3x3(x)
        x = n.Conv2d_2a_3x3(x)
        x = n.Conv2d_2b_3x3(x)
        x = n.maxpool1(x)
        x = n.Conv2d_3b_1x1(x)
        x = n.Conv2d_4a_3x3(x)
        x = n.maxpool2(x)
        x = n.Mixed_5d(n.Mixed_5c(n.Mixed_5b(x)))
        x = n.Mixed_6a(x)
        return n.Mixed_6e(n.Mixed_6d(n.Mixed_6c(n.Mixed_6b(x))))


class LinearBlock(nn.Module):
    """ME-GraphAU's LinearBlock: FC, BatchNorm1d over features, ReLU."""

    def __init__(self, cin, cout):
        super().__init__()
        self.fc = nn.Linear(cin, cout)
        self.bn = nn.BatchNorm1d(cout)

    def forward(self, x):
        return F.relu(self.bn(self.fc(x).transpose(1, 2))).transpose(1, 2)


class LaNet(nn.Module):
    def __init__(self, c, r):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c // r, 1)
        self.conv2 = nn.Conv2d(c // r, 1, 1)


class Gnn(nn.Module):
    """ME-GraphAU's FGG layer: per-sample top-k dot-product graph."""

    def __init__(self, d, n, k):
        super().__init__()
        self.k = k
        self.u = nn.Linear(d, d)
        self.v = nn.Linear(d, d)
        self.bnv = nn.BatchNorm1d(n)

    def forward(self, x):
        xd = x.detach()
        si = xd @ xd.transpose(1, 2)
        thr = si.topk(self.k, dim=-1).values[:, :, -1:]
        adj = (si >= thr).float()
        deg = adj.sum(-1, keepdim=True) ** -0.5
        a = deg * adj * deg.transpose(1, 2)
        return F.relu(x + self.bnv(a @ self.v(x) + self.u(x)))


class FusionEncoder(nn.Module):
    def __init__(self, emb, d, dim, heads, layers, n):
        super().__init__()
        self.weight_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.backbone_proj = nn.Linear(emb, dim)
        self.au_proj = nn.Linear(d, dim)
        self.layers = nn.ModuleList([
            nn.TransformerEncoderLayer(dim, heads, dim * 2, dropout=0.0, batch_first=True) for _ in range(layers)])
        self.head = nn.Linear(dim, n)


class LrpArlFf(nn.Module):
    """The whole LRP-ARL-FF model as a PyTorch user would write it:
    insightface IResNet, LANets, ME-GraphAU LinearBlocks and FGG, and
    nn.TransformerEncoderLayer fusion. auscope imports its checkpoints."""

    def __init__(self, n=12, layers=(1, 1, 1, 1), widths=(8, 16, 16, 32), emb=32, side=2,
                 lanets=2, r=4, d=16, k=3, dim=16, heads=2, fusion_layers=2):
        super().__init__()
        c = widths[3]
        self.backbone = IResNet(list(layers), emb, widths, side)
        self.lanets = nn.ModuleList([LaNet(c, r) for _ in range(lanets)])
        self.global_linear = LinearBlock(c, d)
        self.class_linears = nn.ModuleList([LinearBlock(d, d) for _ in range(n)])
        self.gnn = Gnn(d, n, k)
        self.au_weight = nn.Parameter(torch.zeros(n, d))
        self.au_bias = nn.Parameter(torch.zeros(n))
        self.backbone_head = nn.Linear(emb, n)
        self.fusion = FusionEncoder(emb, d, dim, heads, fusion_layers, n)

    def forward(self, x):
        fmap, emb = self.backbone(x)
        b = fmap.shape[0]
        scores = torch.cat([l.conv2(F.relu(l.conv1(fmap))) for l in self.lanets], 1)
        att = torch.sigmoid(scores.max(1, keepdim=True).values)
        f = fmap * att
        tokens = self.global_linear(f.flatten(2).transpose(1, 2))
        nodes = torch.stack([cl(tokens).mean(1) for cl in self.class_linears], 1)
        nodes = self.gnn(nodes)
        au = (nodes * self.au_weight).sum(-1) + self.au_bias
        bb = self.backbone_head(emb)
        fe = self.fusion
        dim = fe.weight_token.shape[-1]
        t = torch.cat([fe.weight_token.expand(b, 1, dim), fe.backbone_proj(emb)[:, None], fe.au_proj(nodes)], 1)
        for layer in fe.layers:
            t = layer(t)
        w = torch.sigmoid(fe.head(t[:, 0]))
        return [w * bb + (1 - w) * au, att]


class DwSep(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.depthwise = nn.Conv2d(cin, cin, 3, 1, 1, groups=cin, bias=False)
        self.pointwise = nn.Conv2d(cin, cout, 1, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        return F.relu(self.bn(self.pointwise(self.depthwise(x))))


class PiapStage3(nn.Module):
    """PIAP's stage-3 model as a PyTorch user would write it: a torchvision
    EfficientNet (`encoder.features`), an FC, and the PI decoder."""

    def __init__(self, n=12, width=0.25, depth=0.5, dec=(16, 8, 8, 8, 8), enc_size=64):
        super().__init__()
        from torchvision.models import efficientnet as E
        setting, last = E._efficientnet_conf("efficientnet_b0", width_mult=width, depth_mult=depth)
        net = E.EfficientNet(setting, 0.2, last_channel=last)
        self.encoder = nn.Module()
        self.encoder.features = net.features
        feat = net.classifier[1].in_features
        self.fc = nn.Linear(feat, n)
        self.decoder = nn.Module()
        chans = [feat, *dec]
        self.decoder.layers = nn.ModuleList([DwSep(a, b) for a, b in zip(chans, chans[1:])])
        self.decoder.out = nn.Conv2d(dec[-1], n, 1)
        self.enc_size = enc_size

    def forward(self, x):
        h, w = x.shape[-2:]
        if (h, w) != (self.enc_size, self.enc_size):
            x = F.interpolate(x, size=(self.enc_size, self.enc_size), mode="bilinear", align_corners=True)
        mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
        std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
        f = self.encoder.features((x - mean) / std)
        logits = self.fc(f.mean((2, 3)))
        y = f
        for layer in self.decoder.layers:
            y = layer(F.interpolate(y, size=(y.shape[2] * 2, y.shape[3] * 2), mode="bilinear", align_corners=True))
        pi = F.interpolate(self.decoder.out(y), size=(h, w), mode="bilinear", align_corners=True)
        return [logits, torch.sigmoid(pi)]


class FanParam(nn.Module):
    """face-alignment's FAN with its width and hourglass depth as parameters
    (the released class fixes 256 and 4); same attribute names, built from
    face-alignment's own ConvBlock and HourGlass."""

    def __init__(self, fa, stacks, depth, f):
        super().__init__()
        self.stacks = stacks
        self.conv1 = nn.Conv2d(3, f // 4, kernel_size=7, stride=2, padding=3)
        self.bn1 = nn.BatchNorm2d(f // 4)
        self.conv2 = fa.ConvBlock(f // 4, f // 2)
        self.conv3 = fa.ConvBlock(f // 2, f // 2)
        self.conv4 = fa.ConvBlock(f // 2, f)
        for i in range(stacks):
            self.add_module(f"m{i}", fa.HourGlass(1, depth, f))
            self.add_module(f"top_m_{i}", fa.ConvBlock(f, f))
            self.add_module(f"conv_last{i}", nn.Conv2d(f, f, 1))
            self.add_module(f"bn_end{i}", nn.BatchNorm2d(f))
            self.add_module(f"l{i}", nn.Conv2d(f, 68, 1))
            if i < stacks - 1:
                self.add_module(f"bl{i}", nn.Conv2d(f, f, 1))
                self.add_module(f"al{i}", nn.Conv2d(68, f, 1))

    def forward(self, x):
        """(LF, per-stack features before the heat-map conv, heat-maps)."""
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.avg_pool2d(self.conv2(x), 2, stride=2)
        low = self.conv4(self.conv3(x))
        previous, feats, maps = low, [], []
        for i in range(self.stacks):
            ll = getattr(self, f"top_m_{i}")(getattr(self, f"m{i}")(previous))
            ll = F.relu(getattr(self, f"bn_end{i}")(getattr(self, f"conv_last{i}")(ll)))
            out = getattr(self, f"l{i}")(ll)
            if i < self.stacks - 1:
                previous = previous + getattr(self, f"bl{i}")(ll) + getattr(self, f"al{i}")(out)
            feats.append(ll)
            maps.append(out)
        return low, feats, maps


class ConvBnRelu(nn.Module):
    def __init__(self, cin, cout, k=1, dilation=1):
        super().__init__()
        pad = dilation * (k // 2)
        self.conv = nn.Conv2d(cin, cout, k, padding=pad, dilation=dilation, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


class Branch(nn.Module):
    def __init__(self, dim, n, blocks):
        super().__init__()
        self.blocks = nn.ModuleList([Block(dim, n) for _ in range(blocks)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, x):
        for b in self.blocks:
            x, _ = b(x)
        return self.norm(x)


class FanTrans(nn.Module):
    """FAN-Trans as a PyTorch user would write it (FAN from face-alignment,
    timm-style blocks with the learned attention drop)."""

    def __init__(self, fa, n=12, stacks=2, depth=2, f=32, dim=64, blocks=2, top_k=3, size=64):
        super().__init__()
        self.fan = FanParam(fa, stacks, depth, f)
        c_a = f * (1 + min(stacks, 2))
        self.reduce = ConvBnRelu(c_a, dim)
        self.convs = nn.ModuleList([ConvBnRelu(dim, dim, 3) for _ in range(4)])
        self.assign = nn.Linear((size // 16) ** 2, n)
        self.pos_embed = nn.Parameter(torch.zeros(1, n, dim))
        self.one_to_one = Branch(dim, n, blocks)
        self.one_to_many = Branch(dim, n, blocks)
        self.o2o_weight = nn.Parameter(torch.zeros(n, dim))
        self.o2o_bias = nn.Parameter(torch.zeros(n))
        self.o2m = nn.Linear(dim, n)
        self.ens_a = ConvBnRelu(dim, dim // 4)
        self.ens_b = ConvBnRelu(dim, dim // 4, 3, dilation=2)
        self.ens_fc = nn.Linear(dim // 2, 2)
        self.top_k = top_k

    def forward(self, x):
        low, feats, maps = self.fan(x)
        plane = maps[-1].max(1, keepdim=True).values
        fa_ = torch.cat([low] + [h * plane for h in feats[-2:]], 1)
        fc = self.reduce(fa_)
        for c in self.convs:
            fc = c(fc)
        fc = F.max_pool2d(fc, 4, 4)
        tokens = self.assign(fc.flatten(2)).transpose(1, 2) + self.pos_embed
        t1 = self.one_to_one(tokens)
        t2 = self.one_to_many(tokens)
        z1 = (t1 * self.o2o_weight).sum(-1) + self.o2o_bias
        z2 = self.o2m(t2).topk(self.top_k, dim=1).values.mean(1)
        w = torch.softmax(self.ens_fc(torch.cat([self.ens_a(fc).mean((2, 3)), self.ens_b(fc).mean((2, 3))], 1)), 1)
        ens = z1 * w[:, :1] + z2 * w[:, 1:]
        return [z1, z2, ens, maps[-1]]


class ConvBn(nn.Module):
    def __init__(self, cin, cout, k, stride=1, relu=True):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride, k // 2, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.relu = relu

    def forward(self, x):
        x = self.bn(self.conv(x))
        return F.relu(x) if self.relu else x


class AuBranch(nn.Module):
    def __init__(self, c, b, flat, e):
        super().__init__()
        self.conv1 = ConvBn(c, b, 3)
        self.conv2 = ConvBn(b, b, 3, 2)
        self.reduce = nn.Conv2d(b, b // 4, 1)
        self.fc = nn.Linear(flat, e)

    def forward(self, x):
        return self.fc(F.relu(self.reduce(self.conv2(self.conv1(x)))).flatten(1))


class TransAu(nn.Module):
    """TransAU as a PyTorch user would write it: torchvision Inception3 to
    Mixed_6e, ROI attention branch, per-AU branches, relative-position
    encoder layers, 2-layer MLP."""

    def __init__(self, n=12, side=4, a=16, b=8, e=32, layers=2, heads=4, ffn=64, hidden=32):
        super().__init__()
        self.inception = InceptionTrunk().net
        c = 768
        self.att_conv1 = ConvBn(c, a, 3)
        self.att_conv2 = ConvBn(a, a, 3)
        self.att_maps = ConvBn(a, n, 1, relu=False)
        self.att_out = nn.Conv2d(n, n, 1)
        half = (side + 1) // 2
        self.branches = nn.ModuleList([AuBranch(c, b, (b // 4) * half * half, e) for _ in range(n)])
        self.encoder = nn.ModuleList([RelEncoderLayer(e, heads, ffn, n) for _ in range(layers)])
        self.fc1 = nn.Linear(n * e, hidden)
        self.fc2 = nn.Linear(hidden, n)

    def forward(self, x):
        return self.forward_with_embeddings(x)[:3]

    def forward_with_embeddings(self, x):
        """logits, attention-branch logits, ROI maps and the per-AU
        embeddings (what TransAU's centre loss takes)."""
        f = InceptionTrunk.forward(self, x)
        m = self.att_maps(self.att_conv2(self.att_conv1(f)))
        maps = torch.sigmoid(m)
        att_logits = self.att_out(m).mean((2, 3))
        emb = torch.stack([br(f * maps[:, i:i + 1]) for i, br in enumerate(self.branches)], 1)
        t = emb
        for layer in self.encoder:
            t, _ = layer(t)
        return [self.fc2(F.relu(self.fc1(t.flatten(1)))), att_logits, maps, emb]


def resnet_trunk(x, m, stages):
    x = m.maxpool(m.relu(m.bn1(m.conv1(x))))
    for s in range(1, stages + 1):
        x = getattr(m, f"layer{s}")(x)
    return x


# ---- cases ------------------------------------------------------------------

def run_case(name, model, input_shape, forward, outputs, prefix_strip=""):
    model.eval()
    keys = fill(model, prefix_strip)
    x = values("input", input_shape, 0.0, 1.0)
    with torch.no_grad():
        outs = forward(model, x)
    tensors = {"input": x.contiguous()}
    for oname, t in zip(outputs, outs):
        tensors[oname] = t.contiguous().float()
    save_file(tensors, os.path.join(OUT, f"{name}.safetensors"))
    with open(os.path.join(OUT, f"{name}.json"), "w") as f:
        json.dump({"case": name, "input_shape": list(input_shape), "outputs": outputs, "keys": keys}, f)
    print(f"{name}: {len(keys)} tensors, {n_params(model)} params, outputs "
          + ", ".join(f"{o}{list(t.shape)}" for o, t in zip(outputs, outs)))


def main():
    torch.set_grad_enabled(False)
    os.makedirs(OUT, exist_ok=True)
    # face_alignment/__init__ pulls in cv2 and scikit-image; models/fan.py needs
    # only torch, so load that file alone.
    import importlib.util
    spec = importlib.util.find_spec("face_alignment")
    path = os.path.join(os.path.dirname(spec.origin), "models", "fan.py")
    mspec = importlib.util.spec_from_file_location("fa_models", path)
    fa_models = importlib.util.module_from_spec(mspec)
    mspec.loader.exec_module(fa_models)
    FAN = fa_models.FAN

    run_case("fan2", FAN(2), [1, 3, 64, 64], lambda m, x: m(x), ["heatmaps0", "heatmaps1"])

    rn = torchvision.models.resnet50(weights=None)
    run_case("resnet50_layer3", rn, [1, 3, 64, 64], lambda m, x: [resnet_trunk(x, m, 3)], ["features"])

    inc = InceptionTrunk()
    run_case("inception_v3_mixed6e", inc, [1, 3, 96, 96], lambda m, x: [m(x)], ["features"],
             prefix_strip="net.")

    b1 = torchvision.models.efficientnet_b1(weights=None)
    run_case("efficientnet_b1", b1, [1, 3, 64, 64], lambda m, x: [m.features(x)], ["features"])

    b0 = torchvision.models.efficientnet_b0(weights=None)
    run_case("efficientnet_b0_stage5", b0, [1, 3, 64, 64], lambda m, x: [m.features[:6](x)], ["features"])

    ir = IResNet([2, 2, 2, 2])
    run_case("iresnet18", ir, [2, 3, 112, 112], lambda m, x: list(m(x)), ["fmap", "embedding"])

    blk = Block(128, 12)
    run_case("fan_trans_block", blk, [2, 12, 128], lambda m, x: list(m(x)), ["tokens", "attention"])

    enc = RelEncoderLayer(64, 4, 128, 12)
    run_case("transau_rel_layer", enc, [2, 12, 64], lambda m, x: list(m(x)), ["tokens", "attention"])
    # The same layer as a pickled .pth (torch.save of its state_dict), to test
    # the PyTorch-checkpoint reader on a real file (137 kB).
    torch.save(enc.state_dict(), os.path.join(OUT, "transau_rel_layer.pth"))

    # A whole model in PyTorch naming (the tiny LRP-ARL-FF config).
    lrp = LrpArlFf()
    run_case("lrp_arl_ff_tiny", lrp, [2, 3, 32, 32], lambda m, x: m(x), ["logits", "lanet"])

    ft = FanTrans(fa_models)
    run_case("fan_trans_tiny", ft, [2, 3, 64, 64], lambda m, x: m(x),
             ["one_to_one", "one_to_many", "ensemble", "heatmaps"])

    ta = TransAu()
    run_case("transau_inception_tiny", ta, [2, 3, 96, 96], lambda m, x: m(x),
             ["logits", "attention_logits", "roi_maps"])

    piap = PiapStage3()
    run_case("piap_stage3_tiny", piap, [2, 3, 64, 64], lambda m, x: m(x), ["logits", "pi_maps"])

    # Full-size parameter counts of the reference modules.
    counts = {
        "fan4": n_params(FAN(4)),
        "resnet50_layer3": n_params(rn) - n_params(rn.layer4) - n_params(rn.fc),
        "inception_v3_mixed6e": n_params(inc.net) - n_params(inc.net.Mixed_7a) - n_params(inc.net.Mixed_7b)
        - n_params(inc.net.Mixed_7c) - n_params(inc.net.fc),
        "efficientnet_b1_features": n_params(b1.features),
        "efficientnet_b0_stage5": n_params(b0.features[:6]),
        "iresnet100": n_params(IResNet([3, 13, 30, 3])),
        "iresnet50": n_params(IResNet([3, 4, 14, 3])),
    }
    with open(os.path.join(OUT, "params.json"), "w") as f:
        json.dump(counts, f, indent=1)
    print(counts)
    print("torch", torch.__version__, "torchvision", torchvision.__version__, file=sys.stderr)


if __name__ == "__main__":
    main()
