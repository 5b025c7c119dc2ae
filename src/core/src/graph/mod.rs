//! Executes a converted TFLite graph (see `tools/convert_tflite.py`): with
//! burn ops on wgpu, and on the CPU as the fused NHWC kernels of `cpu.rs`.
//!
//! MediaPipe's networks are plain feed-forward graphs over a dozen operators,
//! so running their op list exactly, rather than re-deriving each topology by
//! hand, is the most faithful port. On burn, activations are kept in NCHW;
//! the few ops whose meaning depends on TFLite's NHWC order (RESHAPE,
//! CONCATENATION, PAD, channel-wise weights) translate at the op.

use std::collections::HashMap;

use burn::tensor::activation::{prelu, relu, sigmoid};
use burn::tensor::module::{conv2d, interpolate, max_pool2d};
use burn::tensor::ops::{ConvOptions, InterpolateMode, InterpolateOptions, MaxPoolOptions};
use burn::tensor::{Device, Tensor, TensorData};
use serde::Deserialize;

use crate::error::CoreError;

mod cpu;

#[derive(Debug, Deserialize)]
struct GraphFile {
    format: String,
    inputs: Vec<GraphIo>,
    outputs: Vec<GraphIo>,
    ops: Vec<OpSpec>,
}

#[derive(Debug, Deserialize)]
struct GraphIo {
    id: usize,
    name: String,
}

#[derive(Debug, Deserialize)]
struct OpSpec {
    op: String,
    inputs: Vec<usize>,
    outputs: Vec<usize>,
    #[serde(default)]
    options: OpOptions,
}

#[derive(Debug, Default, Deserialize)]
struct OpOptions {
    padding: Option<String>,
    stride: Option<[usize; 2]>,
    dilation: Option<[usize; 2]>,
    filter: Option<[usize; 2]>,
    activation: Option<String>,
    axis: Option<i64>,
    paddings: Option<Vec<[usize; 2]>>,
    shape: Option<Vec<usize>>,
    size: Option<[usize; 2]>,
    align_corners: Option<bool>,
}

/// A value flowing through the graph. 4-D activations live as NCHW.
#[derive(Clone)]
enum Value {
    Nchw(Tensor<4>),
    /// Any other rank, in TFLite's own (row-major) order, with its shape.
    Flat(Tensor<1>, Vec<usize>),
}

impl Value {
    fn nchw(self) -> Result<Tensor<4>, CoreError> {
        match self {
            Value::Nchw(t) => Ok(t),
            Value::Flat(t, shape) if shape.len() == 4 => Ok(t
                .reshape([shape[0], shape[1], shape[2], shape[3]])
                .permute([0, 3, 1, 2])),
            Value::Flat(_, shape) => Err(CoreError::Graph(format!(
                "expected a 4-D activation, got shape {shape:?}"
            ))),
        }
    }

    /// The value in TFLite's row-major NHWC order, flattened.
    fn flat(self) -> (Tensor<1>, Vec<usize>) {
        match self {
            Value::Nchw(t) => {
                let [n, c, h, w] = t.dims();
                (
                    t.permute([0, 2, 3, 1]).reshape([n * h * w * c]),
                    vec![n, h, w, c],
                )
            }
            Value::Flat(t, shape) => (t, shape),
        }
    }
}

/// A graph output as plain data: row-major values in TFLite's shape.
#[derive(Debug, Clone)]
pub struct GraphOutput {
    pub name: String,
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}

/// Fused activation of an op.
fn activate(t: Tensor<4>, act: Option<&str>) -> Result<Tensor<4>, CoreError> {
    match act.unwrap_or("NONE") {
        "NONE" => Ok(t),
        "RELU" => Ok(relu(t)),
        "RELU6" => Ok(t.clamp(0.0, 6.0)),
        other => Err(CoreError::Graph(format!(
            "unsupported fused activation {other}"
        ))),
    }
}

/// A RESHAPE's converted shape has batch 1; keep the input's real batch.
fn batch_kept(shape: &[usize], input: &[usize]) -> Vec<usize> {
    let mut shape = shape.to_vec();
    if let (Some(s0), Some(&b)) = (shape.first_mut(), input.first()) {
        *s0 = b;
    }
    shape
}

/// TFLite SAME padding: the extra pixel goes at the end (bottom/right).
fn same_padding(input: usize, kernel: usize, stride: usize, dilation: usize) -> (usize, usize) {
    let effective = (kernel - 1) * dilation + 1;
    let out = input.div_ceil(stride);
    let total = ((out - 1) * stride + effective).saturating_sub(input);
    (total / 2, total - total / 2)
}

