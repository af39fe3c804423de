//! Unit tests of src/image/mod.rs (beside it; kept apart to keep the module readable).

use super::*;

/// Builds one uncompressed layer from (path, type, content/target, mode).
fn layer(entries: &[(&str, char, &[u8], u32)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, t, data, mode) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mode(*mode);
        h.set_uid(0);
        h.set_gid(0);
        match t {
            'd' => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_size(0);
                b.append_data(&mut h, path, io::empty()).unwrap();
            }
            'f' => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(data.len() as u64);
                b.append_data(&mut h, path, *data).unwrap();
            }
            'l' | 'h' => {
                h.set_entry_type(if *t == 'l' { tar::EntryType::Symlink } else { tar::EntryType::Link });
                h.set_size(0);
                b.append_link(&mut h, path, std::str::from_utf8(data).unwrap()).unwrap();
            }
            _ => unreachable!(),
        }
    }
    b.into_inner().unwrap()
}

fn apply(layers: &[Vec<u8>]) -> Result<Manifest, ImageError> {
    let p = Path::new("test.tar");
    let mut t = Tree::new(p, Limits::default());
    for (i, l) in layers.iter().enumerate() {
        let diff = format!("sha256:{:x}", Sha256::digest(l));
        t.apply_layer(i + 1, Box::new(io::Cursor::new(l.clone())), None, &diff)?;
    }
    Ok(t.into_manifest())
}

fn paths(m: &Manifest) -> Vec<String> {
    m.entries().iter().map(|e| String::from_utf8_lossy(&e.path).into_owned()).collect()
}

#[test]
fn whiteouts_opaque_dirs_and_hard_links() {
    let l1 = layer(&[
        ("./", 'd', b"", 0o755),
        ("etc/", 'd', b"", 0o755),
        ("etc/a", 'f', b"a", 0o644),
        ("etc/b", 'f', b"b", 0o644),
        ("opt/x/old", 'f', b"old", 0o644),
        ("bin/tool", 'f', b"tool", 0o4755),
    ]);
    let l2 = layer(&[
        ("etc/.wh.a", 'f', b"", 0o644),
        ("opt/x/.wh..wh..opq", 'f', b"", 0o644),
        ("opt/x/new", 'f', b"new", 0o644),
        ("bin/tool2", 'h', b"bin/tool", 0o4755),
        ("etc/", 'd', b"", 0o700),
    ]);
    let m = apply(&[l1, l2]).unwrap();
    assert_eq!(paths(&m), ["/bin", "/bin/tool", "/bin/tool2", "/etc", "/etc/b", "/opt", "/opt/x", "/opt/x/new"]);
    assert_eq!(m.get(b"/etc").unwrap().mode, 0o700, "the upper layer's directory metadata wins");
    assert_eq!(m.get(b"/bin/tool2").unwrap().mode, 0o4755, "a hard link is the file it links to");
    // A link header with another mode changes the shared inode, as unpackers chmod it.
    let l3 = layer(&[("f", 'f', b"x", 0o755), ("g", 'h', b"f", 0o700)]);
    let m3 = apply(&[l3]).unwrap();
    assert_eq!((m3.get(b"/f").unwrap().mode, m3.get(b"/g").unwrap().mode), (0o700, 0o700));
    assert_eq!(m.get(b"/bin/tool2").unwrap().kind, m.get(b"/bin/tool").unwrap().kind);
    assert_eq!(m.get(b"/opt").unwrap().mode, 0o755, "implicit parents are 0755");
}

#[test]
fn an_opaque_marker_keeps_what_its_own_layer_added() {
    let l1 = layer(&[("d/old", 'f', b"1", 0o644)]);
    let l2 = layer(&[("d/new", 'f', b"2", 0o644), ("d/.wh..wh..opq", 'f', b"", 0o644)]);
    assert_eq!(paths(&apply(&[l1, l2]).unwrap()), ["/d", "/d/new"]);
}

