//! The manifest: the canonical, per-entry description of a root filesystem, and its digest.
//!
//! The text format is specified in docs/digest.md (version 1). The tree digest is the SHA-256
//! of the manifest's canonical bytes, so a seal that carries the manifest binds every entry.

use sha2::{Digest as _, Sha256};
use std::fmt::Write as _;

/// The first line of every version 1 manifest.
pub const HEADER: &str = "rootseal-manifest v1";
/// The digest specification version this build writes and reads.
pub const DIGEST_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("manifest line {line}: {what}")]
    Parse { line: usize, what: String },
    #[error("manifest header is {found:?}, expected {HEADER:?}; this build reads digest spec v{DIGEST_VERSION} only")]
    Header { found: String },
    #[error("manifest line {line}: path {path} is out of order or repeated (entries are sorted by raw path bytes)")]
    Order { line: usize, path: String },
    #[error("manifest line {line}: {error}")]
    Entry { line: usize, error: ManifestParseError },
}

/// Why one manifest line (an entry) or one escaped path does not parse (docs/digest.md). The
/// text is the "what" of "manifest line N: what".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestParseError {
    #[error("truncated %-escape")]
    TruncatedEscape,
    #[error("bad %-escape %{escape}")]
    BadEscape { escape: String },
    #[error("non-canonical escape %{escape}")]
    NonCanonicalEscape { escape: String },
    #[error("unescaped byte 0x{byte:02x}")]
    UnescapedByte { byte: u8 },
    #[error("empty line")]
    EmptyLine,
    #[error("path must start with / and name an entry below the root")]
    PathNotBelowRoot,
    #[error("path {path} is not clean (empty, . or .. component)")]
    PathNotClean { path: String },
    /// A positional field: `type`, `mode`, `uid`, `gid`.
    #[error("missing {field}")]
    MissingField { field: &'static str },
    /// A `key=value` field: `size`, `sha256`, `target`, `dev`.
    #[error("missing {key}=")]
    MissingKey { key: &'static str },
    #[error("expected {key}=, found {found:?}")]
    ExpectedKey { key: &'static str, found: String },
    #[error("mode {mode:?} is not 4 octal digits")]
    ModeNotOctal { mode: String },
    #[error("bad mode {mode:?}")]
    BadMode { mode: String },
    #[error("mode has bits beyond 07777")]
    ModeTooWide,
    #[error("bad number {number:?}")]
    BadNumber { number: String },
    #[error("number {number} too large")]
    NumberTooLarge { number: String },
    #[error("bad sha256")]
    BadSha256,
    #[error("bad cap=")]
    BadCap,
    #[error("dev= needs major,minor")]
    DevNotPair,
    #[error("unknown type {kind:?}")]
    UnknownType { kind: String },
    #[error("trailing fields")]
    TrailingFields,
}

/// What kind of filesystem object an entry is, with the data that identifies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    File { size: u64, sha256: [u8; 32], cap: Option<Vec<u8>> },
    Dir,
    Symlink { target: Vec<u8> },
    CharDev { major: u64, minor: u64 },
    BlockDev { major: u64, minor: u64 },
    Fifo,
    Socket,
}

impl Kind {
    pub fn letter(&self) -> char {
        match self {
            Kind::File { .. } => 'f',
            Kind::Dir => 'd',
            Kind::Symlink { .. } => 'l',
            Kind::CharDev { .. } => 'c',
            Kind::BlockDev { .. } => 'b',
            Kind::Fifo => 'p',
            Kind::Socket => 's',
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Kind::File { .. } => "regular file",
            Kind::Dir => "directory",
            Kind::Symlink { .. } => "symlink",
            Kind::CharDev { .. } => "character device",
            Kind::BlockDev { .. } => "block device",
            Kind::Fifo => "fifo",
            Kind::Socket => "socket",
        }
    }
}

/// One entry of the tree. `path` is absolute within the tree ("/bin/sh"), raw bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub path: Vec<u8>,
    /// Permission bits including setuid, setgid and sticky (`st_mode & 0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub kind: Kind,
}

/// The sorted list of entries of a tree (the root directory itself is not an entry).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Manifest {
    entries: Vec<Entry>,
}

