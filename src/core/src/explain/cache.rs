//! Recent explanations, so moving the opacity slider or switching AUs does
//! not rerun Score-CAM: keyed by (frame, face, model, method, options),
//! least recently used out first.

use std::collections::VecDeque;
use std::sync::Arc;

use super::{ExplainOptions, Explanation, Method};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    /// Media path and frame index (or any id that changes with the pixels).
    pub frame: (String, usize),
    pub face: usize,
    /// Model name plus where its weights came from.
    pub model: String,
    pub method: Method,
    pub options: ExplainOptions,
}

pub struct ExplainCache {
    capacity: usize,
    entries: VecDeque<(CacheKey, Arc<Explanation>)>,
}

impl ExplainCache {
    pub fn new(capacity: usize) -> Self {
        Self { capacity: capacity.max(1), entries: VecDeque::new() }
    }

    pub fn get(&mut self, key: &CacheKey) -> Option<Arc<Explanation>> {
        let i = self.entries.iter().position(|(k, _)| k == key)?;
        let hit = self.entries.remove(i)?;
        let value = hit.1.clone();
        self.entries.push_front(hit);
        Some(value)
    }

    pub fn insert(&mut self, key: CacheKey, value: Arc<Explanation>) {
        self.entries.retain(|(k, _)| k != &key);
        self.entries.push_front((key, value));
        self.entries.truncate(self.capacity);
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Roi;

    fn key(frame: usize) -> CacheKey {
        CacheKey { frame: ("v.mp4".into(), frame), face: 0, model: "piap demo".into(), method: Method::ScoreCam, options: ExplainOptions::default() }
    }

    fn value() -> Arc<Explanation> {
        Arc::new(Explanation { method: Method::ScoreCam, roi: Roi { center: [0.0, 0.0], side: 1.0, angle: 0.0 }, maps: None, matrices: Vec::new(), note: String::new() })
    }

    #[test]
    fn the_least_recently_used_entry_goes_first() {
        let mut c = ExplainCache::new(2);
        c.insert(key(1), value());
        c.insert(key(2), value());
        assert!(c.get(&key(1)).is_some(), "touch 1");
        c.insert(key(3), value());
        assert!(c.get(&key(2)).is_none(), "2 was least recently used");
        assert!(c.get(&key(1)).is_some() && c.get(&key(3)).is_some());
        assert_eq!(c.len(), 2);
        let mut other = key(1);
        other.options.layer = Some("backbone.layer3".into());
        assert!(c.get(&other).is_none(), "another layer is another entry");
    }
}