#[test]
fn hostile_entries_are_errors() {
    // tar::Builder refuses to write some of these, so write raw headers.
    fn raw(name: &[u8], t: tar::EntryType, link: Option<&[u8]>) -> Vec<u8> {
        let mut h = tar::Header::new_old();
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        if let Some(l) = link {
            h.as_old_mut().linkname[..l.len()].copy_from_slice(l);
        }
        h.set_entry_type(t);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_size(0);
        h.set_cksum();
        let mut v = h.as_bytes().to_vec();
        v.extend_from_slice(&[0u8; 1024]);
        v
    }
    for (l, want) in [
        (raw(b"/etc/passwd", tar::EntryType::Regular, None), "absolute"),
        (raw(b"../../etc/passwd", tar::EntryType::Regular, None), ".."),
        (raw(b"a/../../x", tar::EntryType::Regular, None), ".."),
        (raw(b".wh.", tar::EntryType::Regular, None), "whiteout of nothing"),
        (raw(b"x/.wh...", tar::EntryType::Regular, None), "whiteout"),
        (raw(b"evil", tar::EntryType::Link, Some(b"../../etc/shadow")), "hard link target"),
        (raw(b"evil", tar::EntryType::Link, Some(b"nothing/here")), "pointing outside"),
        (raw(b"./", tar::EntryType::Regular, None), "root"),
    ] {
        let err = apply(&[l]).unwrap_err().to_string();
        assert!(err.contains(want), "want {want:?}: {err}");
    }
    // A file below a symlink from a lower layer would land elsewhere than its path says.
    let l1 = layer(&[("lib", 'l', b"usr/lib", 0o777)]);
    let l2 = layer(&[("lib/evil.so", 'f', b"x", 0o644)]);
    assert!(apply(&[l1, l2]).unwrap_err().to_string().contains("not a directory"));
}

#[test]
fn a_wrong_diff_id_is_refused() {
    let l = layer(&[("a", 'f', b"a", 0o644)]);
    let mut t = Tree::new(Path::new("x.tar"), Limits::default());
    let err = t.apply_layer(1, Box::new(io::Cursor::new(l)), None, &format!("sha256:{}", "0".repeat(64))).unwrap_err();
    assert!(err.to_string().contains("diff_id"), "{err}");
}

#[test]
fn gzip_and_zstd_layers_are_detected() {
    let l = layer(&[("a", 'f', b"content", 0o644)]);
    let diff = format!("sha256:{:x}", Sha256::digest(&l));
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    io::Write::write_all(&mut gz, &l).unwrap();
    let gz = gz.finish().unwrap();
    let zs = zstd::encode_all(io::Cursor::new(&l), 3).unwrap();
    for blob in [gz, zs, l.clone()] {
        let d = format!("sha256:{:x}", Sha256::digest(&blob));
        let mut t = Tree::new(Path::new("x"), Limits::default());
        t.apply_layer(1, Box::new(io::Cursor::new(blob)), Some(&d), &diff).unwrap();
        assert_eq!(paths(&t.into_manifest()), ["/a"]);
    }
}

#[test]
fn platforms_parse() {
    assert_eq!(Platform::parse("linux/arm64/v8").unwrap().variant.as_deref(), Some("v8"));
    assert!(Platform::parse("linux").is_none());
    assert_eq!(Platform::host().os, "linux");
}

#[test]
fn manifest_from_layers_is_the_layer_reader_without_digests() {
    let l1 = layer(&[("etc/a", 'f', b"a", 0o644), ("etc/b", 'f', b"b", 0o644)]);
    let l2 = layer(&[("etc/.wh.a", 'f', b"", 0o644), ("etc/c", 'h', b"etc/b", 0o600)]);
    let m = manifest_from_layers(&[&l1, &l2], &Limits::default()).unwrap();
    assert_eq!(m, apply(&[l1.clone(), l2]).unwrap());
    assert_eq!(paths(&m), ["/etc", "/etc/b", "/etc/c"]);
    let tight = Limits { max_entries: 2, ..Limits::default() };
    let err = manifest_from_layers(&[&l1], &tight).unwrap_err().to_string();
    assert!(err.contains("max_entries"), "{err}");
}

/// Found by the `layer` fuzz target: a parent this layer created implicitly survives an
/// opaque marker of its own parent later in the same layer (it is this layer's).
#[test]
fn an_opaque_marker_keeps_this_layers_implicit_parents() {
    let l = layer(&[("d/sub/new", 'f', b"x", 0o644), ("d/.wh..wh..opq", 'f', b"", 0o644)]);
    let m = manifest_from_layers(&[&l], &Limits::default()).unwrap();
    assert_eq!(paths(&m), ["/d", "/d/sub", "/d/sub/new"]);
}