impl Manifest {
    /// Builds a manifest from entries in any order; sorts them by raw path bytes.
    ///
    /// A manifest lives as long as a verification, next to a second one, so spare capacity is
    /// returned here, the list's and each entry's: a walk reads every symlink target into a
    /// buffer of the longest allowed path (4 KiB), 8 MiB for the 2 000 symlinks of the
    /// 100 000-file benchmark tree. Trimmed, the rest of each buffer is reused.
    pub fn from_entries(mut entries: Vec<Entry>) -> Manifest {
        entries.sort_unstable_by(|a, b| a.path.cmp(&b.path));
        entries.dedup_by(|a, b| a.path == b.path);
        entries.shrink_to_fit();
        for e in &mut entries {
            e.path.shrink_to_fit();
            match &mut e.kind {
                Kind::Symlink { target } => target.shrink_to_fit(),
                Kind::File { cap: Some(cap), .. } => cap.shrink_to_fit(),
                _ => {}
            }
        }
        Manifest { entries }
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Total size of regular files, counting each hard link again (as the digest does).
    pub fn file_bytes(&self) -> u64 {
        self.entries.iter().map(|e| if let Kind::File { size, .. } = e.kind { size } else { 0 }).sum()
    }

    pub fn get(&self, path: &[u8]) -> Option<&Entry> {
        self.entries.binary_search_by(|e| e.path.as_slice().cmp(path)).ok().map(|i| &self.entries[i])
    }

    /// True when any entry lies strictly below `path` (a non-empty directory).
    pub fn has_below(&self, path: &[u8]) -> bool {
        let mut prefix = path.to_vec();
        prefix.push(b'/');
        let i = self.entries.partition_point(|e| e.path.as_slice() < prefix.as_slice());
        self.entries.get(i).is_some_and(|e| e.path.starts_with(&prefix))
    }

    /// Keeps only the entries for which `keep` says true.
    pub fn filtered(&self, mut keep: impl FnMut(&Entry) -> bool) -> Manifest {
        Manifest { entries: self.entries.iter().filter(|e| keep(e)).cloned().collect() }
    }

    /// The canonical bytes (docs/digest.md): header line, then one line per entry.
    pub fn to_canonical(&self) -> Vec<u8> {
        let mut out = String::with_capacity(64 + self.entries.len() * 120);
        out.push_str(HEADER);
        out.push('\n');
        for e in &self.entries {
            write_entry(&mut out, e);
        }
        out.into_bytes()
    }

    /// `sha256:<hex>` of the canonical bytes, hashed as they are produced (no copy of the
    /// whole text).
    pub fn digest(&self) -> TreeDigest {
        let mut h = Sha256::new();
        h.update(HEADER.as_bytes());
        h.update(b"\n");
        let mut line = String::with_capacity(256);
        for e in &self.entries {
            line.clear();
            write_entry(&mut line, e);
            h.update(line.as_bytes());
        }
        TreeDigest(h.finalize().into())
    }

    /// Parses canonical bytes, insisting they are canonical: sorted, unique, well formed.
    pub fn parse(bytes: &[u8]) -> Result<Manifest, ManifestError> {
        let (m, _) = Manifest::parse_reader(bytes, u64::MAX, 0)?;
        debug_assert_eq!(m.to_canonical(), bytes);
        Ok(m)
    }

    /// Parses a canonical manifest from a stream, one line at a time, and returns it with its
    /// tree digest (the SHA-256 of exactly the bytes read): the canonical text is never held
    /// whole. At most `max` bytes are read. Same checks as [`Manifest::parse`]. `expect` is
    /// how many entries the caller expects (a hint, capped), so the list is allocated once.
    pub fn parse_reader<R: std::io::BufRead>(
        mut r: R,
        max: u64,
        expect: u64,
    ) -> Result<(Manifest, TreeDigest), ManifestError> {
        use std::io::{BufRead as _, Read as _};
        let mut h = Sha256::new();
        let mut line = Vec::with_capacity(256);
        let mut total: u64 = 0;
        // The hint comes from an unsigned field: capped, so a lie costs little.
        let mut entries: Vec<Entry> = Vec::with_capacity(expect.min(max / 16).min(1 << 18) as usize);
        let mut n = 0usize;
        loop {
            line.clear();
            let got = r
                .by_ref()
                .take(max.saturating_sub(total).saturating_add(1))
                .read_until(b'\n', &mut line)
                .map_err(|e| ManifestError::Parse { line: n + 1, what: format!("read: {e}") })?;
            if got == 0 {
                break;
            }
            total += got as u64;
            if total > max {
                return Err(ManifestError::Parse { line: n + 1, what: format!("larger than {max} bytes") });
            }
            n += 1;
            h.update(&line);
            if line.last() != Some(&b'\n') {
                return Err(ManifestError::Parse { line: 0, what: "missing final newline".into() });
            }
            let text = std::str::from_utf8(&line[..line.len() - 1])
                .map_err(|e| ManifestError::Parse { line: n, what: format!("not ASCII text: {e}") })?;
            if n == 1 {
                if text != HEADER {
                    return Err(ManifestError::Header { found: text.chars().take(40).collect() });
                }
                continue;
            }
            let e = parse_entry(text).map_err(|error| ManifestError::Entry { line: n, error })?;
            if let Some(prev) = entries.last() {
                if prev.path >= e.path {
                    return Err(ManifestError::Order { line: n, path: display_path(&e.path) });
                }
            }
            entries.push(e);
        }
        if n == 0 {
            return Err(ManifestError::Header { found: String::new() });
        }
        entries.shrink_to_fit();
        Ok((Manifest { entries }, TreeDigest(h.finalize().into())))
    }
}

/// A tree digest: SHA-256 over the canonical manifest.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TreeDigest(pub [u8; 32]);

impl TreeDigest {
    pub fn hex(&self) -> String {
        hex(&self.0)
    }

