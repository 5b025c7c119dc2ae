#!/usr/bin/env python3
"""Convert MediaPipe TFLite models into auscope's graph format.

Each model becomes two files in models/<name>/:
  graph.json          the operator list in TFLite's own order and layout
                      (NHWC), with every option the executor needs
  weights.safetensors every constant tensor as float32, keyed "t<index>";
                      fp16 weights behind DEQUANTIZE ops are expanded here
The Rust executor (src/core/src/graph/) runs the ops with burn tensors.

The blendshape model (an MLP-Mixer over 146 landmarks) is not run as a
graph: its 4 mixer blocks are a burn module (src/core/src/face/blendshapes.rs),
so this script names its weights instead (models/face_blendshapes/):
  meta.json            source file, SHA-256, licence, the 146-point subset
                       and the 52 blendshape names
  weights.safetensors  scale, token_in, channel_in, class_token, eps,
                       blocks.<i>.{norm1,norm2}.gamma, blocks.<i>.{token,
                       channel}.{fc1,fc2}.{weight,bias}, head.{weight,bias}

Usage: python3 tools/convert_tflite.py [--shared ../shared] [--out models]
Needs: pip install tflite numpy safetensors
"""
import argparse
import hashlib
import json
import pathlib
import zipfile

import numpy as np
import tflite
from safetensors.numpy import save_file
from tflite.BuiltinOperator import BuiltinOperator
from tflite.Padding import Padding

OP_NAMES = {v: k for k, v in BuiltinOperator.__dict__.items() if not k.startswith("_")}
ACT_NAMES = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6", 4: "TANH"}
NP_TYPES = {0: np.float32, 1: np.float16, 2: np.int32, 3: np.uint8, 4: np.int64, 9: np.int8}

# (model name, file inside shared/data/mediapipe, member inside a .task zip or None)
MODELS = [
    ("blazeface_short", "face_detection_short_range.tflite", None),
    ("blazeface_full", "face_detection_full_range.tflite", None),
    ("face_landmarker", "face_landmarker.task", "face_landmarks_detector.tflite"),
]


def read_model_bytes(shared, file_name, member):
    path = shared / "data" / "mediapipe" / file_name
    if member is None:
        return path.read_bytes()
    with zipfile.ZipFile(path) as zf:
        return zf.read(member)


def op_name(model, op):
    code = model.OperatorCodes(op.OpcodeIndex())
    builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
    return OP_NAMES[builtin]


def tensor_array(model, graph, index):
    t = graph.Tensors(index)
    buf = model.Buffers(t.Buffer())
    if buf.DataLength() == 0:
        return None
    dtype = NP_TYPES[t.Type()]
    shape = t.ShapeAsNumpy() if t.ShapeLength() else ()  # scalars have no shape vector
    return np.frombuffer(buf.DataAsNumpy().tobytes(), dtype=dtype).reshape(shape)


def options_of(name, op, opts_cls):
    table = op.BuiltinOptions()
    o = opts_cls()
    o.Init(table.Bytes, table.Pos)
    return o


def walk_ops(model, graph, constants):
    """Yield (op, name, inputs, outputs) in graph order, folding each
    DEQUANTIZE (fp16 weight -> float32 constant) into `constants` instead."""
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        name = op_name(model, op)
        ins = [int(x) for x in op.InputsAsNumpy()]
        outs = [int(x) for x in op.OutputsAsNumpy()]
        if name == "DEQUANTIZE":
            constants[outs[0]] = tensor_array(model, graph, ins[0]).astype(np.float32)
            continue
        yield op, name, ins, outs


