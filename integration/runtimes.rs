//! The hook wired into config.json, run by the real runc and crun: sealed containers run,
//! anything else is blocked with a reason that names what is wrong.

use crate::harness::*;
use crate::util::*;
use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;

fn sealed_read_only_trusted_runs(rt: &str) {
    let f = Fixture::new();
    let r = f.run(rt);
    r.assert_ran("hello from a sealed rootfs");
    // The state record was written at prestart and removed at poststop.
    assert!(listing(&f.env.path("state")).iter().all(|p| !p.ends_with(".json")), "{:?}", listing(&f.env.path("state")));
    let events = f.events();
    assert!(events.iter().all(|e| e["event"] == "verified"), "a pass raises no alert, only its trace: {events:?}");
}

fn tamper_case(rt: &str, tamper: impl FnOnce(&Fixture), expect: &str) {
    let f = Fixture::new();
    tamper(&f);
    let r = f.run(rt);
    let line = r.assert_blocked();
    assert!(line.contains(expect), "{rt}: expected {expect:?} in: {line}");
    assert!(line.contains("ci-2026"), "names the signer: {line}");
    let ev = f.last_event();
    assert_eq!(ev["event"], "blocked");
    assert_eq!(ev["violations"][0]["code"], "tampered");
}

fn content_changed(rt: &str) {
    tamper_case(rt, |f| std::fs::write(f.rootfs.join("etc/motd"), b"pwned\n").unwrap(), "/etc/motd content differs");
}

fn file_added(rt: &str) {
    tamper_case(rt, |f| std::fs::write(f.rootfs.join("bin/backdoor"), b"x").unwrap(), "/bin/backdoor added");
}

fn file_removed(rt: &str) {
    tamper_case(rt, |f| std::fs::remove_file(f.rootfs.join("etc/passwd")).unwrap(), "/etc/passwd removed");
}

fn chmod(rt: &str) {
    tamper_case(
        rt,
        |f| std::fs::set_permissions(f.rootfs.join("bin/busybox"), std::fs::Permissions::from_mode(0o4755)).unwrap(),
        "/bin/busybox mode changed from 0755 to 4755",
    );
}

fn chown(rt: &str) {
    tamper_case(
        rt,
        |f| std::os::unix::fs::chown(f.rootfs.join("etc/passwd"), Some(1000), Some(1000)).unwrap(),
        "/etc/passwd owner changed from 0:0 to 1000:1000",
    );
}

fn symlink_retargeted(rt: &str) {
    tamper_case(
        rt,
        |f| {
            std::fs::remove_file(f.rootfs.join("var/motd")).unwrap();
            std::os::unix::fs::symlink("/etc/passwd", f.rootfs.join("var/motd")).unwrap();
        },
        "/var/motd symlink target differs",
    );
}

fn capability_removed(rt: &str) {
    tamper_case(
        rt,
        |f| remove_xattr(&f.rootfs.join("usr/sbin/ping"), "security.capability"),
        "/usr/sbin/ping capability xattr removed",
    );
}

fn writable_root_blocked(rt: &str) {
    let f = Fixture::new();
    f.patch(|c| c["root"]["readonly"] = false.into());
    let line = f.run(rt).assert_blocked();
    assert!(line.contains("root filesystem is writable"), "{line}");
}

fn writable_bind_mount_blocked(rt: &str) {
    let f = Fixture::new();
    let host = f.env.path("hostdir");
    std::fs::create_dir(&host).unwrap();
    f.patch(|c| {
        c["mounts"].as_array_mut().unwrap().push(serde_json::json!({
            "destination": "/data", "type": "bind", "source": host, "options": ["rbind", "rw"]
        }))
    });
    let line = f.run(rt).assert_blocked();
    assert!(line.contains("at /data is writable"), "{line}");
}