fn padding_of(
    opts: &OpOptions,
    [h, w]: [usize; 2],
    [kh, kw]: [usize; 2],
    [sh, sw]: [usize; 2],
    [dh, dw]: [usize; 2],
) -> [(usize, usize); 2] {
    if opts.padding.as_deref() == Some("SAME") {
        [same_padding(h, kh, sh, dh), same_padding(w, kw, sw, dw)]
    } else {
        [(0, 0), (0, 0)]
    }
}

/// Every tensor of a safetensors file as (name, row-major f32 values, shape);
/// the converters write float32 only, anything else is an error.
pub fn f32_tensors(weights: &[u8]) -> Result<Vec<(String, Vec<f32>, Vec<usize>)>, CoreError> {
    let st = safetensors::SafeTensors::deserialize(weights)
        .map_err(|e| CoreError::Weights(format!("weights file: {e}")))?;
    st.tensors()
        .into_iter()
        .map(|(name, view)| {
            if view.dtype() != safetensors::Dtype::F32 {
                return Err(CoreError::Weights(format!("tensor {name} is {:?}, expected F32", view.dtype())));
            }
            let values = view.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
            Ok((name, values, view.shape().to_vec()))
        })
        .collect()
}

/// A loaded graph: operator list plus constant tensors on one device.
pub struct Graph {
    ops: Vec<OpSpec>,
    inputs: Vec<GraphIo>,
    outputs: Vec<GraphIo>,
    constants: HashMap<usize, Value>,
    /// Conv kernels pre-permuted to burn's OIHW, keyed by constant id.
    kernels: HashMap<usize, Tensor<4>>,
    /// On the CPU, the graph compiled for NHWC kernels (burn ops otherwise).
    cpu: Option<cpu::CpuPlan>,
    device: Device,
}