def convert(model_bytes):
    model = tflite.Model.GetRootAsModel(model_bytes, 0)
    graph = model.Subgraphs(0)
    constants = {}
    ops = []
    for op, name, ins, outs in walk_ops(model, graph, constants):
        entry = {"op": name, "inputs": ins, "outputs": outs, "options": {}}
        opt = entry["options"]
        if name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            cls = tflite.Conv2DOptions if name == "CONV_2D" else tflite.DepthwiseConv2DOptions
            o = options_of(name, op, cls)
            opt.update(
                padding="SAME" if o.Padding() == Padding.SAME else "VALID",
                stride=[o.StrideH(), o.StrideW()],
                dilation=[o.DilationHFactor(), o.DilationWFactor()],
                activation=ACT_NAMES[o.FusedActivationFunction()],
            )
        elif name == "MAX_POOL_2D":
            o = options_of(name, op, tflite.Pool2DOptions)
            opt.update(
                padding="SAME" if o.Padding() == Padding.SAME else "VALID",
                stride=[o.StrideH(), o.StrideW()],
                filter=[o.FilterHeight(), o.FilterWidth()],
                activation=ACT_NAMES[o.FusedActivationFunction()],
            )
        elif name == "ADD":
            o = options_of(name, op, tflite.AddOptions)
            opt["activation"] = ACT_NAMES[o.FusedActivationFunction()]
        elif name == "CONCATENATION":
            o = options_of(name, op, tflite.ConcatenationOptions)
            opt.update(axis=o.Axis(), activation=ACT_NAMES[o.FusedActivationFunction()])
        elif name == "PAD":
            opt["paddings"] = tensor_array(model, graph, ins[1]).tolist()
            entry["inputs"] = ins[:1]
        elif name == "RESHAPE":
            opt["shape"] = [int(x) for x in graph.Tensors(outs[0]).ShapeAsNumpy()]
            entry["inputs"] = ins[:1]
        elif name == "RESIZE_BILINEAR":
            o = options_of(name, op, tflite.ResizeBilinearOptions)
            opt.update(
                size=tensor_array(model, graph, ins[1]).tolist(),
                align_corners=bool(o.AlignCorners()),
                half_pixel_centers=bool(o.HalfPixelCenters()),
            )
            entry["inputs"] = ins[:1]
        elif name not in ("RELU", "PRELU", "LOGISTIC"):
            raise SystemExit(f"unsupported op {name}")
        ops.append(entry)

    # Remaining constant inputs (float32 biases, PReLU alphas stored unquantized).
    for entry in ops:
        for idx in entry["inputs"]:
            if idx not in constants:
                arr = tensor_array(model, graph, idx)
                if arr is not None:
                    constants[idx] = arr.astype(np.float32)

    def io(list_fn, length):
        out = []
        for j in range(length):
            idx = int(list_fn(j))
            t = graph.Tensors(idx)
            out.append({"id": idx, "name": t.Name().decode(), "shape": [int(x) for x in t.ShapeAsNumpy()]})
        return out

    graph_json = {
        "format": "auscope-tflite-graph/1",
        "inputs": io(graph.Inputs, graph.InputsLength()),
        "outputs": io(graph.Outputs, graph.OutputsLength()),
        "ops": ops,
    }
    tensors = {f"t{k}": np.ascontiguousarray(v) for k, v in constants.items()}
    return graph_json, tensors


# face_blendshapes_graph.cc (MediaPipe): kLandmarksSubsetIdxs, the 146 of the
# 478 mesh points the blendshape model reads (in image pixels), and
# kBlendshapeNames, its 52 outputs in order.
BLENDSHAPE_SUBSET = [
    0, 1, 4, 5, 6, 7, 8, 10, 13, 14, 17, 21, 33, 37, 39, 40, 46, 52, 53, 54, 55,
    58, 61, 63, 65, 66, 67, 70, 78, 80, 81, 82, 84, 87, 88, 91, 93, 95, 103, 105,
    107, 109, 127, 132, 133, 136, 144, 145, 146, 148, 149, 150, 152, 153, 154,
    155, 157, 158, 159, 160, 161, 162, 163, 168, 172, 173, 176, 178, 181, 185,
    191, 195, 197, 234, 246, 249, 251, 263, 267, 269, 270, 276, 282, 283, 284,
    285, 288, 291, 293, 295, 296, 297, 300, 308, 310, 311, 312, 314, 317, 318,
    321, 323, 324, 332, 334, 336, 338, 356, 361, 362, 365, 373, 374, 375, 377,
    378, 379, 380, 381, 382, 384, 385, 386, 387, 388, 389, 390, 397, 398, 400,
    402, 405, 409, 415, 454, 466, 468, 469, 470, 471, 472, 473, 474, 475, 476,
    477,
]
BLENDSHAPE_NAMES = [
    "_neutral", "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft",
    "browOuterUpRight", "cheekPuff", "cheekSquintLeft", "cheekSquintRight",
    "eyeBlinkLeft", "eyeBlinkRight", "eyeLookDownLeft", "eyeLookDownRight",
    "eyeLookInLeft", "eyeLookInRight", "eyeLookOutLeft", "eyeLookOutRight",
    "eyeLookUpLeft", "eyeLookUpRight", "eyeSquintLeft", "eyeSquintRight",
    "eyeWideLeft", "eyeWideRight", "jawForward", "jawLeft", "jawOpen", "jawRight",
    "mouthClose", "mouthDimpleLeft", "mouthDimpleRight", "mouthFrownLeft",
    "mouthFrownRight", "mouthFunnel", "mouthLeft", "mouthLowerDownLeft",
    "mouthLowerDownRight", "mouthPressLeft", "mouthPressRight", "mouthPucker",
    "mouthRight", "mouthRollLower", "mouthRollUpper", "mouthShrugLower",
    "mouthShrugUpper", "mouthSmileLeft", "mouthSmileRight", "mouthStretchLeft",
    "mouthStretchRight", "mouthUpperUpLeft", "mouthUpperUpRight", "noseSneerLeft",
    "noseSneerRight",
]


