//! Pixel-interest maps (PIAP-DF). Predefined: each AU's region of
//! assets/au_regions.json drawn from the face's 68 landmarks, smoothed, as
//! PIAP's stage 1 learns them; any model (the AU list is the model's).
//! Learned: what PIAP's generator / decoder outputs, sigmoid in [0, 1].

use burn::tensor::Device;

use super::{Explainer, ExplainInput, Explanation, MapStack, Method, net_of, network_maps};
use crate::error::CoreError;
use crate::models::{Net, Predictor};
use crate::training::regions::region_maps;

/// Side of the predefined maps; drawing upsamples them smoothly.
pub const PREDEFINED_SIDE: usize = 64;
/// Gaussian smoothing of the predefined maps, in map pixels (TransAU's
/// sigma 3 at 224 px, scaled to 64).
pub const PREDEFINED_SIGMA: f32 = 1.0;

pub struct PredefinedPiMap;

impl Explainer for PredefinedPiMap {
    fn method(&self) -> Method {
        Method::PiMap
    }

    fn unsupported(&self, _model: &Predictor) -> Option<String> {
        None
    }

    fn explain(&self, model: &Predictor, input: &ExplainInput, _device: &Device) -> Result<Explanation, CoreError> {
        if input.landmarks.len() != 68 {
            return Err(CoreError::Explain(format!("predefined PI maps need 68 landmarks, the face has {}", input.landmarks.len())));
        }
        let aus = model.aus().to_vec();
        let data = region_maps(&aus, &input.landmarks, PREDEFINED_SIDE, PREDEFINED_SIGMA, None);
        Ok(Explanation::of_maps(
            Method::PiMap,
            input,
            MapStack::new(aus, PREDEFINED_SIDE, PREDEFINED_SIDE, data)?,
            "predefined PI maps: AU regions (assets/au_regions.json) from the 68 landmarks, smoothed".into(),
        ))
    }
}

pub struct LearnedPiMap;

impl Explainer for LearnedPiMap {
    fn method(&self) -> Method {
        Method::PiMapLearned
    }

    fn unsupported(&self, model: &Predictor) -> Option<String> {
        match net_of(model) {
            Some(Net::Piap(_)) => None,
            _ => Some(format!("{} learns no PI maps; PIAP does (the predefined maps work for any model)", model.kind().title())),
        }
    }

    fn explain(&self, model: &Predictor, input: &ExplainInput, device: &Device) -> Result<Explanation, CoreError> {
        network_maps(model, input, device, Method::PiMapLearned, |m| m.pi_maps, None, "learned PI maps", "sigmoid outputs")
    }
}
