//! Where the GPU backends keep what they work out on first use: cubecl's autotune results (which
//! kernel variant is fastest for each shape) and its compiled kernels (SPIR-V for Vulkan, PTX for
//! CUDA). Left alone, cubecl writes the autotune results under `./target` of the current folder
//! and compiles every kernel again at each start; an installed app has no such folder, so each
//! start paid the whole warm-up again. With this, a restart reads both back from the user's cache
//! folder.

use std::path::{Path, PathBuf};
use std::sync::Once;

use burn::cubecl::config::cache::CacheConfig;
use burn::cubecl::config::{CubeClRuntimeConfig, RuntimeConfig};

/// `<user cache folder>/delightsam/gpu-kernels` (`~/.cache/…` on Linux).
pub fn default_dir() -> PathBuf {
    directories::ProjectDirs::from("org", "De-LightSAM", "delightsam")
        .map(|d| d.cache_dir().join("gpu-kernels"))
        .unwrap_or_else(|| std::env::temp_dir().join("delightsam-gpu-kernels"))
}

/// Points cubecl's autotune and kernel caches at `dir` (cubecl's `CUBECL_*` environment
/// variables still apply). Takes effect only before the first GPU device starts: call it first
/// thing; later calls do nothing. True when this call set it.
pub fn persist_in(dir: &Path) -> bool {
    static ONCE: Once = Once::new();
    let mut done = false;
    ONCE.call_once(|| {
        // Already read by a device that started first: cubecl's configuration cannot change now.
        let unset = CubeClRuntimeConfig::storage().lock().is_none();
        if !unset {
            return;
        }
        let mut config = CubeClRuntimeConfig::default().override_from_env();
        config.autotune.cache = CacheConfig::File(dir.to_path_buf());
        config.compilation.cache = Some(CacheConfig::File(dir.to_path_buf()));
        // A device starting on another thread in between would make `set` panic: then its
        // defaults stay, which is only slower.
        done = std::panic::catch_unwind(|| CubeClRuntimeConfig::set(config)).is_ok();
    });
    done
}
