//! Spatial attention the networks compute themselves: TransAU's per-AU ROI
//! attention maps and LRP-ARL-FF's LANet attention. Both are sigmoid
//! outputs in [0, 1], shown as they are (no renormalisation).

use burn::tensor::Device;

use super::{Explainer, ExplainInput, Explanation, MapStack, Method, forward_maps, net_of, network};
use crate::error::CoreError;
use crate::models::{Net, Predictor};

pub struct RoiAttention;

impl Explainer for RoiAttention {
    fn method(&self) -> Method {
        Method::RoiAttention
    }

    fn unsupported(&self, model: &Predictor) -> Option<String> {
        match net_of(model) {
            Some(Net::Transau(_)) => None,
            _ => Some(format!("{} has no ROI attention maps; TransAU does", model.kind().title())),
        }
    }

    fn explain(&self, model: &Predictor, input: &ExplainInput, device: &Device) -> Result<Explanation, CoreError> {
        let m = network(model, Method::RoiAttention).map_err(CoreError::Explain)?;
        let t = forward_maps(m, input, device)?
            .roi_attention
            .ok_or_else(|| CoreError::Explain("TransAU returned no ROI attention".into()))?;
        let maps = MapStack::from_tensor(t, m.aus().to_vec())?;
        Ok(Explanation {
            method: Method::RoiAttention,
            roi: input.roi,
            note: format!("TransAU ROI attention per AU ({}x{}), sigmoid outputs", maps.width, maps.height),
            maps: Some(maps),
            matrices: Vec::new(),
        })
    }
}

pub struct LanetAttention;

impl Explainer for LanetAttention {
    fn method(&self) -> Method {
        Method::LanetAttention
    }

    fn unsupported(&self, model: &Predictor) -> Option<String> {
        match net_of(model) {
            Some(Net::LrpArlFf(_)) => None,
            _ => Some(format!("{} has no LANet; LRP-ARL-FF does", model.kind().title())),
        }
    }

    fn explain(&self, model: &Predictor, input: &ExplainInput, device: &Device) -> Result<Explanation, CoreError> {
        let m = network(model, Method::LanetAttention).map_err(CoreError::Explain)?;
        let t = forward_maps(m, input, device)?
            .lanet_attention
            .ok_or_else(|| CoreError::Explain("LRP-ARL-FF returned no LANet attention".into()))?;
        let maps = MapStack::from_tensor(t, vec!["LANet".into()])?;
        Ok(Explanation {
            method: Method::LanetAttention,
            roi: input.roi,
            note: format!("LANet attention ({}x{}), shared by all AUs, sigmoid output", maps.width, maps.height),
            maps: Some(maps),
            matrices: Vec::new(),
        })
    }
}