    /// Parses `sha256:<64 lowercase hex>` (the `sha256:` prefix may be omitted).
    pub fn parse(s: &str) -> Option<TreeDigest> {
        let h = s.strip_prefix("sha256:").unwrap_or(s);
        parse_hex32(h).map(TreeDigest)
    }

    /// `sha256:9c1e2a4b..`, for one-line messages.
    pub fn short(&self) -> String {
        format!("sha256:{}..", &self.hex()[..12])
    }
}

impl std::fmt::Display for TreeDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "sha256:{}", self.hex())
    }
}

impl std::fmt::Debug for TreeDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

pub fn parse_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 || !s.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)) {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok()).collect()
}

pub fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    parse_hex(s)?.try_into().ok()
}

/// Escapes raw bytes for the manifest: bytes 0x21..=0x7e stand for themselves except `%`;
/// every other byte is `%XX` (uppercase hex).
pub fn escape(raw: &[u8], out: &mut String) {
    for &b in raw {
        if (0x21..=0x7e).contains(&b) && b != b'%' {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

pub fn unescape(s: &str) -> Result<Vec<u8>, ManifestParseError> {
    use ManifestParseError as E;
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let h = s.get(i + 1..i + 3).ok_or(E::TruncatedEscape)?;
                let bad = || E::BadEscape { escape: h.into() };
                if !h.bytes().all(|c| c.is_ascii_hexdigit()) {
                    return Err(bad());
                }
                let v = u8::from_str_radix(h, 16).map_err(|_| bad())?;
                if (0x21..=0x7e).contains(&v) && v != b'%' || h.bytes().any(|c| c.is_ascii_lowercase()) {
                    return Err(E::NonCanonicalEscape { escape: h.into() });
                }
                out.push(v);
                i += 3;
            }
            c if (0x21..=0x7e).contains(&c) => {
                out.push(c);
                i += 1;
            }
            byte => return Err(E::UnescapedByte { byte }),
        }
    }
    Ok(out)
}

/// A path for messages: valid UTF-8 printable text as is, anything else escaped so that no
/// control character or terminal escape from image content ever reaches a log or terminal.
pub fn display_path(raw: &[u8]) -> String {
    match std::str::from_utf8(raw) {
        Ok(s) if !s.chars().any(|c| c.is_control() || c == '%') => s.to_string(),
        _ => {
            let mut out = String::new();
            escape(raw, &mut out);
            out
        }
    }
}

fn write_entry(out: &mut String, e: &Entry) {
    escape(&e.path, out);
    let _ = write!(out, " {} {:04o} {} {}", e.kind.letter(), e.mode, e.uid, e.gid);
    match &e.kind {
        Kind::File { size, sha256, cap } => {
            let _ = write!(out, " size={size} sha256={}", hex(sha256));
            if let Some(cap) = cap {
                let _ = write!(out, " cap={}", hex(cap));
            }
        }
        Kind::Symlink { target } => {
            out.push_str(" target=");
            escape(target, out);
        }
        Kind::CharDev { major, minor } | Kind::BlockDev { major, minor } => {
            let _ = write!(out, " dev={major},{minor}");
        }
        Kind::Dir | Kind::Fifo | Kind::Socket => {}
    }
    out.push('\n');
}

