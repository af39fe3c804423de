//! The image layer reader (docs/image.md, src/image.rs): 1 to 3 uncompressed tar layers, split at
//! a separator, applied in order (whiteouts, opaque directories, hard links, limits). Never
//! panics; a manifest it gives is a tree: sorted, unique, clean paths below the root whose
//! parents are directories, and it round-trips through its canonical form.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rootseal::image::manifest_from_layers;
use rootseal::manifest::Kind;
use rootseal::walk::Limits;
use rootseal_fuzz::{check_manifest, is_clean, split_layers};

fuzz_target!(|data: &[u8]| {
    let layers = split_layers(data);
    // Small limits, so that the fuzzer reaches them.
    let limits = Limits { max_depth: 16, max_entries: 256, max_path_bytes: 512, max_total_bytes: 1 << 20 };
    let Ok(m) = manifest_from_layers(&layers, &limits) else { return };
    check_manifest(&m);
    assert!(m.len() as u64 <= limits.max_entries + u64::from(limits.max_depth), "{} entries", m.len());
    for e in m.entries() {
        assert!(is_clean(&e.path), "unclean path {:?}", e.path);
        assert!(e.path.len() as u64 <= limits.max_path_bytes, "path of {} bytes", e.path.len());
        let parent = &e.path[..e.path.iter().rposition(|&b| b == b'/').unwrap_or(0)];
        if !parent.is_empty() {
            let p = m.get(parent).unwrap_or_else(|| panic!("{:?} has no parent entry", e.path));
            assert_eq!(p.kind, Kind::Dir, "the parent of {:?} is not a directory", e.path);
        }
        if let Kind::Symlink { target } = &e.kind {
            assert!(!target.is_empty(), "symlink {:?} with an empty target", e.path);
        }
    }
});