impl Graph {
    /// Load from the JSON op list and safetensors constants written by the converter.
    pub fn from_bytes(
        graph_json: &[u8],
        weights: &[u8],
        device: &Device,
    ) -> Result<Self, CoreError> {
        let file: GraphFile = serde_json::from_slice(graph_json)
            .map_err(|e| CoreError::Weights(format!("graph description: {e}")))?;
        if file.format != "auscope-tflite-graph/1" {
            return Err(CoreError::Weights(format!(
                "unknown graph format {:?}",
                file.format
            )));
        }
        let mut host = HashMap::new();
        for (name, values, shape) in f32_tensors(weights)? {
            let id: usize = name
                .strip_prefix('t')
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| CoreError::Weights(format!("unexpected tensor name {name:?}")))?;
            host.insert(id, (values, shape));
        }
        if *device == Device::flex() {
            let input = file.inputs.first().ok_or_else(|| CoreError::Graph("graph has no input".into()))?.id;
            let outputs = file.outputs.iter().map(|o| (o.id, o.name.clone())).collect();
            let plan = cpu::CpuPlan::new(&file.ops, input, outputs, host)?;
            return Ok(Graph { ops: file.ops, inputs: file.inputs, outputs: file.outputs, constants: HashMap::new(), kernels: HashMap::new(), cpu: Some(plan), device: device.clone() });
        }
        let constants = host
            .into_iter()
            .map(|(id, (values, shape))| {
                let n = values.len();
                (id, Value::Flat(Tensor::<1>::from_data(TensorData::new(values, [n]), device), shape))
            })
            .collect();
        let mut graph = Graph {
            ops: file.ops,
            inputs: file.inputs,
            outputs: file.outputs,
            constants,
            kernels: HashMap::new(),
            cpu: None,
            device: device.clone(),
        };
        graph.prepare_kernels()?;
        Ok(graph)
    }

    /// Permute conv weights once at load: TFLite OHWI (conv) and 1HW(C*M)
    /// (depthwise) to burn's OIHW.
    fn prepare_kernels(&mut self) -> Result<(), CoreError> {
        for op in &self.ops {
            let perm = match op.op.as_str() {
                "CONV_2D" => [0, 3, 1, 2],
                "DEPTHWISE_CONV_2D" => [3, 0, 1, 2],
                _ => continue,
            };
            let id = *op
                .inputs
                .get(1)
                .ok_or_else(|| CoreError::Graph("conv without weights".into()))?;
            let (t, shape) = self.constant(id)?.flat();
            let [a, b, c, d] = <[usize; 4]>::try_from(shape.as_slice())
                .map_err(|_| CoreError::Weights(format!("conv weight t{id} is not 4-D")))?;
            self.kernels
                .insert(id, t.reshape([a, b, c, d]).permute(perm));
        }
        Ok(())
    }

    fn constant(&self, id: usize) -> Result<Value, CoreError> {
        self.constants
            .get(&id)
            .cloned()
            .ok_or_else(|| CoreError::Weights(format!("missing constant t{id}")))
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Run the graph on HWC crops of side `size` (values 0..255, mapped to
    /// `scale * v + offset`), all in one batch; outputs in host memory.
    pub fn forward_hwc(&self, crops: &[Vec<f32>], size: usize, scale: f32, offset: f32) -> Result<Vec<GraphOutput>, CoreError> {
        match &self.cpu {
            Some(plan) => {
                let mut data = Vec::with_capacity(crops.len() * size * size * 3);
                for crop in crops {
                    if crop.len() != size * size * 3 {
                        return Err(CoreError::Graph(format!("a {size}x{size} RGB crop has {} values, got {}", size * size * 3, crop.len())));
                    }
                    data.extend(crop.iter().map(|v| v * scale + offset));
                }
                plan.forward(data, [crops.len(), size, size, 3])
            }
            None => self.forward(crate::frame::crops_to_tensor(crops, size, scale, offset, &self.device)),
        }
    }

    /// Run the graph on an NCHW batch with burn ops (the GPU path); returns
    /// the outputs as tensors in TFLite's row-major order (flattened), with
    /// their shapes.
    pub fn forward_tensors(
        &self,
        input: Tensor<4>,
    ) -> Result<Vec<(Tensor<1>, Vec<usize>)>, CoreError> {
        let mut values: HashMap<usize, Value> = HashMap::new();
        let first = self
            .inputs
            .first()
            .ok_or_else(|| CoreError::Graph("graph has no input".into()))?;
        if self.cpu.is_some() {
            return Err(CoreError::Graph("this graph was compiled for the CPU; use forward_hwc".into()));
        }
        values.insert(first.id, Value::Nchw(input));
        let get = |values: &HashMap<usize, Value>, id: usize| -> Result<Value, CoreError> {
            match values.get(&id) {
                Some(v) => Ok(v.clone()),
                None => self.constant(id),
            }
        };
        for op in &self.ops {
            let x = get(&values, op.inputs[0])?;
            let out = self.run_op(op, x, &values, &get)?;
            values.insert(op.outputs[0], out);
        }
        self.outputs
            .iter()
            .map(|io| Ok(get(&values, io.id)?.flat()))
            .collect()
    }

    /// Run the graph and read the outputs back to host memory.
    pub fn forward(&self, input: Tensor<4>) -> Result<Vec<GraphOutput>, CoreError> {
        self.forward_tensors(input)?
            .into_iter()
            .zip(&self.outputs)
            .map(|((t, shape), io)| {
                let values = t
                    .into_data()
                    .try_to_vec::<f32>()
                    .map_err(|e| CoreError::Graph(format!("reading output {}: {e:?}", io.name)))?;
                Ok(GraphOutput {
                    name: io.name.clone(),
                    shape,
                    values,
                })
            })
            .collect()
    }

    fn run_op(
        &self,
        op: &OpSpec,
        x: Value,
        values: &HashMap<usize, Value>,
        get: &dyn Fn(&HashMap<usize, Value>, usize) -> Result<Value, CoreError>,
    ) -> Result<Value, CoreError> {
        let o = &op.options;
        let act = o.activation.as_deref();
        Ok(match op.op.as_str() {
            "CONV_2D" | "DEPTHWISE_CONV_2D" => {
                let x = x.nchw()?;
                let wid = op.inputs[1];
                let weight = self
                    .kernels
                    .get(&wid)
                    .cloned()
                    .ok_or_else(|| CoreError::Weights(format!("missing kernel t{wid}")))?;
                let bias = match op.inputs.get(2) {
                    Some(&b) => Some(self.constant(b)?.flat().0),
                    None => None,
                };
                let [_, c, h, w] = x.dims();
                let [_, _, kh, kw] = weight.dims();
                let stride = o.stride.unwrap_or([1, 1]);
                let dilation = o.dilation.unwrap_or([1, 1]);
                let groups = if op.op == "CONV_2D" { 1 } else { c };
                let padding = padding_of(o, [h, w], [kh, kw], stride, dilation);
                let y = conv2d(
                    x,
                    weight,
                    bias,
                    ConvOptions {
                        stride,
                        padding,
                        dilation,
                        groups,
                    },
                );
                Value::Nchw(activate(y, act)?)
            }
            "MAX_POOL_2D" => {
                let x = x.nchw()?;
                let [_, _, h, w] = x.dims();
                let kernel = o.filter.unwrap_or([2, 2]);
                let stride = o.stride.unwrap_or(kernel);
                let padding = padding_of(o, [h, w], kernel, stride, [1, 1]);
                let y = max_pool2d(
                    x,
                    MaxPoolOptions {
                        kernel_size: kernel,
                        stride,
                        padding,
                        dilation: [1, 1],
                        ceil_mode: false,
                    },
                );
                Value::Nchw(activate(y, act)?)
            }
            "ADD" => {
                let b = get(values, op.inputs[1])?.nchw()?;
                Value::Nchw(activate(x.nchw()? + b, act)?)
            }
            "RELU" => Value::Nchw(relu(x.nchw()?)),
            "LOGISTIC" => match x {
                Value::Nchw(t) => Value::Nchw(sigmoid(t)),
                Value::Flat(t, s) => Value::Flat(sigmoid(t), s),
            },
            "PRELU" => {
                let alpha = get(values, op.inputs[1])?.flat().0;
                Value::Nchw(prelu(x.nchw()?, alpha))
            }
            "PAD" => {
                let p = o
                    .paddings
                    .as_ref()
                    .ok_or_else(|| CoreError::Graph("PAD without paddings".into()))?;
                if p.len() != 4 {
                    return Err(CoreError::Graph("PAD expects 4-D paddings".into()));
                }
                // NHWC paddings -> NCHW dims.
                let pairs = [
                    (p[0][0], p[0][1]),
                    (p[3][0], p[3][1]),
                    (p[1][0], p[1][1]),
                    (p[2][0], p[2][1]),
                ];
                Value::Nchw(
                    x.nchw()?
                        .pad(pairs, burn::tensor::ops::PadMode::Constant(0.0)),
                )
            }
            "RESIZE_BILINEAR" => {
                let size = o
                    .size
                    .ok_or_else(|| CoreError::Graph("RESIZE_BILINEAR without size".into()))?;
                // half_pixel_centers == PyTorch align_corners=False, which burn implements.
                let opts = InterpolateOptions::new(InterpolateMode::Bilinear)
                    .with_align_corners(o.align_corners.unwrap_or(false))
                    .with_output_size(size);
                Value::Nchw(interpolate(x.nchw()?, opts))
            }
            "RESHAPE" => {
                let shape = o
                    .shape
                    .as_ref()
                    .ok_or_else(|| CoreError::Graph("RESHAPE without shape".into()))?;
                let (t, old) = x.flat();
                Value::Flat(t, batch_kept(shape, &old))
            }
            "CONCATENATION" => self.concat(op, values, get)?,
            other => return Err(CoreError::Graph(format!("unsupported op {other}"))),
        })
    }

    fn concat(
        &self,
        op: &OpSpec,
        values: &HashMap<usize, Value>,
        get: &dyn Fn(&HashMap<usize, Value>, usize) -> Result<Value, CoreError>,
    ) -> Result<Value, CoreError> {
        let parts: Vec<Value> = op
            .inputs
            .iter()
            .map(|&id| get(values, id))
            .collect::<Result<_, _>>()?;
        let axis = op.options.axis.unwrap_or(0);
        let all_nchw = parts.iter().all(|p| matches!(p, Value::Nchw(_)));
        if all_nchw {
            let nhwc_axis = if axis < 0 {
                (4 + axis) as usize
            } else {
                axis as usize
            };
            let dim = [0, 2, 3, 1][nhwc_axis];
            let ts: Vec<Tensor<4>> = parts
                .into_iter()
                .map(Value::nchw)
                .collect::<Result<_, _>>()?;
            return Ok(Value::Nchw(Tensor::cat(ts, dim)));
        }
        // Row-major concatenation along `axis` of same-rank flat tensors:
        // view each as [outer, inner_i] and concatenate the inner parts.
        let flats: Vec<(Tensor<1>, Vec<usize>)> = parts.into_iter().map(Value::flat).collect();
        let rank = flats[0].1.len();
        let axis = if axis < 0 {
            (rank as i64 + axis) as usize
        } else {
            axis as usize
        };
        let outer: usize = flats[0].1[..axis].iter().product();
        let mut shape = flats[0].1.clone();
        shape[axis] = flats.iter().map(|(_, s)| s[axis]).sum();
        let inner_total: usize = shape[axis..].iter().product();
        let ts: Vec<Tensor<2>> = flats
            .into_iter()
            .map(|(t, s)| {
                let inner: usize = s[axis..].iter().product();
                t.reshape([outer, inner])
            })
            .collect();
        let cat = Tensor::cat(ts, 1).reshape([outer * inner_total]);
        Ok(Value::Flat(cat, shape))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_padding_matches_tflite() {
        // 128 -> 64 with a 3x3 stride-2 kernel pads one pixel at the end only.
        assert_eq!(same_padding(128, 3, 2, 1), (0, 1));
        assert_eq!(same_padding(16, 5, 1, 1), (2, 2));
        assert_eq!(same_padding(64, 2, 2, 1), (0, 0));
    }
}
