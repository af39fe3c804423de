//! Applying image layers in memory, as a runtime unpacks them: whiteouts, opaque
//! directories, hard links, capability xattrs from PAX headers, normalised member names;
//! each blob hashed as it is read.

use super::*;
use crate::manifest::{Entry, Kind, Manifest};
use crate::walk::Limits;
use flate2::read::GzDecoder;
use sha2::{Digest as _, Sha256};
use std::collections::{BTreeMap, HashSet};
use std::io::{self, Read};
use std::path::Path;

/// A reader that hashes what passes through it.
pub(super) struct Hashing<R> {
    pub(super) inner: R,
    pub(super) hasher: Sha256,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

pub(super) fn drain<R: Read>(r: &mut R) -> io::Result<()> {
    io::copy(r, &mut io::sink()).map(|_| ())
}

pub(super) struct Tree<'a> {
    pub(super) path: &'a Path,
    pub(super) limits: Limits,
    pub(super) nodes: BTreeMap<Vec<u8>, Node>,
    pub(super) bytes: u64,
    pub(super) next_inode: u64,
}

#[derive(Clone)]
pub(super) struct Node {
    pub(super) mode: u32,
    pub(super) uid: u32,
    pub(super) gid: u32,
    pub(super) kind: Kind,
    /// Which file this is: hard links share it (0 for directories and other non-files).
    pub(super) inode: u64,
}

impl<'a> Tree<'a> {
    pub(super) fn new(path: &'a Path, limits: Limits) -> Tree<'a> {
        Tree { path, limits, nodes: BTreeMap::new(), bytes: 0, next_inode: 1 }
    }

    pub(super) fn into_manifest(self) -> Manifest {
        Manifest::from_entries(
            self.nodes
                .into_iter()
                .map(|(path, n)| Entry { path, mode: n.mode, uid: n.uid, gid: n.gid, kind: n.kind })
                .collect(),
        )
    }

    pub(super) fn apply_layer(
        &mut self,
        layer: usize,
        blob: Box<dyn Read + '_>,
        blob_digest: Option<&str>,
        diff_id: &str,
    ) -> Result<(), ImageError> {
        let path = self.path;
        let io_err = |source: io::Error| ImageError::Io { path: path.into(), name: format!("layer {layer}"), source };
        let mut outer = Hashing { inner: blob, hasher: Sha256::new() };
        let mut magic = [0u8; 4];
        let mut got = 0;
        while got < 4 {
            let n = outer.read(&mut magic[got..]).map_err(io_err)?;
            if n == 0 {
                break;
            }
            got += n;
        }
        let diff = {
            let head = io::Cursor::new(magic[..got].to_vec()).chain(&mut outer);
            let decompressed: Box<dyn Read + '_> = if got >= 2 && magic[..2] == [0x1f, 0x8b] {
                Box::new(GzDecoder::new(head))
            } else if got == 4 && magic == [0x28, 0xb5, 0x2f, 0xfd] {
                Box::new(zstd::stream::read::Decoder::new(head).map_err(io_err)?)
            } else {
                Box::new(head)
            };
            let mut inner = Hashing { inner: decompressed, hasher: Sha256::new() };
            {
                let mut ar = tar::Archive::new(&mut inner);
                self.apply_tar(layer, &mut ar)?;
            }
            drain(&mut inner).map_err(io_err)?;
            let Hashing { hasher, .. } = inner;
            format!("sha256:{:x}", hasher.finalize())
        };
        drain(&mut outer).map_err(io_err)?;
        if let Some(expected) = blob_digest {
            let found = format!("sha256:{:x}", outer.hasher.finalize());
            if found != expected {
                return Err(ImageError::Digest {
                    path: path.into(),
                    name: format!("layer {layer}"),
                    expected: expected.into(),
                    found,
                });
            }
        }
        if diff != diff_id {
            return Err(ImageError::Digest {
                path: path.into(),
                name: format!("layer {layer} (uncompressed, diff_id)"),
                expected: diff_id.into(),
                found: diff,
            });
        }
        Ok(())
    }

