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

// --- loading: the index, manifest and config documents ------------------------------------

use serde_json::{json, Value};

fn put(dir: &Path, bytes: &[u8]) -> String {
    let hex = format!("{:x}", Sha256::digest(bytes));
    std::fs::write(dir.join("blobs/sha256").join(&hex), bytes).unwrap();
    format!("sha256:{hex}")
}

/// A one-layer OCI layout as image tools write it, each document passed through its closure
/// before it is stored (and digested), so a test can break one field.
fn oci_layout(
    config: impl FnOnce(&mut Value),
    manifest: impl FnOnce(&mut Value),
    index: impl FnOnce(&mut Value),
) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("blobs/sha256")).unwrap();
    std::fs::write(dir.path().join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let l = layer(&[("a", 'f', b"a", 0o644)]);
    let ld = put(dir.path(), &l);
    let mut c = json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["/bin/sh"], "Env": null, "ExposedPorts": {"80/tcp": {}}},
        "rootfs": {"type": "layers", "diff_ids": [ld]},
        "history": [{"created_by": "test", "empty_layer": false}],
    });
    config(&mut c);
    let c = serde_json::to_vec(&c).unwrap();
    let cd = put(dir.path(), &c);
    let mut m = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": c.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": ld, "size": l.len()}],
    });
    manifest(&mut m);
    let m = serde_json::to_vec(&m).unwrap();
    let md = put(dir.path(), &m);
    let mut i = json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": m.len(),
            "annotations": {"org.opencontainers.image.ref.name": "test.local/app:1"},
        }],
    });
    index(&mut i);
    std::fs::write(dir.path().join("index.json"), serde_json::to_vec(&i).unwrap()).unwrap();
    dir
}

fn keep(_: &mut Value) {}

fn amd64() -> Select {
    Select { platform: Platform::parse("linux/amd64").unwrap(), reference: None }
}

