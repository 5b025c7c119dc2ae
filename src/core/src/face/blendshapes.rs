//! MediaPipe's face blendshape model (face_blendshapes.tflite from
//! face_landmarker.task) on burn: 146 of the 478 mesh points in -> 52 ARKit
//! blendshape scores out.
//!
//! The network is an MLP-Mixer; `tools/convert_tflite.py` names its weights
//! by their place in the TFLite op list. Its LayerNorms scale but do not
//! shift (the TFLite graph has a gamma and no beta) and there is no norm
//! after the last block: both read off the graph, not guessed.

use std::collections::HashMap;

use burn::tensor::activation::{relu, sigmoid};
use burn::tensor::{Device, Tensor, TensorData};
use serde::Deserialize;

use crate::error::CoreError;
use crate::graph::f32_tensors;

pub const NUM_BLENDSHAPES: usize = 52;

#[derive(Debug, Deserialize)]
struct Meta {
    format: String,
    blocks: usize,
    subset: Vec<usize>,
    names: Vec<String>,
}

/// y = x W^T + b over the last axis.
#[derive(Debug, Clone)]
struct Dense {
    weight_t: Tensor<2>,
    bias: Tensor<1>,
}

impl Dense {
    fn forward3(&self, x: Tensor<3>) -> Tensor<3> {
        let [b, n, k] = x.dims();
        let out = self.bias.dims()[0];
        (x.reshape([b * n, k]).matmul(self.weight_t.clone()) + self.bias.clone().unsqueeze::<2>())
            .reshape([b, n, out])
    }
}

#[derive(Debug, Clone)]
struct MixerBlock {
    norm1: Tensor<1>,
    token_fc1: Dense,
    token_fc2: Dense,
    norm2: Tensor<1>,
    channel_fc1: Dense,
    channel_fc2: Dense,
}

/// The blendshape network on one device.
#[derive(Debug, Clone)]
pub struct BlendshapeNet {
    scale: f32,
    eps: f32,
    class_token: Tensor<1>,
    token_in: Dense,
    channel_in: Dense,
    blocks: Vec<MixerBlock>,
    head: Dense,
    subset: Vec<usize>,
    names: Vec<String>,
    device: Device,
}

impl BlendshapeNet {
    /// The shipped MediaPipe weights (models/face_blendshapes).
    pub fn new(device: &Device) -> Result<Self, CoreError> {
        let e = &crate::embedded::FACE_BLENDSHAPES;
        Self::from_bytes(e.graph_json, e.weights, device)
    }

    pub fn from_bytes(meta_json: &[u8], weights: &[u8], device: &Device) -> Result<Self, CoreError> {
        let meta: Meta = serde_json::from_slice(meta_json)
            .map_err(|e| CoreError::Weights(format!("blendshape model description: {e}")))?;
        if meta.format != "auscope-blendshapes/1" || meta.names.len() != NUM_BLENDSHAPES {
            return Err(CoreError::Weights(format!("unknown blendshape model format {:?}", meta.format)));
        }
        let raw: HashMap<String, (Vec<f32>, Vec<usize>)> =
            f32_tensors(weights)?.into_iter().map(|(name, v, shape)| (name, (v, shape))).collect();
        let take = |name: &str| raw.get(name).cloned().ok_or_else(|| CoreError::Weights(format!("blendshape weights lack {name}")));
        let vec1 = |name: &str| -> Result<Tensor<1>, CoreError> {
            let (v, _) = take(name)?;
            let n = v.len();
            Ok(Tensor::from_data(TensorData::new(v, [n]), device))
        };
        let scalar = |name: &str| -> Result<f32, CoreError> {
            take(name)?.0.first().copied().ok_or_else(|| CoreError::Weights(format!("{name} is empty")))
        };
        let dense = |name: &str| -> Result<Dense, CoreError> {
            let (w, shape) = take(&format!("{name}.weight"))?;
            let [o, i] = <[usize; 2]>::try_from(shape.as_slice())
                .map_err(|_| CoreError::Weights(format!("{name}.weight is not 2-D")))?;
            Ok(Dense {
                weight_t: Tensor::<2>::from_data(TensorData::new(w, [o, i]), device).transpose(),
                bias: vec1(&format!("{name}.bias"))?,
            })
        };
        let blocks = (0..meta.blocks)
            .map(|b| {
                Ok(MixerBlock {
                    norm1: vec1(&format!("blocks.{b}.norm1.gamma"))?,
                    token_fc1: dense(&format!("blocks.{b}.token.fc1"))?,
                    token_fc2: dense(&format!("blocks.{b}.token.fc2"))?,
                    norm2: vec1(&format!("blocks.{b}.norm2.gamma"))?,
                    channel_fc1: dense(&format!("blocks.{b}.channel.fc1"))?,
                    channel_fc2: dense(&format!("blocks.{b}.channel.fc2"))?,
                })
            })
            .collect::<Result<Vec<_>, CoreError>>()?;
        Ok(Self {
            scale: scalar("scale")?,
            eps: scalar("eps")?,
            class_token: vec1("class_token")?,
            token_in: dense("token_in")?,
            channel_in: dense("channel_in")?,
            blocks,
            head: dense("head")?,
            subset: meta.subset,
            names: meta.names,
            device: device.clone(),
        })
    }

