//! The binary form of a layer record's skeleton (the verified tree's directories and
//! symlinks, [`super::skeleton`]), stored after the record's JSON line: parsing it as manifest
//! text cost a millisecond per start.

use crate::manifest::{Entry, Kind, Manifest};

/// Why a record's binary skeleton does not decode (only authenticated bytes reach it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SkeletonError {
    #[error("truncated")]
    Truncated,
    #[error("unknown kind {tag}")]
    UnknownKind { tag: u8 },
    #[error("paths out of order")]
    OutOfOrder,
}

/// The skeleton as records of: kind (u8), mode, uid, gid (u32 LE), path (u32 LE length, bytes),
/// then per kind: a symlink's target (length, bytes); a file's size (u64 LE), SHA-256 and
/// capability (length, bytes; u32::MAX for none); a device's major and minor (u64 LE).
pub(super) fn encode_skeleton(m: &Manifest, out: &mut Vec<u8>) {
    let bytes = |out: &mut Vec<u8>, b: &[u8]| {
        out.extend_from_slice(&(b.len() as u32).to_le_bytes());
        out.extend_from_slice(b);
    };
    for e in m.entries() {
        let tag: u8 = match e.kind {
            Kind::Dir => 0,
            Kind::Symlink { .. } => 1,
            Kind::File { .. } => 2,
            Kind::CharDev { .. } => 3,
            Kind::BlockDev { .. } => 4,
            Kind::Fifo => 5,
            Kind::Socket => 6,
        };
        out.push(tag);
        for v in [e.mode, e.uid, e.gid] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        bytes(out, &e.path);
        match &e.kind {
            Kind::Symlink { target } => bytes(out, target),
            Kind::File { size, sha256, cap } => {
                out.extend_from_slice(&size.to_le_bytes());
                out.extend_from_slice(sha256);
                match cap {
                    Some(c) => bytes(out, c),
                    None => out.extend_from_slice(&u32::MAX.to_le_bytes()),
                }
            }
            Kind::CharDev { major, minor } | Kind::BlockDev { major, minor } => {
                out.extend_from_slice(&major.to_le_bytes());
                out.extend_from_slice(&minor.to_le_bytes());
            }
            Kind::Dir | Kind::Fifo | Kind::Socket => {}
        }
    }
}

/// Reads [`encode_skeleton`]'s records back; the paths must ascend strictly, as in any
/// manifest. Only authenticated bytes (the record's HMAC) reach it; bounded all the same.
pub(super) fn decode_skeleton(mut b: &[u8]) -> Result<Manifest, SkeletonError> {
    fn take<'a>(b: &mut &'a [u8], n: usize) -> Result<&'a [u8], SkeletonError> {
        if b.len() < n {
            return Err(SkeletonError::Truncated);
        }
        let (head, rest) = b.split_at(n);
        *b = rest;
        Ok(head)
    }
    fn u32_(b: &mut &[u8]) -> Result<u32, SkeletonError> {
        Ok(u32::from_le_bytes(take(b, 4)?.try_into().expect("4 bytes")))
    }
    fn u64_(b: &mut &[u8]) -> Result<u64, SkeletonError> {
        Ok(u64::from_le_bytes(take(b, 8)?.try_into().expect("8 bytes")))
    }
    fn bytes(b: &mut &[u8]) -> Result<Vec<u8>, SkeletonError> {
        let n = u32_(b)? as usize;
        Ok(take(b, n)?.to_vec())
    }
    let mut entries: Vec<Entry> = Vec::new();
    while !b.is_empty() {
        let tag = take(&mut b, 1)?[0];
        let (mode, uid, gid) = (u32_(&mut b)?, u32_(&mut b)?, u32_(&mut b)?);
        let path = bytes(&mut b)?;
        let kind = match tag {
            0 => Kind::Dir,
            1 => Kind::Symlink { target: bytes(&mut b)? },
            2 => {
                let size = u64_(&mut b)?;
                let sha256: [u8; 32] = take(&mut b, 32)?.try_into().expect("32 bytes");
                let cap = match u32_(&mut b)? {
                    u32::MAX => None,
                    n => Some(take(&mut b, n as usize)?.to_vec()),
                };
                Kind::File { size, sha256, cap }
            }
            3 => Kind::CharDev { major: u64_(&mut b)?, minor: u64_(&mut b)? },
            4 => Kind::BlockDev { major: u64_(&mut b)?, minor: u64_(&mut b)? },
            5 => Kind::Fifo,
            6 => Kind::Socket,
            tag => return Err(SkeletonError::UnknownKind { tag }),
        };
        if entries.last().is_some_and(|l| l.path >= path) {
            return Err(SkeletonError::OutOfOrder);
        }
        entries.push(Entry { path, mode, uid, gid, kind });
    }
    Ok(Manifest::from_entries(entries))
}
