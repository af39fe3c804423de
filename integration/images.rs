//! Multi-layer OCI archives built by the tests: a busybox base layer, then a layer with a
//! whiteout, an opaque directory, a hard link, a setuid file and a capability xattr.

use sha2::Digest as _;
use std::io::Write;
use std::path::{Path, PathBuf};

/// One layer being written.
pub struct Layer {
    b: tar::Builder<Vec<u8>>,
}

impl Layer {
    pub fn new() -> Layer {
        Layer { b: tar::Builder::new(Vec::new()) }
    }

    fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        h.set_size(size);
        h
    }

    /// A PAX extended header for the next entry (the tar crate's builder has none).
    fn pax(&mut self, name: &str, records: &[(&str, &[u8])]) {
        let mut data = Vec::new();
        for (k, v) in records {
            // "LEN key=value\n", LEN counting itself.
            let body_len = 1 + k.len() + 1 + v.len() + 1;
            let mut len = body_len + 1;
            while len.to_string().len() + body_len != len {
                len = len.to_string().len() + body_len;
            }
            data.extend_from_slice(format!("{len} {k}=").as_bytes());
            data.extend_from_slice(v);
            data.push(b'\n');
        }
        let mut h = Self::header(tar::EntryType::XHeader, 0o644, data.len() as u64);
        h.set_path(format!("PaxHeaders/{}", name.trim_start_matches("./"))).unwrap();
        h.set_cksum();
        self.b.append(&h, data.as_slice()).unwrap();
    }

    pub fn dir(mut self, path: &str, mode: u32) -> Layer {
        let mut h = Self::header(tar::EntryType::Directory, mode, 0);
        self.b.append_data(&mut h, path, std::io::empty()).unwrap();
        self
    }

    pub fn file(mut self, path: &str, mode: u32, data: &[u8]) -> Layer {
        let mut h = Self::header(tar::EntryType::Regular, mode, data.len() as u64);
        self.b.append_data(&mut h, path, data).unwrap();
        self
    }

    pub fn file_with_cap(mut self, path: &str, mode: u32, data: &[u8], cap: &[u8]) -> Layer {
        self.pax(path, &[("SCHILY.xattr.security.capability", cap)]);
        self.file(path, mode, data)
    }

    pub fn symlink(mut self, path: &str, target: &str) -> Layer {
        let mut h = Self::header(tar::EntryType::Symlink, 0o777, 0);
        self.b.append_link(&mut h, path, target).unwrap();
        self
    }

    /// A hard link; `mode` is what the header says (tar writes the shared inode's mode).
    pub fn hardlink(mut self, path: &str, target: &str, mode: u32) -> Layer {
        let mut h = Self::header(tar::EntryType::Link, mode, 0);
        self.b.append_link(&mut h, path, target).unwrap();
        self
    }

    pub fn whiteout(self, path: &str) -> Layer {
        let (dir, base) = path.rsplit_once('/').unwrap_or(("", path));
        let wh = if dir.is_empty() { format!(".wh.{base}") } else { format!("{dir}/.wh.{base}") };
        self.file(&wh, 0o644, b"")
    }

    pub fn opaque(self, dir: &str) -> Layer {
        self.file(&format!("{dir}/.wh..wh..opq"), 0o644, b"")
    }

    pub fn finish(self) -> Vec<u8> {
        self.b.into_inner().unwrap()
    }
}

pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// The busybox base layer.
pub fn busybox_layer() -> Layer {
    let busybox = std::fs::read("/bin/busybox").expect("busybox-static (scripts/setup-host.sh)");
    let mut l = Layer::new().dir("bin", 0o755).file("bin/busybox", 0o755, &busybox);
    for applet in ["sh", "echo", "cat", "ls", "touch", "id", "sleep", "true"] {
        l = l.symlink(&format!("bin/{applet}"), "busybox");
    }
    l.dir("etc", 0o755)
        .file("etc/motd", 0o644, b"hello from layer 1\n")
        .file("etc/passwd", 0o644, b"root:x:0:0:root:/root:/bin/sh\n")
        .dir("opt/old", 0o755)
        .file("opt/old/a", 0o644, b"a")
        .file("opt/old/b", 0o644, b"b")
        .dir("var/cache", 0o755)
        .file("var/cache/removed", 0o644, b"gone in layer 2")
        .dir("usr/sbin", 0o755)
}