fn parse_entry(line: &str) -> Result<Entry, ManifestParseError> {
    use ManifestParseError as E;
    let mut f = line.split(' ');
    let path = unescape(f.next().ok_or(E::EmptyLine)?)?;
    if path.first() != Some(&b'/') || path.len() < 2 {
        return Err(E::PathNotBelowRoot);
    }
    // Only clean paths, as a walk writes them: one spelling per entry.
    if path.ends_with(b"/") || path[1..].split(|&b| b == b'/').any(|c| c.is_empty() || c == b"." || c == b"..") {
        return Err(E::PathNotClean { path: display_path(&path) });
    }
    let missing = |field| E::MissingField { field };
    let kind = f.next().ok_or(missing("type"))?;
    let mode = f.next().ok_or(missing("mode"))?;
    if mode.len() != 4 || !mode.bytes().all(|c| (b'0'..=b'7').contains(&c)) {
        return Err(E::ModeNotOctal { mode: mode.into() });
    }
    let mode = u32::from_str_radix(mode, 8).map_err(|_| E::BadMode { mode: mode.into() })?;
    let uid = parse_u32(f.next().ok_or(missing("uid"))?)?;
    let gid = parse_u32(f.next().ok_or(missing("gid"))?)?;
    let mut field = |key: &'static str| -> Result<&str, ManifestParseError> {
        let v = f.next().ok_or(E::MissingKey { key })?;
        v.strip_prefix(key).and_then(|v| v.strip_prefix('=')).ok_or_else(|| E::ExpectedKey { key, found: v.into() })
    };
    let kind = match kind {
        "f" => {
            let size = parse_u64(field("size")?)?;
            let sha256 = parse_hex32(field("sha256")?).ok_or(E::BadSha256)?;
            let cap = match f.next() {
                None => None,
                Some(v) => Some(v.strip_prefix("cap=").and_then(parse_hex).filter(|c| !c.is_empty()).ok_or(E::BadCap)?),
            };
            Kind::File { size, sha256, cap }
        }
        "d" => Kind::Dir,
        "l" => Kind::Symlink { target: unescape(field("target")?)? },
        "c" | "b" => {
            let (ma, mi) = field("dev")?.split_once(',').ok_or(E::DevNotPair)?;
            let (major, minor) = (parse_u64(ma)?, parse_u64(mi)?);
            if kind == "c" {
                Kind::CharDev { major, minor }
            } else {
                Kind::BlockDev { major, minor }
            }
        }
        "p" => Kind::Fifo,
        "s" => Kind::Socket,
        other => return Err(E::UnknownType { kind: other.into() }),
    };
    if f.next().is_some() {
        return Err(E::TrailingFields);
    }
    if mode > 0o7777 {
        return Err(E::ModeTooWide);
    }
    Ok(Entry { path, mode, uid, gid, kind })
}

fn parse_u64(s: &str) -> Result<u64, ManifestParseError> {
    let bad = || ManifestParseError::BadNumber { number: s.into() };
    if s.is_empty() || (s.len() > 1 && s.starts_with('0')) || !s.bytes().all(|c| c.is_ascii_digit()) {
        return Err(bad());
    }
    s.parse().map_err(|_| bad())
}

fn parse_u32(s: &str) -> Result<u32, ManifestParseError> {
    u32::try_from(parse_u64(s)?).map_err(|_| ManifestParseError::NumberTooLarge { number: s.into() })
}

/// How one path differs between the sealed manifest and the tree on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Added { kind: &'static str },
    Removed { kind: &'static str },
    Type { sealed: &'static str, found: &'static str },
    Content,
    Mode { sealed: u32, found: u32 },
    Owner { sealed: (u32, u32), found: (u32, u32) },
    Target,
    Device,
    Capability { sealed: bool, found: bool },
}

