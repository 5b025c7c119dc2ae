//! FAN landmark heat-maps (FAN-Trans): the last hourglass stack's 68
//! heat-maps, one per iBUG landmark ("L1".."L68"), and their maximum
//! ("all", the plane FAN-Trans multiplies into its features with the
//! default `max` aggregate). Each map is divided by its own peak so a weak
//! landmark still shows where it is.

use burn::tensor::Device;

use super::{Explainer, ExplainInput, Explanation, MapStack, Method, forward_maps, net_of, network};
use crate::error::CoreError;
use crate::models::{Net, Predictor};

pub struct FanHeatmap;

impl Explainer for FanHeatmap {
    fn method(&self) -> Method {
        Method::FanHeatmap
    }

    fn unsupported(&self, model: &Predictor) -> Option<String> {
        match net_of(model) {
            Some(Net::FanTrans(_)) => None,
            Some(_) => Some(format!("{} has no FAN; heat-maps come with FAN-Trans", model.kind().title())),
            None => Some("the blendshape baseline has no FAN; heat-maps come with FAN-Trans".into()),
        }
    }

    fn explain(&self, model: &Predictor, input: &ExplainInput, device: &Device) -> Result<Explanation, CoreError> {
        let m = network(model, Method::FanHeatmap).map_err(CoreError::Explain)?;
        let hm = forward_maps(m, input, device)?
            .fan_heatmaps
            .ok_or_else(|| CoreError::Explain(format!("{} returned no heat-maps", m.kind().title())))?;
        let [_, k, h, w] = hm.dims();
        let raw = super::read(hm.narrow(0, 0, 1))?;
        let n = h * w;
        let mut data = vec![0.0f32; (k + 1) * n];
        for l in 0..k {
            let src = &raw[l * n..(l + 1) * n];
            let peak = src.iter().copied().fold(0.0f32, f32::max);
            let dst = &mut data[(l + 1) * n..(l + 2) * n];
            for (d, &v) in dst.iter_mut().zip(src) {
                *d = if peak > 0.0 { (v / peak).clamp(0.0, 1.0) } else { 0.0 };
            }
        }
        for i in 0..n {
            data[i] = (1..=k).map(|l| data[l * n + i]).fold(0.0, f32::max);
        }
        let mut labels = vec!["all".to_string()];
        labels.extend((1..=k).map(|l| format!("L{l}")));
        Ok(Explanation::of_maps(
            Method::FanHeatmap,
            input,
            MapStack::new(labels, w, h, data)?,
            format!("FAN heat-maps of the last stack ({w}x{h}), each divided by its peak; 'all' is their maximum"),
        ))
    }
}
