#!/usr/bin/env python3
"""Convert MediaPipe TFLite models into auscope's graph format.

Each model becomes two files in models/<name>/:
  graph.json          the operator list in TFLite's own order and layout
                      (NHWC), with every option the executor needs
  weights.safetensors every constant tensor as float32, keyed "t<index>";
                      fp16 weights behind DEQUANTIZE ops are expanded here
The Rust executor (src/core/src/graph/) runs the ops with burn tensors.

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
    return np.frombuffer(buf.DataAsNumpy().tobytes(), dtype=dtype).reshape(t.ShapeAsNumpy())


def options_of(name, op, opts_cls):
    table = op.BuiltinOptions()
    o = opts_cls()
    o.Init(table.Bytes, table.Pos)
    return o


def convert(model_bytes):
    model = tflite.Model.GetRootAsModel(model_bytes, 0)
    graph = model.Subgraphs(0)
    constants = {}
    ops = []
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        name = op_name(model, op)
        ins = [int(x) for x in op.InputsAsNumpy()]
        outs = [int(x) for x in op.OutputsAsNumpy()]
        if name == "DEQUANTIZE":
            # Constant folding: fp16 weight -> float32 constant.
            constants[outs[0]] = tensor_array(model, graph, ins[0]).astype(np.float32)
            continue
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


if __name__ == "__main__":
    main()
