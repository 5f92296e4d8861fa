//! The embedding cache of the fast recipe: one file per (image content, modality slot) under a
//! folder per encoder version, stored as f16 (2 MB per 256×64×64 embedding), written atomically.

use std::path::{Path, PathBuf};

/// Where embeddings are cached unless the caller says otherwise.
pub fn default_root() -> PathBuf {
    directories::ProjectDirs::from("org", "De-LightSAM", "delightsam")
        .map(|d| d.cache_dir().join("embeddings"))
        .unwrap_or_else(|| std::env::temp_dir().join("delightsam-embeddings"))
}

/// A short content hash of a file (hex).
pub fn file_hash(path: &Path) -> std::io::Result<String> {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&std::fs::read(path)?);
    Ok(hasher.finalize().to_hex()[..32].to_string())
}

pub struct EmbeddingCache {
    dir: PathBuf,
}

impl EmbeddingCache {
    /// `encoder_version` names the encoder's weights (e.g. the hash of its record): embeddings
    /// of another encoder are never mixed in.
    pub fn open(root: &Path, encoder_version: &str) -> std::io::Result<Self> {
        let dir = root.join(encoder_version);
        std::fs::create_dir_all(&dir)?;
        Ok(Self { dir })
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.f16"))
    }

    /// The cached embedding, if present and of the expected length.
    pub fn get(&self, key: &str, len: usize) -> Option<Vec<f32>> {
        let bytes = std::fs::read(self.path(key)).ok()?;
        (bytes.len() == len * 2).then(|| {
            bytes.chunks_exact(2).map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()).collect()
        })
    }

    pub fn put(&self, key: &str, values: &[f32]) -> std::io::Result<()> {
        let bytes: Vec<u8> = values.iter().flat_map(|v| half::f16::from_f32(*v).to_le_bytes()).collect();
        crate::imaging::write_atomic(&self.path(key), &bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_within_f16_precision() {
        let dir = tempfile::tempdir().unwrap();
        let cache = EmbeddingCache::open(dir.path(), "v1").unwrap();
        let values: Vec<f32> = (0..100).map(|i| (i as f32 - 50.0) * 0.037).collect();
        assert!(cache.get("k", 100).is_none());
        cache.put("k", &values).unwrap();
        let back = cache.get("k", 100).unwrap();
        assert!(values.iter().zip(&back).all(|(a, b)| (a - b).abs() <= a.abs() * 1e-3 + 1e-4));
        assert!(cache.get("k", 99).is_none(), "a length mismatch is a miss");
        assert!(EmbeddingCache::open(dir.path(), "v2").unwrap().get("k", 100).is_none());
    }
}