    pub(super) fn apply_tar<R: Read>(&mut self, layer: usize, ar: &mut tar::Archive<R>) -> Result<(), ImageError> {
        let path = self.path;
        let io_err = |source: io::Error| ImageError::Io { path: path.into(), name: format!("layer {layer}"), source };
        // Paths this layer put in place: an opaque marker only clears what lower layers had.
        let mut added: HashSet<Vec<u8>> = HashSet::new();
        for entry in ar.entries().map_err(io_err)? {
            let mut e = entry.map_err(io_err)?;
            let raw = e.path_bytes().into_owned();
            let shown = crate::manifest::display_path(&raw);
            let bad = |what: String| ImageError::Entry { path: path.into(), layer, entry: shown.clone(), what };
            let p = normalise(&raw).map_err(|w| bad(w.into()))?;
            if self.nodes.len() as u64 >= self.limits.max_entries {
                return Err(ImageError::Limit {
                    path: path.into(),
                    what: "too many entries".into(),
                    key: "max_entries",
                });
            }
            if p.len() as u64 > self.limits.max_path_bytes {
                return Err(ImageError::Limit {
                    path: path.into(),
                    what: format!("path of {} bytes", p.len()),
                    key: "max_path_bytes",
                });
            }
            if p.iter().filter(|&&b| b == b'/').count() as u64 > self.limits.max_depth as u64 {
                return Err(ImageError::Limit { path: path.into(), what: "nesting too deep".into(), key: "max_depth" });
            }
            let (parent, base) = split(&p);
            // Whiteouts (step 2 and 3).
            if let Some(name) = base.strip_prefix(b".wh.") {
                if base == b".wh..wh..opq" {
                    added.extend(self.check_parents(&p).map_err(&bad)?);
                    let lower: Vec<Vec<u8>> =
                        self.children(parent).into_iter().filter(|c| !added.contains(c)).collect();
                    for c in lower {
                        self.nodes.remove(&c);
                    }
                    continue;
                }
                if name.starts_with(b".wh.") {
                    continue; // aufs metadata (.wh..wh.plnk, .wh..wh.aufs)
                }
                if name.is_empty() || name == b"." || name == b".." {
                    return Err(bad("whiteout of nothing, of . or of .. (a whiteout of the root)".into()));
                }
                let mut target = parent.to_vec();
                target.push(b'/');
                target.extend_from_slice(name);
                if added.contains(&target) {
                    return Err(bad(
                        "whiteout of an entry this same layer added (whiteouts apply to lower layers)".into()
                    ));
                }
                self.remove_subtree(&target);
                continue;
            }
            let header = e.header();
            let mode = header.mode().map_err(io_err)? & 0o7777;
            let uid = u32::try_from(header.uid().map_err(io_err)?).map_err(|_| bad("uid out of range".into()))?;
            let gid = u32::try_from(header.gid().map_err(io_err)?).map_err(|_| bad("gid out of range".into()))?;
            let et = header.entry_type();
            if p.is_empty() {
                if et.is_dir() {
                    continue; // the root directory's metadata is not part of the digest
                }
                return Err(bad("replaces the root directory".into()));
            }
            // Parents this layer had to create are this layer's too (an opaque marker later in
            // the same layer must not remove them from under their children).
            added.extend(self.check_parents(&p).map_err(&bad)?);
            let kind = match et {
                tar::EntryType::Directory => Kind::Dir,
                tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                    let cap = e
                        .pax_extensions()
                        .map_err(io_err)?
                        .and_then(|exts| {
                            exts.filter_map(Result::ok)
                                .find(|x| x.key_bytes() == CAP_PAX)
                                .map(|x| x.value_bytes().to_vec())
                        })
                        .filter(|v| !v.is_empty());
                    let size = e.size();
                    self.bytes = self.bytes.saturating_add(size);
                    if self.bytes > self.limits.max_total_bytes {
                        return Err(ImageError::Limit {
                            path: path.into(),
                            what: format!("more than {} bytes of file content", self.limits.max_total_bytes),
                            key: "max_total_bytes",
                        });
                    }
                    let mut h = Hashing { inner: &mut e, hasher: Sha256::new() };
                    let n = io::copy(&mut h, &mut io::sink()).map_err(io_err)?;
                    if n != size {
                        return Err(bad(format!("has {n} bytes of content, its header says {size}")));
                    }
                    Kind::File { size, sha256: h.hasher.finalize().into(), cap }
                }
                tar::EntryType::Symlink => {
                    let target = e.link_name_bytes().map(|b| b.into_owned()).unwrap_or_default();
                    if target.is_empty() {
                        return Err(bad("symlink with an empty target".into()));
                    }
                    Kind::Symlink { target }
                }
                tar::EntryType::Link => {
                    let target = e.link_name_bytes().map(|b| b.into_owned()).unwrap_or_default();
                    let t = normalise(&target).map_err(|w| bad(format!("hard link target: {w}")))?;
                    match self.nodes.get(&t) {
                        Some(n) if matches!(n.kind, Kind::File { .. }) => {
                            // containerd and podman (moby's archive code) link, then chown and
                            // chmod the new path with the link header's owner and mode: that
                            // changes the one inode every link shares. PAX xattrs likewise.
                            let mut n = n.clone();
                            n.mode = mode;
                            n.uid = uid;
                            n.gid = gid;
                            let cap = pax_cap(&mut e).map_err(io_err)?;
                            if let (Some(c), Kind::File { cap: slot, .. }) = (cap, &mut n.kind) {
                                *slot = Some(c);
                            }
                            let inode = n.inode;
                            for other in self.nodes.values_mut().filter(|o| o.inode == inode && inode != 0) {
                                other.mode = n.mode;
                                other.uid = n.uid;
                                other.gid = n.gid;
                                other.kind = n.kind.clone();
                            }
                            self.replace(&p, n);
                            added.insert(p);
                            continue;
                        }
                        Some(n) => {
                            return Err(bad(format!(
                                "hard link to {}, a {}: rootseal accepts hard links to regular files only",
                                crate::manifest::display_path(&target),
                                n.kind.name()
                            )))
                        }
                        None => {
                            return Err(bad(format!(
                                "hard link to {}, which is not in the image so far (a link pointing outside)",
                                crate::manifest::display_path(&target)
                            )))
                        }
                    }
                }
                tar::EntryType::Char | tar::EntryType::Block => {
                    let major = header.device_major().map_err(io_err)?.unwrap_or(0) as u64;
                    let minor = header.device_minor().map_err(io_err)?.unwrap_or(0) as u64;
                    if et == tar::EntryType::Char {
                        Kind::CharDev { major, minor }
                    } else {
                        Kind::BlockDev { major, minor }
                    }
                }
                tar::EntryType::Fifo => Kind::Fifo,
                other => return Err(bad(format!("unsupported tar entry type {other:?}"))),
            };
            let inode = if matches!(kind, Kind::File { .. }) {
                self.next_inode += 1;
                self.next_inode
            } else {
                0
            };
            self.replace(&p, Node { mode, uid, gid, kind, inode });
            added.insert(p);
        }
        Ok(())
    }

    /// Creates missing parents as 0755 root:root directories; a parent that exists and is not a
    /// directory is an error (step 4).
    /// Makes sure every ancestor of `p` is a directory, creating missing ones; returns those it
    /// created.
    pub(super) fn check_parents(&mut self, p: &[u8]) -> Result<Vec<Vec<u8>>, String> {
        let mut created = Vec::new();
        let mut i = 1;
        while let Some(pos) = p[i..].iter().position(|&b| b == b'/') {
            let anc = &p[..i + pos];
            match self.nodes.get(anc) {
                Some(n) if n.kind == Kind::Dir => {}
                Some(n) => {
                    return Err(format!(
                        "its parent {} is a {} in a lower layer, not a directory",
                        crate::manifest::display_path(anc),
                        n.kind.name()
                    ))
                }
                None => {
                    self.nodes.insert(anc.to_vec(), Node { mode: 0o755, uid: 0, gid: 0, kind: Kind::Dir, inode: 0 });
                    created.push(anc.to_vec());
                }
            }
            i += pos + 1;
        }
        Ok(created)
    }

    pub(super) fn replace(&mut self, p: &[u8], n: Node) {
        let dir_over_dir = n.kind == Kind::Dir && self.nodes.get(p).is_some_and(|o| o.kind == Kind::Dir);
        if !dir_over_dir {
            self.remove_subtree(p);
        }
        self.nodes.insert(p.to_vec(), n);
    }

    pub(super) fn children(&self, dir: &[u8]) -> Vec<Vec<u8>> {
        let mut lo = dir.to_vec();
        lo.push(b'/');
        let mut hi = dir.to_vec();
        hi.push(b'/' + 1);
        self.nodes.range(lo..hi).map(|(k, _)| k.clone()).collect()
    }

    pub(super) fn remove_subtree(&mut self, p: &[u8]) {
        self.nodes.remove(p);
        for c in self.children(p) {
            self.nodes.remove(&c);
        }
    }
}

