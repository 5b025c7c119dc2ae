//! Spatial attention the networks compute themselves: TransAU's per-AU ROI
//! attention maps and LRP-ARL-FF's LANet attention. Both are sigmoid
//! outputs in [0, 1], shown as they are (no renormalisation).

use burn::tensor::Device;

use super::{Explainer, ExplainInput, Explanation, Method, net_of, network_maps};
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
        network_maps(model, input, device, Method::RoiAttention, |m| m.roi_attention, None, "ROI attention per AU", "sigmoid outputs")
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
        let labels = Some(vec!["LANet".to_string()]);
        network_maps(model, input, device, Method::LanetAttention, |m| m.lanet_attention, labels, "LANet attention", "shared by all AUs, sigmoid output")
    }
}