    /// The 52 blendshape names in output order (`_neutral`, `browDownLeft`, ...).
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The mesh indices the model reads.
    pub fn subset(&self) -> &[usize] {
        &self.subset
    }

    fn norm(&self, x: Tensor<3>, gamma: &Tensor<1>) -> Tensor<3> {
        let mean = x.clone().mean_dim(2);
        let centered = x - mean;
        let var = centered.clone().powf_scalar(2.0).mean_dim(2);
        centered * (var + self.eps).sqrt().recip() * gamma.clone().unsqueeze::<3>()
    }

    /// [B, 146, 2] points (any consistent unit; image pixels in MediaPipe) ->
    /// [B, 52] scores in 0..1.
    pub fn forward(&self, points: Tensor<3>) -> Tensor<2> {
        let [b, _, _] = points.dims();
        // Centre, then divide by the mean distance from the centre.
        let centered = points.clone() - points.mean_dim(1);
        let dist = centered.clone().powf_scalar(2.0).sum_dim(2).sqrt().mean_dim(1);
        let x = centered / dist * self.scale;
        // Token mixing 146 -> 96 points, then channels 2 -> 64.
        let x = self.token_in.forward3(x.swap_dims(1, 2)).swap_dims(1, 2);
        let x = self.channel_in.forward3(x);
        let dim = self.class_token.dims()[0];
        let cls = self.class_token.clone().reshape([1, 1, dim]).repeat_dim(0, b);
        let mut x = Tensor::cat(vec![cls, x], 1);
        for blk in &self.blocks {
            let y = self.norm(x.clone(), &blk.norm1).swap_dims(1, 2);
            let y = blk.token_fc2.forward3(relu(blk.token_fc1.forward3(y)));
            x = x + y.swap_dims(1, 2);
            let y = self.norm(x.clone(), &blk.norm2);
            x = x.clone() + blk.channel_fc2.forward3(relu(blk.channel_fc1.forward3(y)));
        }
        let cls = x.narrow(1, 0, 1).reshape([b, dim]);
        sigmoid(cls.matmul(self.head.weight_t.clone()) + self.head.bias.clone().unsqueeze::<2>())
    }

    /// Blendshape scores for each face's 478 mesh points (frame pixels).
    pub fn blendshapes(&self, meshes: &[&[[f32; 3]]]) -> Result<Vec<Vec<f32>>, CoreError> {
        if meshes.is_empty() {
            return Ok(Vec::new());
        }
        let n = self.subset.len();
        let mut data = Vec::with_capacity(meshes.len() * n * 2);
        for mesh in meshes {
            for &i in &self.subset {
                let p = mesh.get(i).ok_or_else(|| {
                    CoreError::Model(format!("the blendshape model needs the 478-point mesh, got {} points", mesh.len()))
                })?;
                data.extend([p[0], p[1]]);
            }
        }
        let x = Tensor::<3>::from_data(TensorData::new(data, [meshes.len(), n, 2]), &self.device);
        let out = self
            .forward(x)
            .into_data()
            .try_to_vec::<f32>()
            .map_err(|e| CoreError::Model(format!("reading blendshapes: {e:?}")))?;
        Ok(out.chunks(NUM_BLENDSHAPES).map(|c| c.to_vec()).collect())
    }
}