/// The `security.capability` xattr a PAX header carries for this entry, if any.
pub(super) fn pax_cap<R: Read>(e: &mut tar::Entry<'_, R>) -> io::Result<Option<Vec<u8>>> {
    Ok(e.pax_extensions()?
        .and_then(|exts| {
            exts.filter_map(Result::ok).find(|x| x.key_bytes() == CAP_PAX).map(|x| x.value_bytes().to_vec())
        })
        .filter(|v| !v.is_empty()))
}

/// Step 1: `./a/b/` → `/a/b`; the root is empty; absolute paths and `..` are errors.
pub(super) fn normalise(raw: &[u8]) -> Result<Vec<u8>, &'static str> {
    if raw.first() == Some(&b'/') {
        return Err("absolute path");
    }
    let mut out = Vec::with_capacity(raw.len() + 1);
    for c in raw.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return Err("path has a .. component"),
            c => {
                out.push(b'/');
                out.extend_from_slice(c);
            }
        }
    }
    Ok(out)
}

pub(super) fn split(p: &[u8]) -> (&[u8], &[u8]) {
    match p.iter().rposition(|&b| b == b'/') {
        Some(i) => (&p[..i], &p[i + 1..]),
        None => (&p[..0], p),
    }
}

/// The manifest of uncompressed tar layers applied in order, with the rules above (whiteouts,
/// opaque directories, hard links, limits) and no digests to check: the layer reader on its
/// own, for the `layer` fuzz target and for tests.
pub fn manifest_from_layers(layers: &[&[u8]], limits: &Limits) -> Result<Manifest, ImageError> {
    let mut tree = Tree::new(Path::new("<layers>"), *limits);
    for (i, layer) in layers.iter().enumerate() {
        tree.apply_tar(i + 1, &mut tar::Archive::new(*layer))?;
    }
    Ok(tree.into_manifest())
}
