//! The main job end to end: keygen, seal, trust, verify, tamper, verify again.

use crate::util::*;
use std::ffi::OsStr;

#[test]
fn seal_verify_tamper_verify() {
    let env = Env::new();
    let root = env.path("rootfs");
    small_tree(&root);
    let (key, public) = env.keygen("ci");
    let seal = env.path("rootfs.seal.json");
    env.seal(&root, &key, &seal, &["--name", "example.com/app:1"]);
    let (out, _) = env.verify(0, &root, &seal, &public, &[]);
    assert!(out.contains("verified") && out.contains("example.com/app:1"), "{out}");

    std::fs::write(root.join("etc/passwd"), b"root:x:0:0::/root:/bin/sh\nevil:x:0:0::/:/bin/sh\n").unwrap();
    let (_, err) = env.verify(1, &root, &seal, &public, &[]);
    assert!(err.contains("/etc/passwd content differs from seal"), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
}

#[test]
fn digest_is_stable_and_json_counts_entries() {
    let env = Env::new();
    let root = env.path("rootfs");
    small_tree(&root);
    let (a, _) = env.expect(0, [OsStr::new("digest"), root.as_os_str()]);
    let (b, _) = env.expect(0, [OsStr::new("digest"), root.as_os_str()]);
    assert_eq!(a, b);
    assert!(a.starts_with("sha256:") && a.trim().len() == 71, "{a}");
    let (j, _) = env.expect(0, [OsStr::new("digest"), root.as_os_str(), OsStr::new("--json")]);
    let v: serde_json::Value = serde_json::from_str(&j).unwrap();
    assert_eq!(v["digest"].as_str().unwrap(), a.trim());
    assert_eq!(v["entries"], 12);
    assert_eq!(v["fileBytes"], 100_000 + 21 + 6 + 26);
    // The manifest printed is the one hashed.
    let out = env.run([OsStr::new("digest"), root.as_os_str(), OsStr::new("--manifest")]);
    use sha2::Digest;
    assert_eq!(format!("sha256:{:x}", sha2::Sha256::digest(&out.stdout)), a.trim());
}

#[test]
fn verify_json_lists_every_difference() {
    let env = Env::new();
    let root = env.path("rootfs");
    small_tree(&root);
    let (key, public) = env.keygen("ci");
    let seal = env.path("s.json");
    env.seal(&root, &key, &seal, &[]);
    std::fs::remove_file(root.join("bin/su")).unwrap();
    std::fs::write(root.join("bin/new"), b"x").unwrap();
    let (out, _) = env.verify(1, &root, &seal, &public, &["--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["verified"], false);
    assert_eq!(v["reason"], "tampered");
    let d: Vec<(String, String)> = v["differences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["path"].as_str().unwrap().to_string(), d["changes"][0]["class"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(d, [("/bin/new".to_string(), "added".to_string()), ("/bin/su".into(), "removed".into())]);
}

#[test]
fn trust_store_lifecycle_and_import() {
    let env = Env::new();
    let root = env.path("rootfs");
    small_tree(&root);
    let (key, public) = env.keygen("ci-2026");
    let seal = env.path("s.json");
    env.seal(&root, &key, &seal, &[]);

    // An empty store trusts nothing: import is refused.
    let (_, err) = env.expect(2, [OsStr::new("trust"), OsStr::new("import"), seal.as_os_str()]);
    assert!(err.contains("does not exist"), "{err}");

    env.expect(0, [OsStr::new("trust"), OsStr::new("add"), public.as_os_str()]);
    let (list, _) = env.expect(0, ["trust", "list", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert_eq!(v["keys"][0]["name"], "ci-2026");
    let keyid = v["keys"][0]["keyid"].as_str().unwrap().to_string();

    let (out, _) = env.expect(0, [OsStr::new("trust"), OsStr::new("import"), seal.as_os_str()]);
    assert!(out.contains("signed by ci-2026"), "{out}");
    let (digest, _) = env.expect(0, [OsStr::new("digest"), root.as_os_str()]);
    let filed = env.path(&format!("seals/{}.json", digest.trim().trim_start_matches("sha256:")));
    assert_eq!(std::fs::read(&filed).unwrap(), std::fs::read(&seal).unwrap());

    let trust_dir = env.path("trust");
    env.verify_trusted(0, &root, &seal, &trust_dir);

    env.expect(0, ["trust", "revoke", "--key", &keyid]);
    let (_, err) = env.verify_trusted(1, &root, &seal, &trust_dir);
    assert!(err.contains("revoked key ci-2026"), "{err}");
    let (_, err) = env.expect(1, [OsStr::new("trust"), OsStr::new("import"), seal.as_os_str()]);
    assert!(err.contains("revoked"), "{err}");

    env.expect(0, ["trust", "remove", "ci-2026"]);
    let (_, err) = env.verify_trusted(1, &root, &seal, &trust_dir);
    assert!(err.contains("not signed by any trusted key"), "{err}");
}

#[test]
fn revoked_digest_is_refused() {
    let env = Env::new();
    let root = env.path("rootfs");
    small_tree(&root);
    let (key, public) = env.keygen("ci");
    let seal = env.path("s.json");
    env.seal(&root, &key, &seal, &[]);
    env.expect(0, [OsStr::new("trust"), OsStr::new("add"), public.as_os_str()]);
    let (digest, _) = env.expect(0, [OsStr::new("digest"), root.as_os_str()]);
    env.expect(0, ["trust", "revoke", "--digest", digest.trim()]);
    let trust_dir = env.path("trust");
    let (_, err) = env.verify_trusted(1, &root, &seal, &trust_dir);
    assert!(err.contains("is revoked on this node"), "{err}");
}

#[test]
fn expiry_accepts_durations_and_times() {
    let env = Env::new();
    let root = env.path("rootfs");
    small_tree(&root);
    let (key, public) = env.keygen("ci");
    for exp in ["90d", "2099-01-01T00:00:00Z"] {
        let seal = env.path("s.json");
        env.seal(&root, &key, &seal, &["--expires", exp]);
        env.verify(0, &root, &seal, &public, &[]);
    }
    for (exp, says) in [("2001-01-01T00:00:00Z", "in the past"), ("soon", "neither an RFC 3339 time")] {
        let (_, err) = env.expect(
            2,
            [
                OsStr::new("seal"),
                root.as_os_str(),
                OsStr::new("--key"),
                key.as_os_str(),
                OsStr::new("--expires"),
                OsStr::new(exp),
            ],
        );
        assert!(err.contains(says), "{err}");
    }
}