/// The second layer: whiteout, opaque dir, hard link, setuid, capability.
pub fn feature_layer(motd: &str) -> Layer {
    Layer::new()
        .whiteout("var/cache/removed")
        .opaque("opt/old")
        .file("opt/old/c", 0o644, b"c")
        .file("etc/motd", 0o644, motd.as_bytes())
        .file("usr/sbin/su", 0o4755, b"#!/bin/sh\necho su\n")
        .hardlink("usr/sbin/su-link", "usr/sbin/su", 0o4755)
        .file_with_cap("usr/sbin/ping", 0o755, b"#!/bin/sh\necho ping\n", &crate::util::cap_net_bind())
}

/// Writes an OCI archive with `layers` (first is the base) named `reference`.
pub fn oci_archive(work: &Path, reference: &str, layers: Vec<(Vec<u8>, Compression)>) -> PathBuf {
    oci_archive_with_cmd(work, reference, layers, &["/bin/sh"])
}

/// As [`oci_archive`], with the image config's `Cmd` (what a CRI sandbox or container runs
/// when the request names no command).
pub fn oci_archive_with_cmd(
    work: &Path,
    reference: &str,
    layers: Vec<(Vec<u8>, Compression)>,
    cmd: &[&str],
) -> PathBuf {
    let layout = work.join(format!("layout-{}", sanitize(reference)));
    let blobs = layout.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8]| -> String {
        let hex = format!("{:x}", sha2::Sha256::digest(bytes));
        std::fs::write(blobs.join(&hex), bytes).unwrap();
        format!("sha256:{hex}")
    };
    let mut descs = Vec::new();
    let mut diff_ids = Vec::new();
    for (tar, comp) in layers {
        diff_ids.push(format!("sha256:{:x}", sha2::Sha256::digest(&tar)));
        let (blob, media) = match comp {
            Compression::None => (tar, "application/vnd.oci.image.layer.v1.tar"),
            Compression::Gzip => {
                let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                gz.write_all(&tar).unwrap();
                (gz.finish().unwrap(), "application/vnd.oci.image.layer.v1.tar+gzip")
            }
            Compression::Zstd => {
                (zstd::encode_all(std::io::Cursor::new(tar), 3).unwrap(), "application/vnd.oci.image.layer.v1.tar+zstd")
            }
        };
        let d = put(&blob);
        descs.push(serde_json::json!({"mediaType": media, "digest": d, "size": blob.len()}));
    }
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": cmd},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap();
    let cd = put(&config);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": config.len()},
        "layers": descs,
    }))
    .unwrap();
    let md = put(&manifest);
    std::fs::write(layout.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    std::fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "manifests": [{
                "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": manifest.len(),
                "annotations": {"io.containerd.image.name": reference, "org.opencontainers.image.ref.name": reference},
            }],
        }))
        .unwrap(),
    )
    .unwrap();
    let archive = work.join(format!("{}.tar", sanitize(reference)));
    crate::util::sh(std::process::Command::new("tar").arg("-C").arg(&layout).arg("-cf").arg(&archive).arg("."));
    archive
}

fn sanitize(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect()
}

/// The standard two-layer test image.
pub fn multi_layer_archive(work: &Path, reference: &str, motd: &str) -> PathBuf {
    oci_archive(
        work,
        reference,
        vec![(busybox_layer().finish(), Compression::Gzip), (feature_layer(motd).finish(), Compression::Zstd)],
    )
}