fn load_err(dir: &Path, select: &Select) -> String {
    let err = load(dir, select, &Limits::default()).unwrap_err();
    assert!(matches!(err, ImageError::Format { .. } | ImageError::Digest { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.starts_with(&format!("{}: ", dir.display())), "the error names the input: {text}");
    text
}

#[test]
fn an_oci_layout_loads_as_tools_write_it() {
    let dir = oci_layout(keep, keep, keep);
    let t = load(dir.path(), &amd64(), &Limits::default()).unwrap();
    assert_eq!(paths(&t.manifest), ["/a"]);
    assert_eq!((t.layers, t.reference.as_deref()), (1, Some("test.local/app:1")));
    let index: Value = serde_json::from_slice(&std::fs::read(dir.path().join("index.json")).unwrap()).unwrap();
    assert_eq!(t.manifest_digest.as_deref(), index["manifests"][0]["digest"].as_str());
    assert!(t.config_digest.starts_with("sha256:") && t.config_digest.len() == 71, "{}", t.config_digest);
}

#[test]
fn unknown_media_types_are_read_for_what_they_point_at() {
    // A descriptor of any type but an index is read as a manifest; a layer's compression is
    // sniffed from its bytes, not taken from its media type.
    let dir = oci_layout(
        keep,
        |m| {
            m["mediaType"] = json!("application/vnd.docker.distribution.manifest.v2+json");
            m["layers"][0]["mediaType"] = json!("application/vnd.example.layer");
        },
        |i| i["manifests"][0]["mediaType"] = json!("application/vnd.example.manifest+json"),
    );
    assert_eq!(paths(&load(dir.path(), &amd64(), &Limits::default()).unwrap().manifest), ["/a"]);
}

#[test]
fn a_config_with_an_empty_os_is_not_checked_against_the_platform() {
    let dir = oci_layout(|c| c["os"] = json!(""), keep, keep);
    let arm = Select { platform: Platform::parse("linux/arm64").unwrap(), reference: None };
    assert_eq!(load(dir.path(), &arm, &Limits::default()).unwrap().layers, 1);
}

/// Fields the image-spec marks REQUIRED, which oci-spec's types require even where the reader
/// does not use them: a document without one is refused, naming the document.
#[test]
fn fields_the_image_spec_requires_are_required() {
    fn remove(v: &mut Value, key: &str) {
        v.as_object_mut().unwrap().remove(key);
    }
    type Edit = fn(&mut Value);
    let cases: &[(Edit, Edit, Edit, &str)] = &[
        (keep, keep, |i| remove(i, "schemaVersion"), "index.json: missing field `schemaVersion`"),
        (keep, keep, |i| remove(&mut i["manifests"][0], "mediaType"), "index.json: missing field `mediaType`"),
        (keep, keep, |i| remove(&mut i["manifests"][0], "size"), "index.json: missing field `size`"),
        (keep, |m| remove(m, "schemaVersion"), keep, ": missing field `schemaVersion`"),
        (keep, |m| remove(&mut m["layers"][0], "size"), keep, ": missing field `size`"),
        (keep, |m| remove(&mut m["config"], "mediaType"), keep, ": missing field `mediaType`"),
        (|c| remove(&mut c["rootfs"], "type"), keep, keep, ": missing field `type`"),
        (|c| remove(c, "os"), keep, keep, ": missing field `os`"),
    ];
    for (i, (c, m, x, want)) in cases.iter().enumerate() {
        let dir = oci_layout(c, m, x);
        let err = load_err(dir.path(), &amd64());
        assert!(err.contains(want), "case {i}: want {want:?}: {err}");
        let document = if want.starts_with("index.json") { "index.json" } else { "sha256:" };
        assert!(err.starts_with(&format!("{}: {document}", dir.path().display())), "case {i}: {err}");
    }
}

#[test]
fn malformed_documents_are_errors_naming_the_document() {
    type Edit = fn(&mut Value);
    let cases: &[(Edit, Edit, Edit, &str)] = &[
        (keep, keep, |i| i["manifests"] = json!([]), "index.json lists no manifests"),
        (keep, keep, |i| drop(i.as_object_mut().unwrap().remove("manifests")), "index.json: missing field `manifests`"),
        (keep, keep, |i| i["manifests"] = json!({}), "index.json: invalid type: map, expected a sequence"),
        (
            keep,
            keep,
            |i| drop(i["manifests"][0].as_object_mut().unwrap().remove("digest")),
            "index.json: missing field `digest`",
        ),
        (
            keep,
            keep,
            |i| i["manifests"][0]["platform"] = json!({"os": "linux"}),
            "index.json: missing field `architecture`",
        ),
        (keep, |m| drop(m.as_object_mut().unwrap().remove("config")), keep, "missing field `config`"),
        (keep, |m| drop(m.as_object_mut().unwrap().remove("layers")), keep, "missing field `layers`"),
        (
            keep,
            |m| m["mediaType"] = json!("application/vnd.oci.image.index.v1+json"),
            keep,
            "is an index nested too deeply",
        ),
        (|c| drop(c.as_object_mut().unwrap().remove("rootfs")), keep, keep, "missing field `rootfs`"),
        (|c| c["rootfs"] = json!({"type": "layers"}), keep, keep, "missing field `diff_ids`"),
        (|c| c["rootfs"]["diff_ids"] = json!([]), keep, keep, "manifest has 1 layers but the config lists 0 diff_ids"),
        (
            |c| c["architecture"] = json!("arm64"),
            keep,
            keep,
            "the image is linux/arm64 but linux/amd64 was asked for; pass --platform linux/arm64 to seal it anyway",
        ),
        (
            keep,
            |m| m["layers"][0]["digest"] = json!(format!("sha512:{}", "0".repeat(128))),
            keep,
            "digest \"sha512:000",
        ),
    ];
    for (i, (c, m, x, want)) in cases.iter().enumerate() {
        let dir = oci_layout(c, m, x);
        let err = load_err(dir.path(), &amd64());
        assert!(err.contains(want), "case {i}: want {want:?}: {err}");
    }
}

/// oci-spec checks a digest's form as it parses the document (image-spec descriptor.md,
/// "Digests"); a well-formed digest of another algorithm is refused by `blob_name`.
#[test]
fn a_digest_that_is_not_sha256_hex_is_refused_before_any_path_is_built() {
    for (bad, want) in [
        ("sha256:abc", "index.json: Invalid digest length 3 expected 64"),
        ("../../etc/passwd", "index.json: missing ':' in digest"),
        ("sha256:../../../etc/passwd", "index.json: Invalid encoded value ../../../etc/passwd"),
    ] {
        let dir = oci_layout(keep, keep, |i| i["manifests"][0]["digest"] = json!(bad));
        let err = load_err(dir.path(), &amd64());
        assert!(err.contains(want), "{bad}: want {want:?}: {err}");
    }
}

#[test]
fn an_altered_blob_is_refused() {
    let dir = oci_layout(keep, keep, keep);
    let index: Value = serde_json::from_slice(&std::fs::read(dir.path().join("index.json")).unwrap()).unwrap();
    let md = index["manifests"][0]["digest"].as_str().unwrap();
    std::fs::write(dir.path().join("blobs/sha256").join(&md[7..]), b"{}").unwrap();
    let err = load_err(dir.path(), &amd64());
    assert!(err.contains(&format!("has digest sha256:{:x}, expected {md}", Sha256::digest(b"{}"))), "{err}");
}

#[test]
fn index_json_is_strict_and_bounded() {
    let dir = oci_layout(keep, keep, keep);
    let index = dir.path().join("index.json");
    std::fs::write(&index, b"not json").unwrap();
    assert!(load_err(dir.path(), &amd64()).contains(": index.json: expected ident"));
    std::fs::write(&index, br#"{"schemaVersion": 2, "manifests": [], "manifests": []}"#).unwrap();
    assert!(load_err(dir.path(), &amd64()).contains("index.json: duplicate key \"manifests\""));
    std::fs::write(&index, vec![b' '; (MAX_JSON_BLOB + 1) as usize]).unwrap();
    assert!(load_err(dir.path(), &amd64()).contains("index.json is larger than 8388608 bytes"));
}

#[test]
fn a_nested_index_is_descended_to_the_platform_asked_for() {
    for media in
        ["application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json"]
    {
        let dir = oci_layout(keep, keep, keep);
        let index_path = dir.path().join("index.json");
        let top: Value = serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap();
        let mut amd = top["manifests"][0].clone();
        amd["platform"] = json!({"os": "linux", "architecture": "amd64"});
        let mut arm = amd.clone();
        arm["platform"] = json!({"os": "linux", "architecture": "arm64", "variant": "v8"});
        let nested =
            serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": media, "manifests": [arm, amd]})).unwrap();
        let nd = put(dir.path(), &nested);
        let desc = json!({"mediaType": media, "digest": nd, "size": nested.len()});
        std::fs::write(&index_path, serde_json::to_vec(&json!({"schemaVersion": 2, "manifests": [desc]})).unwrap())
            .unwrap();
        let t = load(dir.path(), &amd64(), &Limits::default()).unwrap();
        assert_eq!(t.manifest_digest.as_deref(), top["manifests"][0]["digest"].as_str());
        let s390x = Select { platform: Platform::parse("linux/s390x").unwrap(), reference: None };
        let err = load_err(dir.path(), &s390x);
        assert!(
            err.contains(&format!(
                "image index {nd} has no manifest for linux/s390x (it has linux/arm64, linux/amd64); pass --platform"
            )),
            "{err}"
        );
        // Two images side by side in index.json: one must match the platform.
        std::fs::write(&index_path, serde_json::to_vec(&json!({"schemaVersion": 2, "manifests": [arm, amd]})).unwrap())
            .unwrap();
        assert_eq!(load(dir.path(), &amd64(), &Limits::default()).unwrap().layers, 1);
        let err = load_err(dir.path(), &s390x);
        assert!(
            err.contains("2 images in index.json and none is linux/s390x; pick one with --ref or --platform"),
            "{err}"
        );
        let r = Select { reference: Some("nope".into()), ..amd64() };
        assert!(load_err(dir.path(), &r).contains("no image named \"nope\" in index.json"));
    }
}

/// A docker-archive (`docker save`): manifest.json, the config and the layer, in a tar file.
fn docker_archive(dir: &Path, config: impl FnOnce(&mut Value), manifest: impl FnOnce(&mut Value)) -> PathBuf {
    let l = layer(&[("a", 'f', b"a", 0o644)]);
    let mut c = json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["/bin/sh"], "Volumes": null, "Labels": {"a": "b"}},
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{:x}", Sha256::digest(&l))]},
    });
    config(&mut c);
    let c = serde_json::to_vec(&c).unwrap();
    let mut m = json!([{"Config": "config.json", "RepoTags": ["test.local/app:1"], "Layers": ["layer/layer.tar"]}]);
    manifest(&mut m);
    let m = serde_json::to_vec(&m).unwrap();
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in [("manifest.json", &m), ("config.json", &c), ("layer/layer.tar", &l)] {
        let mut h = tar::Header::new_ustar();
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        b.append_data(&mut h, name, data.as_slice()).unwrap();
    }
    let path = dir.join("docker.tar");
    std::fs::write(&path, b.into_inner().unwrap()).unwrap();
    path
}