fn audit_mode_runs_and_alerts(rt: &str) {
    let f = Fixture::new();
    let sock_path = f.env.path("syslog.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
    let d = f.env.tmp.path().display().to_string();
    std::fs::write(
        f.env.config_path(),
        format!(
            "mode = \"audit\"\ntrust_dir = \"{d}/trust\"\nseal_dir = \"{d}/seals\"\nstate_dir = \"{d}/state\"\ncache_dir = \"{d}/cache\"\n[alerts]\nsyslog_socket = \"{}\"\nevents_file = \"{d}/events.jsonl\"\n",
            sock_path.display()
        ),
    )
    .unwrap();
    f.patch(|c| c["root"]["readonly"] = false.into());
    std::fs::write(f.rootfs.join("etc/motd"), b"changed in audit\n").unwrap();
    let r = f.run(rt);
    r.assert_ran("changed in audit");
    let mut buf = [0u8; 8192];
    let n = sock.recv(&mut buf).expect("a syslog datagram arrives");
    let msg = String::from_utf8_lossy(&buf[..n]);
    assert!(msg.contains("event=\"audit\"") && msg.contains("mode=\"audit\""), "{msg}");
    assert!(msg.contains("would block"), "{msg}");
    let ev = f.last_event();
    assert_eq!(ev["event"], "audit");
    let codes: Vec<&str> = ev["violations"].as_array().unwrap().iter().map(|v| v["code"].as_str().unwrap()).collect();
    assert_eq!(codes, ["writable-root", "tampered"]);
}

fn trust_case(rt: &str, setup: impl FnOnce(&Fixture), expect: &str) {
    let f = Fixture::new();
    setup(&f);
    let line = f.run(rt).assert_blocked();
    assert!(line.contains(expect), "{rt}: expected {expect:?} in: {line}");
}

fn unsigned_image_blocked(rt: &str) {
    trust_case(
        rt,
        |f| {
            // A different image that was never sealed.
            std::fs::remove_dir_all(f.rootfs.join("usr")).unwrap();
            std::fs::remove_dir_all(f.rootfs.join("etc")).unwrap();
            std::fs::remove_dir_all(f.rootfs.join("var")).unwrap();
            std::fs::write(f.rootfs.join("bin/unsealed"), b"never sealed").unwrap();
            std::fs::remove_dir_all(f.env.path("seals")).unwrap();
        },
        "no seal in",
    );
}

fn untrusted_key_blocked(rt: &str) {
    trust_case(
        rt,
        |f| {
            let (other_key, _) = f.env.keygen("other");
            let seal = f.env.path("other.json");
            f.env.seal(&f.rootfs, &other_key, &seal, &[]);
            // File it directly (import would refuse it): the hook must still refuse it.
            let digest = f.env.expect(0, [OsStr::new("digest"), f.rootfs.as_os_str()]).0;
            let hex = digest.trim().trim_start_matches("sha256:").to_string();
            std::fs::copy(&seal, f.env.path(&format!("seals/{hex}.json"))).unwrap();
            f.annotate("rootseal.dev/seal", digest.trim());
        },
        "not signed by any trusted key",
    );
}

fn revoked_key_blocked(rt: &str) {
    trust_case(
        rt,
        |f| {
            let list = f.env.expect(0, ["trust", "list", "--json"]).0;
            let v: serde_json::Value = serde_json::from_str(&list).unwrap();
            f.env.expect(0, ["trust", "revoke", "--key", v["keys"][0]["keyid"].as_str().unwrap()]);
        },
        "signed only by revoked key ci-2026",
    );
}

fn revoked_digest_blocked(rt: &str) {
    trust_case(
        rt,
        |f| {
            let digest = f.env.expect(0, [OsStr::new("digest"), f.rootfs.as_os_str()]).0;
            f.env.expect(0, ["trust", "revoke", "--digest", digest.trim()]);
        },
        "is revoked on this node",
    );
}

fn expired_seal_blocked(rt: &str) {
    trust_case(
        rt,
        |f| {
            // A seal that expired a minute ago, filed directly (import refuses expired seals).
            let m = rootseal::walk::walk(&f.rootfs, &Default::default()).unwrap();
            let key = rootseal::keys::load_signing_key(&f.key).unwrap();
            let now = std::time::SystemTime::now();
            let bytes = rootseal::seal::create(
                &rootseal::seal::SealRequest {
                    manifest: &m,
                    name: IMAGE,
                    created: now - std::time::Duration::from_secs(3600),
                    expires: Some(now - std::time::Duration::from_secs(60)),
                    image: None,
                },
                &key,
            );
            std::fs::write(f.env.path(&format!("seals/{}.json", m.digest().hex())), bytes).unwrap();
        },
        "expired",
    );
}

fn symlinked_rootfs_blocked(rt: &str) {
    let f = Fixture::new();
    std::fs::rename(&f.rootfs, f.bundle.join("real-rootfs")).unwrap();
    std::os::unix::fs::symlink("real-rootfs", &f.rootfs).unwrap();
    let r = f.run(rt);
    if rt == "runc" && r.stderr().contains("invalid rootfs") {
        // runc refuses a symlinked root.path itself, before any hook runs; the hook's own
        // refusal is covered by protocol::rootfs_symlink.
        assert!(!r.out.status.success());
        return;
    }
    let line = r.assert_blocked();
    assert!(line.contains("is a symlink"), "{line}");
}

fn pause_container_exempted(rt: &str) {
    let f = Fixture::new();
    f.annotate("io.kubernetes.cri.container-type", "sandbox");
    // Not sealed as it is now, and writable: only the exemption lets it run.
    std::fs::write(f.rootfs.join("etc/motd"), b"pause\n").unwrap();
    f.run(rt).assert_ran("pause");
    let ev = f.last_event();
    assert_eq!(ev["event"], "exempted");
    assert_eq!(ev["exemption"], "kubernetes-sandbox");
}

fn mount_points_created_by_the_runtime_pass(rt: &str) {
    // A Kubernetes-like spec: file binds at /etc/hosts and /etc/resolv.conf (absent from the
    // image), a tmpfs chain at /run/secrets/kubernetes.io/serviceaccount, /tmp.
    let f = Fixture::new();
    let hosts = f.env.path("hosts");
    std::fs::write(&hosts, b"127.0.0.1 localhost\n").unwrap();
    f.patch(|c| {
        let m = c["mounts"].as_array_mut().unwrap();
        for (dest, src) in [("/etc/hosts", &hosts), ("/etc/resolv.conf", &hosts)] {
            m.push(serde_json::json!({"destination": dest, "type": "bind", "source": src, "options": ["rbind", "ro"]}));
        }
        m.push(serde_json::json!({"destination": "/run/secrets/kubernetes.io/serviceaccount", "type": "tmpfs", "source": "tmpfs", "options": ["ro"]}));
        m.push(serde_json::json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["rw", "nosuid"]}));
        c["process"]["args"] = serde_json::json!(["sh", "-c", "cat /etc/motd /etc/hosts; touch /x 2>/dev/null || echo read-only"]);
    });
    let r = f.run(rt);
    r.assert_ran("hello from a sealed rootfs");
    assert!(r.stdout().contains("localhost") && r.stdout().contains("read-only"), "{}", r.stdout());
}