def convert_blendshapes(model_bytes):
    """Names the MLP-Mixer's weights by their place in the op list.

    Op order (checked below): normalise points, MUL by a scalar scale,
    token conv 146->96, channel conv 2->64, CONCATENATION with the class
    token, then per block: LayerNorm (gamma only, eps ADD) -> token MLP
    97->384->97 -> residual, LayerNorm -> channel MLP 64->256->64 ->
    residual; finally slice token 0 -> head conv 64->52 -> LOGISTIC.
    """
    model = tflite.Model.GetRootAsModel(model_bytes, 0)
    graph = model.Subgraphs(0)
    const = {}
    convs, gammas, scale, class_token, eps = [], [], None, None, None
    for op, name, ins, outs in walk_ops(model, graph, const):

        def c(idx):
            if idx in const:
                return const[idx]
            arr = tensor_array(model, graph, idx)
            return None if arr is None else arr.astype(np.float32)

        if name == "CONV_2D":
            o = options_of(name, op, tflite.Conv2DOptions)
            w = c(ins[1])
            convs.append((w.reshape(w.shape[0], w.shape[-1]), c(ins[2]), ACT_NAMES[o.FusedActivationFunction()]))
        elif name == "MUL" and c(ins[1]) is not None:
            v = c(ins[1])
            if v.size == 1:
                scale = v.reshape(1)
            else:
                gammas.append(v.reshape(-1))
        elif name == "ADD" and c(ins[1]) is not None and c(ins[1]).size == 1:
            eps = c(ins[1]).reshape(1)
        elif name == "CONCATENATION":
            class_token = c(ins[0]).reshape(-1)
    blocks = (len(convs) - 3) // 4
    assert len(convs) == 3 + 4 * blocks and len(gammas) == 2 * blocks, (len(convs), len(gammas))
    assert scale is not None and class_token is not None and eps is not None
    acts = [a for (_, _, a) in convs]
    assert acts == ["NONE", "NONE"] + ["RELU", "NONE"] * (2 * blocks) + ["NONE"], acts
    t = {"scale": scale, "eps": eps, "class_token": class_token}
    t["token_in.weight"], t["token_in.bias"], _ = convs[0]
    t["channel_in.weight"], t["channel_in.bias"], _ = convs[1]
    for b in range(blocks):
        base = 2 + 4 * b
        t[f"blocks.{b}.norm1.gamma"] = gammas[2 * b]
        t[f"blocks.{b}.norm2.gamma"] = gammas[2 * b + 1]
        for k, part in enumerate(["token.fc1", "token.fc2", "channel.fc1", "channel.fc2"]):
            t[f"blocks.{b}.{part}.weight"], t[f"blocks.{b}.{part}.bias"], _ = convs[base + k]
    t["head.weight"], t["head.bias"], _ = convs[-1]
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in t.items()}, blocks


def main():
    ap = argparse.ArgumentParser()
    here = pathlib.Path(__file__).resolve().parent.parent
    ap.add_argument("--shared", type=pathlib.Path, default=here.parent / "shared")
    ap.add_argument("--out", type=pathlib.Path, default=here / "models")
    args = ap.parse_args()
    for name, file_name, member in MODELS:
        data = read_model_bytes(args.shared, file_name, member)
        graph_json, tensors = convert(data)
        graph_json["source"] = {
            "file": file_name + (f"!{member}" if member else ""),
            "sha256": hashlib.sha256(data).hexdigest(),
            "licence": "Apache-2.0 (MediaPipe by Google)",
        }
        out = args.out / name
        out.mkdir(parents=True, exist_ok=True)
        (out / "graph.json").write_text(json.dumps(graph_json, indent=1) + "\n")
        save_file(tensors, str(out / "weights.safetensors"), metadata={"source_sha256": graph_json["source"]["sha256"]})
        print(f"{name}: {len(graph_json['ops'])} ops, {len(tensors)} constants, "
              f"{sum(v.size for v in tensors.values())} floats")

    data = read_model_bytes(args.shared, "face_landmarker.task", "face_blendshapes.tflite")
    tensors, blocks = convert_blendshapes(data)
    sha = hashlib.sha256(data).hexdigest()
    out = args.out / "face_blendshapes"
    out.mkdir(parents=True, exist_ok=True)
    meta = {
        "format": "auscope-blendshapes/1",
        "source": {"file": "face_landmarker.task!face_blendshapes.tflite", "sha256": sha,
                   "licence": "Apache-2.0 (MediaPipe by Google)"},
        "blocks": blocks,
        "subset": BLENDSHAPE_SUBSET,
        "names": BLENDSHAPE_NAMES,
    }
    (out / "meta.json").write_text(json.dumps(meta) + "\n")
    save_file(tensors, str(out / "weights.safetensors"), metadata={"source_sha256": sha})
    print(f"face_blendshapes: {blocks} mixer blocks, {sum(v.size for v in tensors.values())} floats")


if __name__ == "__main__":
    main()
