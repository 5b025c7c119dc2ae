//! The blendshape baseline: MediaPipe's 52 blendshapes mapped to FACS AUs.
//! It is the app's model "blendshape-baseline" and the pseudo-label teacher
//! the shipped demo weights are trained from (docs/training.md).
//!
//! The mapping is ours, from the FACS meaning of each AU and ARKit's
//! description of each blendshape; it is approximate and says so. An AU
//! takes the larger of its left/right blendshapes, and the blendshape score
//! is used as the AU probability as is (no calibration data exists here).

use burn::tensor::Device;

use crate::error::CoreError;
use crate::face::Face;
use crate::face::blendshapes::BlendshapeNet;

/// AU -> the blendshapes whose maximum is its probability.
pub const AU_FROM_BLENDSHAPES: &[(&str, &[&str])] = &[
    ("AU01", &["browInnerUp"]),
    ("AU02", &["browOuterUpLeft", "browOuterUpRight"]),
    ("AU04", &["browDownLeft", "browDownRight"]),
    ("AU05", &["eyeWideLeft", "eyeWideRight"]),
    ("AU06", &["cheekSquintLeft", "cheekSquintRight"]),
    ("AU07", &["eyeSquintLeft", "eyeSquintRight"]),
    ("AU09", &["noseSneerLeft", "noseSneerRight"]),
    ("AU10", &["mouthUpperUpLeft", "mouthUpperUpRight"]),
    ("AU12", &["mouthSmileLeft", "mouthSmileRight"]),
    ("AU14", &["mouthDimpleLeft", "mouthDimpleRight"]),
    ("AU15", &["mouthFrownLeft", "mouthFrownRight"]),
    ("AU17", &["mouthShrugLower"]),
    ("AU18", &["mouthPucker"]),
    ("AU20", &["mouthStretchLeft", "mouthStretchRight"]),
    ("AU22", &["mouthFunnel"]),
    // Lip tightener narrows the red of the lips, as rolling them in does.
    ("AU23", &["mouthRollLower", "mouthRollUpper"]),
    ("AU24", &["mouthPressLeft", "mouthPressRight"]),
    // Lips part: the jaw opens or the lower lip is pulled down.
    ("AU25", &["jawOpen", "mouthLowerDownLeft", "mouthLowerDownRight"]),
    ("AU26", &["jawOpen"]),
    ("AU43", &["eyeBlinkLeft", "eyeBlinkRight"]),
];

/// The blendshape network plus the AU mapping for a chosen AU list.
#[derive(Debug, Clone)]
pub struct BlendshapeTeacher {
    net: BlendshapeNet,
    aus: Vec<String>,
    /// Per AU, the blendshape indices it takes the maximum of.
    sources: Vec<Vec<usize>>,
}

impl BlendshapeTeacher {
    /// Every AU the mapping covers.
    pub fn all_aus() -> Vec<String> {
        AU_FROM_BLENDSHAPES.iter().map(|(a, _)| a.to_string()).collect()
    }

    pub fn new(aus: &[String], device: &Device) -> Result<Self, CoreError> {
        let net = BlendshapeNet::new(device)?;
        let sources = aus
            .iter()
            .map(|au| {
                let (_, shapes) = AU_FROM_BLENDSHAPES.iter().find(|(a, _)| a == au).ok_or_else(|| {
                    CoreError::Model(format!(
                        "the blendshape teacher has no mapping for {au} (it covers {})",
                        Self::all_aus().join(", ")
                    ))
                })?;
                shapes
                    .iter()
                    .map(|s| {
                        net.names()
                            .iter()
                            .position(|n| n == s)
                            .ok_or_else(|| CoreError::Weights(format!("blendshape model has no output {s}")))
                    })
                    .collect()
            })
            .collect::<Result<_, CoreError>>()?;
        Ok(Self { net, aus: aus.to_vec(), sources })
    }

    pub fn aus(&self) -> &[String] {
        &self.aus
    }

    pub fn net(&self) -> &BlendshapeNet {
        &self.net
    }

    /// 52 blendshape scores -> AU probabilities in the order of `aus()`.
    pub fn map(&self, blendshapes: &[f32]) -> Vec<f32> {
        self.sources
            .iter()
            .map(|idx| idx.iter().map(|&i| blendshapes.get(i).copied().unwrap_or(0.0)).fold(0.0, f32::max))
            .collect()
    }

    /// AU probabilities for each face (one row per face).
    pub fn predict_faces(&self, faces: &[Face]) -> Result<Vec<Vec<f32>>, CoreError> {
        self.predict_meshes(faces.iter().map(|f| f.landmarks478.as_slice()))
    }

    /// AU probabilities for each face's 478-point mesh (frame pixels).
    pub fn predict_meshes<'a>(&self, meshes: impl Iterator<Item = &'a [[f32; 3]]>) -> Result<Vec<Vec<f32>>, CoreError> {
        let meshes: Vec<&[[f32; 3]]> = meshes.collect();
        Ok(self.net.blendshapes(&meshes)?.iter().map(|b| self.map(b)).collect())
    }
}