macro_rules! for_runtimes {
    ($($name:ident),* $(,)?) => {
        mod runc {
            $( #[test] fn $name() { super::$name("runc"); } )*
        }
        mod crun {
            $( #[test] fn $name() { super::$name("crun"); } )*
        }
    };
}

for_runtimes!(
    sealed_read_only_trusted_runs,
    content_changed,
    file_added,
    file_removed,
    chmod,
    chown,
    symlink_retargeted,
    capability_removed,
    writable_root_blocked,
    writable_bind_mount_blocked,
    audit_mode_runs_and_alerts,
    unsigned_image_blocked,
    untrusted_key_blocked,
    revoked_key_blocked,
    revoked_digest_blocked,
    expired_seal_blocked,
    symlinked_rootfs_blocked,
    pause_container_exempted,
    mount_points_created_by_the_runtime_pass,
);

/// Issue 14, item 6: every decision leaves a trace by default: a verified start writes a
/// `verified` event with the container, the seal and its signers, the mode and the time taken;
/// `verified_sample = 0` turns those (and only those) off.
#[test]
fn a_verified_start_leaves_an_event_by_default() {
    let f = crate::harness::Fixture::new();
    let r = f.run("runc");
    r.assert_ran("hello from a sealed rootfs");
    let ev = f.last_event();
    assert_eq!(ev["event"], "verified", "{ev}");
    assert_eq!(ev["container"]["id"], r.id.as_str(), "{ev}");
    assert!(ev["seal"]["digest"].as_str().unwrap().starts_with("sha256:"), "{ev}");
    assert_eq!(ev["seal"]["signers"][0], "ci-2026", "{ev}");
    assert_eq!(ev["mode"], "enforce", "{ev}");
    assert!(ev["elapsed_ms"].as_u64().is_some(), "{ev}");
    let events = f.env.path("events.jsonl");
    let before = std::fs::read_to_string(&events).unwrap().lines().count();
    let text = std::fs::read_to_string(f.env.config_path()).unwrap();
    std::fs::write(f.env.config_path(), text.replace("[alerts]\n", "[alerts]\nverified_sample = 0\n")).unwrap();
    f.run("runc").assert_ran("hello from a sealed rootfs");
    assert_eq!(std::fs::read_to_string(&events).unwrap().lines().count(), before, "sampled out");
}
