//! Weights shipped inside the binary, so the app runs with no downloads.
//! Provenance and licences: models/README.md.

pub struct EmbeddedGraph {
    pub name: &'static str,
    pub graph_json: &'static [u8],
    pub weights: &'static [u8],
}

macro_rules! embedded_graph {
    ($name:literal) => {
        EmbeddedGraph {
            name: $name,
            graph_json: include_bytes!(concat!("../../../models/", $name, "/graph.json")),
            weights: include_bytes!(concat!("../../../models/", $name, "/weights.safetensors")),
        }
    };
}

pub const BLAZEFACE_SHORT: EmbeddedGraph = embedded_graph!("blazeface_short");
pub const BLAZEFACE_FULL: EmbeddedGraph = embedded_graph!("blazeface_full");
pub const FACE_LANDMARKER: EmbeddedGraph = embedded_graph!("face_landmarker");

/// The blendshape model: `graph_json` holds its meta.json (subset, names).
pub const FACE_BLENDSHAPES: EmbeddedGraph = EmbeddedGraph {
    name: "face_blendshapes",
    graph_json: include_bytes!("../../../models/face_blendshapes/meta.json"),
    weights: include_bytes!("../../../models/face_blendshapes/weights.safetensors"),
};

/// Default AU weights (demo quality: trained on blendshape-teacher
/// pseudo-labels, not on FACS-coded data; model cards in models/au_*/).
pub struct EmbeddedWeights {
    /// The folder under models/ (and the label shown as the weights' source).
    pub folder: &'static str,
    pub bpk: &'static [u8],
}

macro_rules! embedded_weights {
    ($name:literal) => {
        EmbeddedWeights { folder: concat!("models/", $name), bpk: include_bytes!(concat!("../../../models/", $name, "/model.bpk")) }
    };
}

pub const AU_FAN_TRANS: EmbeddedWeights = embedded_weights!("au_fan_trans");
pub const AU_TRANSAU: EmbeddedWeights = embedded_weights!("au_transau");
pub const AU_PIAP: EmbeddedWeights = embedded_weights!("au_piap");
pub const AU_LRP_ARL_FF: EmbeddedWeights = embedded_weights!("au_lrp_arl_ff");
