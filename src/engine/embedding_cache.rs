//! The last few images' embeddings, so going back to an image or to an image encoded ahead costs
//! nothing. Least recently used goes first; a LiteMedSAM embedding is 4 MiB (256×64×64 f32).

use std::collections::VecDeque;

/// Embeddings kept per model: the shown image, the ones encoded ahead on either side, and a few
/// visited before.
pub const DEFAULT_CAPACITY: usize = 8;

pub struct EmbeddingCache<K, V> {
    capacity: usize,
    /// Most recently used first.
    entries: VecDeque<(K, V)>,
}

impl<K: PartialEq, V> EmbeddingCache<K, V> {
    pub fn new(capacity: usize) -> Self {
        Self { capacity: capacity.max(1), entries: VecDeque::new() }
    }

    pub fn contains(&self, key: &K) -> bool {
        self.entries.iter().any(|(k, _)| k == key)
    }

    /// The entry for `key`, now the most recently used.
    pub fn get(&mut self, key: &K) -> Option<&V> {
        let index = self.entries.iter().position(|(k, _)| k == key)?;
        let entry = self.entries.remove(index)?;
        self.entries.push_front(entry);
        self.entries.front().map(|(_, v)| v)
    }

    /// Keeps `value` as the most recently used, dropping the least recently used when full.
    pub fn insert(&mut self, key: K, value: V) {
        self.entries.retain(|(k, _)| *k != key);
        self.entries.push_front((key, value));
        self.entries.truncate(self.capacity);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn least_recently_used_goes_first() {
        let mut cache = EmbeddingCache::new(2);
        cache.insert("a", 1);
        cache.insert("b", 2);
        assert_eq!(cache.get(&"a"), Some(&1));
        cache.insert("c", 3);
        assert!(cache.contains(&"a") && cache.contains(&"c"));
        assert!(!cache.contains(&"b"), "b was used least recently");
        cache.insert("a", 4);
        assert_eq!(cache.entries.len(), 2, "a key is kept once");
        assert_eq!(cache.get(&"a"), Some(&4));
        assert_eq!(cache.get(&"b"), None);
    }
}
