//! AU x AU attention of the transformer layers (FAN-Trans' two branches,
//! TransAU's encoder, LRP-ARL-FF's fusion encoder): per layer the mean over
//! heads, every head, and the attention-drop mask where the layer has one.
//! Rows are queries, columns keys; each row of an attention map sums to 1.

use burn::tensor::Device;

use super::{Explainer, ExplainInput, Explanation, Matrix, Method, forward_maps, network, read};
use crate::error::CoreError;
use crate::models::lrp_arl_ff::Fusion;
use crate::models::{ArchConfig, Predictor};

pub struct AuAttention;

impl Explainer for AuAttention {
    fn method(&self) -> Method {
        Method::AuAttention
    }

    fn unsupported(&self, model: &Predictor) -> Option<String> {
        let m = match network(model, Method::AuAttention) {
            Ok(m) => m,
            Err(why) => return Some(why),
        };
        match &m.spec.arch {
            ArchConfig::FanTrans(_) | ArchConfig::Transau(_) => None,
            ArchConfig::LrpArlFf(c) if matches!(c.fusion, Fusion::Transformer { .. }) => None,
            ArchConfig::LrpArlFf(_) => Some("this LRP-ARL-FF fuses with a fixed weight; it has no transformer".into()),
            ArchConfig::Piap(_) => Some("PIAP has no transformer, so no AU attention".into()),
        }
    }

    fn explain(&self, model: &Predictor, input: &ExplainInput, device: &Device) -> Result<Explanation, CoreError> {
        let m = network(model, Method::AuAttention).map_err(CoreError::Explain)?;
        let layers = forward_maps(m, input, device)?.attention;
        if layers.is_empty() {
            return Err(CoreError::Explain(format!("{} returned no attention maps", m.kind().title())));
        }
        let mut matrices = Vec::new();
        for layer in layers {
            let [_, heads, t, _] = layer.attention.dims();
            let labels = token_labels(m.aus(), t);
            let att = read(layer.attention.narrow(0, 0, 1))?;
            let tt = t * t;
            let mean: Vec<f32> = (0..tt).map(|i| (0..heads).map(|h| att[h * tt + i]).sum::<f32>() / heads as f32).collect();
            matrices.push(matrix(format!("{}, mean over heads", layer.name), &labels, mean));
            for h in 0..heads {
                matrices.push(matrix(format!("{}, head {}", layer.name, h + 1), &labels, att[h * tt..(h + 1) * tt].to_vec()));
            }
            if let Some(mask) = layer.mask {
                let v = read(mask.narrow(0, 0, 1))?;
                matrices.push(Matrix { name: format!("{}, attention-drop mask", layer.name), labels: labels.clone(), values: v, range: [0.0, 1.0] });
            }
        }
        Ok(Explanation {
            method: Method::AuAttention,
            roi: input.roi,
            maps: None,
            matrices,
            note: "transformer attention, rows = queries, columns = keys; colour range 0 to each matrix's maximum".into(),
        })
    }
}

/// An attention matrix coloured from 0 to its own maximum (rows sum to 1,
/// so a fixed [0, 1] range would show almost nothing).
fn matrix(name: String, labels: &[String], values: Vec<f32>) -> Matrix {
    let hi = values.iter().copied().fold(0.0f32, f32::max).max(1e-6);
    Matrix { name, labels: labels.to_vec(), values, range: [0.0, hi] }
}

/// Token names: the model's AUs, with the fusion encoder's two extra
/// tokens first ([weight, backbone, AU...]); otherwise numbered.
fn token_labels(aus: &[String], t: usize) -> Vec<String> {
    if t == aus.len() {
        aus.to_vec()
    } else if t == aus.len() + 2 {
        let mut v = vec!["weight".to_string(), "backbone".to_string()];
        v.extend(aus.iter().cloned());
        v
    } else {
        (1..=t).map(|i| format!("t{i}")).collect()
    }
}
