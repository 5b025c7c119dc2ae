//! FAN landmark heat-maps (FAN-Trans): the last hourglass stack's 68
//! heat-maps, one per iBUG landmark ("L1".."L68"), and their maximum
//! ("all", the plane FAN-Trans multiplies into its features with the
//! default `max` aggregate). Each map is divided by its own peak so a weak
//! landmark still shows where it is.

use burn::tensor::{Device, Tensor};

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
        // On the model's device, so the maps stay on the GPU there. A
        // landmark whose peak is <= 0 gets 0 everywhere: every value is
        // <= its peak, so dividing by a tiny positive number and clamping
        // at 0 gives 0.
        let hm = hm.narrow(0, 0, 1).reshape([k, h * w]);
        let peak = hm.clone().max_dim(1).clamp_min(f32::MIN_POSITIVE);
        let each = (hm / peak).clamp(0.0, 1.0);
        let all = each.clone().max_dim(0);
        let maps = Tensor::cat(vec![all, each], 0).reshape([k + 1, h, w]);
        let mut labels = vec!["all".to_string()];
        labels.extend((1..=k).map(|l| format!("L{l}")));
        Ok(Explanation::of_maps(
            Method::FanHeatmap,
            input,
            MapStack::from_maps(maps, labels)?,
            format!("FAN heat-maps of the last stack ({w}x{h}), each divided by its peak; 'all' is their maximum"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::explain::{ExplainInput, ExplainOptions, explain};
    use crate::frame::Roi;
    use crate::models::{AuModel, ModelKind, ModelSpec};
    use image::RgbImage;

    /// Every landmark's map peaks at 1 (or is 0 where its heat-map has no
    /// positive value), and "all" is their maximum.
    #[test]
    fn each_heatmap_is_scaled_to_its_peak_and_all_is_their_maximum() {
        let device = Device::flex();
        let spec = ModelSpec::tiny(ModelKind::FanTrans);
        let size = spec.input().size as u32;
        let model = Predictor::Net(AuModel::new(spec, &device).expect("model"));
        let crop = RgbImage::from_fn(size, size, |x, y| image::Rgb([(x * 7 % 256) as u8, (y * 5 % 256) as u8, ((x + y) % 256) as u8]));
        let input = ExplainInput { crop, roi: Roi { center: [50.0, 50.0], side: 80.0, angle: 0.0 }, landmarks: vec![[0.5, 0.5]; 68], face_px: 80.0 };
        let e = explain(Method::FanHeatmap, &ExplainOptions::default(), &model, &input, &device).expect("heat-maps");
        let maps = e.maps.expect("maps");
        assert_eq!(maps.labels.len(), 69);
        assert_eq!((maps.labels[0].as_str(), maps.labels[1].as_str(), maps.labels[68].as_str()), ("all", "L1", "L68"));
        let n = maps.width * maps.height;
        let mut peaks = 0;
        for l in 1..69 {
            let m = maps.map(l);
            let peak = m.iter().copied().fold(f32::MIN, f32::max);
            assert!(m.iter().all(|v| (0.0..=1.0).contains(v)), "L{l} outside [0, 1]");
            assert!(peak == 0.0 || (peak - 1.0).abs() < 1e-6, "L{l} peaks at {peak}");
            peaks += usize::from(peak > 0.0);
        }
        assert!(peaks > 0, "an untrained FAN still has positive heat somewhere");
        for i in 0..n {
            let max = (1..69).map(|l| maps.map(l)[i]).fold(0.0, f32::max);
            assert_eq!(maps.map(0)[i], max, "pixel {i}");
        }
        assert!(maps.device.is_none(), "Flex maps have no GPU copy");
    }
}
