//! The tree as it is now, for comparing with a seal ([`super::compare`]): the rootfs walked
//! through the verification cache (src/tree/cache.rs). The hook makes this walk at start and
//! the monitor while the container runs; both come here, so the cache is consulted, refreshed
//! and saved the same way on both paths.

use crate::cache::{self, Cache, CacheError, RootId};
use crate::walk::{self, WalkError, Walked};
use std::os::fd::OwnedFd;
use std::path::Path;

/// Where a rootfs's cache lives and which root it belongs to.
pub struct CacheSlot<'a> {
    pub cache_dir: &'a Path,
    /// The rootfs path the cache file is named after.
    pub rootfs: &'a Path,
    /// The identity of the root being walked; None: no cache (`verify = "full"`, or a root
    /// whose identity cannot be taken).
    pub root: Option<RootId>,
}

/// A walk and what became of the cache.
pub struct Scanned {
    pub walked: Walked,
    /// The cache that now describes the tree (the new one, else the one consulted when the
    /// walk hashed nothing); None without a cache.
    pub cache: Option<Cache>,
    /// The new cache could not be saved: it only costs speed next time, so this is a warning.
    pub save_error: Option<CacheError>,
}

/// Walks the opened rootfs `fd` with `opts` (its limits, deadline, pruning and expected
/// manifest), reading unchanged files from `prior` (a cache kept in memory) or, when there is
/// none, from the cache file; then saves the new cache. `opts.cache` and `opts.want_cache`
/// are set here.
pub fn walk(
    slot: &CacheSlot<'_>,
    fd: OwnedFd,
    prior: Option<Cache>,
    opts: walk::Options<'_>,
) -> Result<Scanned, WalkError> {
    let Some(root) = &slot.root else {
        let walked = walk::walk_cached(slot.rootfs, fd, &walk::Options { cache: None, want_cache: false, ..opts })?;
        return Ok(Scanned { walked, cache: None, save_error: None });
    };
    let prior = prior.unwrap_or_else(|| cache::load(slot.cache_dir, slot.rootfs, root).0);
    let mut walked =
        walk::walk_cached(slot.rootfs, fd, &walk::Options { cache: Some(&prior), want_cache: true, ..opts })?;
    let (cache, save_error) = match walked.cache.take() {
        Some(new) => {
            // The old cache is dropped before the new one is written: the hook's peak memory
            // holds one cache, not two.
            drop(prior);
            let saved = cache::save(slot.cache_dir, slot.rootfs, root, &new).err();
            (new, saved)
        }
        None => (prior, None),
    };
    Ok(Scanned { walked, cache: Some(cache), save_error })
}
