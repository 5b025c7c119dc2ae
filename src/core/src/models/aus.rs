//! AU sets of the papers' datasets. A model's AU list is configuration; these
//! are the presets.

/// BP4D's 12 AUs (all four papers).
pub const BP4D: [&str; 12] = [
    "AU01", "AU02", "AU04", "AU06", "AU07", "AU10", "AU12", "AU14", "AU15", "AU17", "AU23", "AU24",
];

/// DISFA's 8 AUs (positive at intensity >= 2).
pub const DISFA: [&str; 8] = ["AU01", "AU02", "AU04", "AU06", "AU09", "AU12", "AU25", "AU26"];

/// Aff-Wild2's 12 AUs (ABAW).
pub const AFF_WILD2: [&str; 12] = [
    "AU01", "AU02", "AU04", "AU06", "AU07", "AU10", "AU12", "AU15", "AU23", "AU24", "AU25", "AU26",
];