impl Change {
    /// The one-word class operators filter on: added, removed, type, content, mode, owner...
    pub fn class(&self) -> &'static str {
        match self {
            Change::Added { .. } => "added",
            Change::Removed { .. } => "removed",
            Change::Type { .. } => "type",
            Change::Content => "content",
            Change::Mode { .. } => "mode",
            Change::Owner { .. } => "owner",
            Change::Target => "target",
            Change::Device => "device",
            Change::Capability { .. } => "capability",
        }
    }
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Change::Added { kind } => write!(f, "added ({kind}) but not in seal"),
            Change::Removed { kind } => write!(f, "removed ({kind} in seal)"),
            Change::Type { sealed, found } => write!(f, "type changed from {sealed} to {found}"),
            Change::Content => write!(f, "content differs from seal"),
            Change::Mode { sealed, found } => {
                write!(f, "mode changed from {sealed:04o} to {found:04o}")
            }
            Change::Owner { sealed, found } => {
                write!(f, "owner changed from {}:{} to {}:{}", sealed.0, sealed.1, found.0, found.1)
            }
            Change::Target => write!(f, "symlink target differs from seal"),
            Change::Device => write!(f, "device number differs from seal"),
            Change::Capability { sealed: true, found: false } => write!(f, "capability xattr removed"),
            Change::Capability { sealed: false, found: true } => write!(f, "capability xattr added"),
            Change::Capability { .. } => write!(f, "capability xattr differs from seal"),
        }
    }
}

/// One differing path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    pub path: Vec<u8>,
    pub changes: Vec<Change>,
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ", display_path(&self.path))?;
        for (i, c) in self.changes.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{c}")?;
        }
        Ok(())
    }
}

/// Every difference between `sealed` and `found`, in path order.
pub fn diff(sealed: &Manifest, found: &Manifest) -> Vec<Difference> {
    diff_by(sealed, found, |_| true, |_| true)
}

/// Every difference between the entries of `sealed` that `keep_sealed` keeps and the entries
/// of `found` that `keep_found` keeps: one merge pass over the two sorted lists, allocating
/// only for differences.
pub fn diff_by(
    sealed: &Manifest,
    found: &Manifest,
    keep_sealed: impl Fn(&Entry) -> bool,
    keep_found: impl Fn(&Entry) -> bool,
) -> Vec<Difference> {
    let mut s = sealed.entries.iter().filter(|e| keep_sealed(e)).peekable();
    let mut f = found.entries.iter().filter(|e| keep_found(e)).peekable();
    let mut out = Vec::new();
    loop {
        let (path, changes) = match (s.peek().copied(), f.peek().copied()) {
            (None, None) => break,
            (Some(a), Some(b)) if a.path == b.path => {
                let c = compare(a, b);
                let p = &a.path;
                s.next();
                f.next();
                (p, c)
            }
            (Some(a), b) if b.is_none_or(|b| a.path < b.path) => {
                let p = &a.path;
                s.next();
                (p, vec![Change::Removed { kind: a.kind.name() }])
            }
            (_, Some(b)) => {
                let p = &b.path;
                f.next();
                (p, vec![Change::Added { kind: b.kind.name() }])
            }
            (Some(_), None) => unreachable!("handled above"),
        };
        if !changes.is_empty() {
            out.push(Difference { path: path.clone(), changes });
        }
    }
    out
}

fn compare(s: &Entry, f: &Entry) -> Vec<Change> {
    let mut out = Vec::new();
    match (&s.kind, &f.kind) {
        (Kind::File { size: s1, sha256: h1, cap: c1 }, Kind::File { size: s2, sha256: h2, cap: c2 }) => {
            if s1 != s2 || h1 != h2 {
                out.push(Change::Content);
            }
            if c1 != c2 {
                out.push(Change::Capability { sealed: c1.is_some(), found: c2.is_some() });
            }
        }
        (Kind::Symlink { target: t1 }, Kind::Symlink { target: t2 }) => {
            if t1 != t2 {
                out.push(Change::Target);
            }
        }
        (a, b) if std::mem::discriminant(a) != std::mem::discriminant(b) => {
            out.push(Change::Type { sealed: a.name(), found: b.name() });
            return out;
        }
        (a, b) => {
            if a != b {
                out.push(Change::Device);
            }
        }
    }
    if s.mode != f.mode {
        out.push(Change::Mode { sealed: s.mode, found: f.mode });
    }
    if (s.uid, s.gid) != (f.uid, f.gid) {
        out.push(Change::Owner { sealed: (s.uid, s.gid), found: (f.uid, f.gid) });
    }
    out
}

#[cfg(test)]
#[path = "manifest_tests.rs"]
mod tests;