#[test]
fn a_docker_archive_loads_and_its_malformed_documents_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let archive = docker_archive(dir.path(), keep, keep);
    let t = load(&archive, &amd64(), &Limits::default()).unwrap();
    assert_eq!(
        (paths(&t.manifest), t.reference.as_deref(), t.manifest_digest),
        (vec!["/a".to_string()], Some("test.local/app:1"), None)
    );
    type Edit = fn(&mut Value);
    let cases: &[(Edit, Edit, &str)] = &[
        (|c| drop(c.as_object_mut().unwrap().remove("rootfs")), keep, "config.json: missing field `rootfs`"),
        (|c| c["os"] = json!("windows"), keep, "the image is windows/amd64 but linux/amd64 was asked for"),
        (keep, |m| drop(m[0].as_object_mut().unwrap().remove("Config")), "manifest.json: missing field `Config`"),
        (keep, |m| m[0]["Layers"] = json!([]), "manifest.json has 0 layers but the config lists 1 diff_ids"),
        (keep, |m| m[0]["Config"] = json!("../config.json"), "member name \"../config.json\" leaves the archive"),
    ];
    for (i, (c, m, want)) in cases.iter().enumerate() {
        let archive = docker_archive(dir.path(), c, m);
        let err = load_err(&archive, &amd64());
        assert!(err.contains(want), "case {i}: want {want:?}: {err}");
    }
}
