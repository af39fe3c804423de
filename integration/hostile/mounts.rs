//! Hostile mounts in config.json: what the bundle mounts must be read-only in effect, not only
//! in its top options, and a destination must land where the seal says it does
//! (docs/hook.md, "Read-only policy" and "Mount exclusion").

use super::*;
use crate::harness::*;
use std::path::PathBuf;

/// A host directory with a file, outside the rootfs.
fn host_dir(f: &Fixture, name: &str, marker: &str) -> PathBuf {
    let d = f.env.path(name);
    std::fs::create_dir(&d).unwrap();
    std::fs::write(d.join("marker"), marker).unwrap();
    d
}

fn bind(dest: &str, source: &Path, options: &[&str]) -> serde_json::Value {
    serde_json::json!({"destination": dest, "type": "bind", "source": source, "options": options})
}

#[test]
fn rbind_ro_over_a_source_with_a_writable_submount_is_blocked() {
    let f = Fixture::new();
    let src = host_dir(&f, "hostsrc", "host\n");
    std::fs::create_dir(src.join("sub")).unwrap();
    let _sub = mount_tmpfs(&src.join("sub"));
    add_mount(&f, bind("/data", &src, &["rbind", "ro"]));
    assert_blocks(
        &f,
        &[
            &format!("bind mount of {} at /data is", src.display()),
            &format!("which leaves its 1 submount(s) such as {}/sub writable", src.display()),
            "use \\\"rro\\\" or a non-recursive bind",
        ],
    );
}

#[test]
fn control_rbind_rro_over_a_source_with_a_submount_runs_read_only_all_the_way_down() {
    let f = Fixture::new();
    let src = host_dir(&f, "hostsrc", "host\n");
    std::fs::create_dir(src.join("sub")).unwrap();
    let _sub = mount_tmpfs(&src.join("sub"));
    add_mount(&f, bind("/data", &src, &["rbind", "ro", "rro"]));
    f.patch(|c| {
        c["process"]["args"] =
            serde_json::json!(["sh", "-c", "cat /etc/motd; touch /data/sub/x 2>/dev/null || echo submount read-only"])
    });
    let r = f.run("runc");
    r.assert_ran(MOTD);
    assert!(r.stdout().contains("submount read-only"), "{}", r.stdout());
    assert!(!src.join("sub/x").exists());
}

#[test]
fn a_later_read_write_mount_shadowing_a_read_only_one_is_blocked() {
    let f = Fixture::new();
    let ro = host_dir(&f, "host-ro", "ro\n");
    let rw = host_dir(&f, "host-rw", "rw\n");
    add_mount(&f, bind("/data", &ro, &["rbind", "ro"]));
    add_mount(&f, bind("/data", &rw, &["rbind", "rw"]));
    assert_blocks(&f, &[&format!("bind mount of {} at /data is writable", rw.display())]);
}

#[test]
fn a_read_write_flag_after_ro_in_the_same_mount_is_blocked() {
    let f = Fixture::new();
    let src = host_dir(&f, "hostsrc", "host\n");
    for opts in [&["rbind", "ro", "rw"][..], &["ro", "bind", "rw"], &["rbind", "ro", "rrw"]] {
        f.patch(|c| {
            let ms = c["mounts"].as_array_mut().unwrap();
            ms.retain(|m| m["destination"] != "/data");
            ms.push(bind("/data", &src, opts));
        });
        assert_blocks(&f, &[&format!("bind mount of {} at /data is writable", src.display())]);
    }
}

#[test]
fn a_destination_through_a_sealed_image_symlink_is_resolved_as_runc_does() {
    // The image itself says /data is /mnt (absolute, and climbing above the root, which
    // securejoin clamps): runc mounts over /mnt (an empty sealed directory), so /mnt is what
    // the hook excludes.
    for target in ["/mnt", "../../../../mnt"] {
        let f = Fixture::new();
        let src = host_dir(&f, "hostsrc", "mounted from the host\n");
        std::fs::create_dir(f.rootfs.join("mnt")).unwrap();
        std::os::unix::fs::symlink(target, f.rootfs.join("data")).unwrap();
        reseal(&f);
        add_mount(&f, bind("/data", &src, &["rbind", "ro"]));
        f.patch(|c| c["process"]["args"] = serde_json::json!(["cat", "/mnt/marker"]));
        f.run("runc").assert_ran("mounted from the host");
    }
}

/// Finding 3.1: runc 1.1.x (and 1.2.0-1.2.7, 1.3.0-1.3.2) resolve `..` after following the
/// image's symlinks. In a merged-/usr image (`/bin -> usr/bin`) a mount at `/bin/../usr` lands
/// on /usr/usr, while a lexical clean says /usr: the exclusion would hide a tampered /usr.
#[test]
fn a_mount_destination_that_is_not_clean_is_blocked() {
    let f = Fixture::new();
    // Merged /usr: everything in /bin moves to /usr/bin, /bin becomes a symlink.
    std::fs::rename(f.rootfs.join("bin"), f.rootfs.join("usr/bin")).unwrap();
    std::os::unix::fs::symlink("usr/bin", f.rootfs.join("bin")).unwrap();
    reseal(&f);
    assert_runs(&f);
    std::fs::write(f.rootfs.join("usr/sbin/ping"), "#!/bin/sh\necho tampered\n").unwrap();
    add_mount(
        &f,
        serde_json::json!({"destination": "/bin/../usr", "type": "tmpfs", "source": "tmpfs", "options": ["ro"]}),
    );
    let line = assert_blocks(&f, &["/bin/../usr", "has a `..` component"]);
    assert!(line.contains("+1 more violation"), "the tampered /usr/sbin/ping is still found: {line}");
    for dest in ["/usr/./sbin", "//mnt", "/mnt/", "mnt"] {
        f.patch(|c| {
            let ms = c["mounts"].as_array_mut().unwrap();
            ms.retain(|m| m["type"] != "tmpfs" || m["source"] != "tmpfs" || m["options"] != serde_json::json!(["ro"]));
            ms.push(serde_json::json!({"destination": dest, "type": "tmpfs", "source": "tmpfs", "options": ["ro"]}));
        });
        prestart(&f).assert_blocked(&format!("mount destination {dest:?}"));
    }
}

/// Finding 3.2: a writable bind allowed by its destination's name (/etc/hosts) lands, through
/// the sealed image's own symlink, on /usr/sbin/ping: the runtime would put a writable host
/// file there.
#[test]
fn a_writable_destination_allowed_by_name_but_landing_elsewhere_is_blocked() {
    let f = Fixture::new();
    std::os::unix::fs::symlink("/usr/sbin/ping", f.rootfs.join("etc/hosts")).unwrap();
    reseal(&f);
    let hosts = f.env.path("hosts");
    std::fs::write(&hosts, "127.0.0.1 localhost\n").unwrap();
    add_mount(&f, bind("/etc/hosts", &hosts, &["rbind", "rw"]));
    assert_blocks(
        &f,
        &[&format!(
            "bind mount of {} at /etc/hosts is writable (through the image's symlinks it lands on /usr/sbin/ping, which policy does not allow)",
            hosts.display()
        )],
    );
}

#[test]
fn control_a_writable_etc_hosts_that_is_a_plain_file_runs() {
    let f = Fixture::new();
    std::fs::write(f.rootfs.join("etc/hosts"), "").unwrap();
    reseal(&f);
    let hosts = f.env.path("hosts");
    std::fs::write(&hosts, "127.0.0.1 localhost\n").unwrap();
    add_mount(&f, bind("/etc/hosts", &hosts, &["rbind", "rw"]));
    assert_runs(&f);
}

/// Finding 3.10: a read-only bind of another busybox tree over /bin passes the read-only
/// policy and /bin is excluded from the comparison, so the container ran host binaries that no
/// seal covers.
#[test]
fn a_mount_that_hides_sealed_content_is_blocked() {
    let f = Fixture::new();
    let other = f.env.path("other");
    busybox_rootfs(&other);
    std::fs::write(other.join("bin/extra"), "#!/bin/sh\necho unsealed\n").unwrap();
    add_mount(&f, bind("/bin", &other.join("bin"), &["rbind", "ro"]));
    assert_blocks(&f, &["a mount at /bin hides sealed content of seal", "shadow_destinations"]);
    // Over a sealed non-empty file, and through a sealed symlink.
    let f = Fixture::new();
    std::os::unix::fs::symlink("/usr/sbin", f.rootfs.join("tools")).unwrap();
    reseal(&f);
    add_mount(&f, bind("/etc/motd", &other.join("etc/motd"), &["bind", "ro"]));
    assert_blocks(&f, &["a mount at /etc/motd hides sealed content"]);
    f.patch(|c| c["mounts"].as_array_mut().unwrap().retain(|m| m["destination"] != "/etc/motd"));
    add_mount(&f, bind("/tools", &other.join("bin"), &["rbind", "ro"]));
    assert_blocks(&f, &["a mount at /usr/sbin (mount destination /tools) hides sealed content"]);
    // Allowed by policy: it runs.
    config(&f, "[readonly]\nshadow_destinations = [\"/proc\", \"/proc/**\", \"/sys\", \"/sys/**\", \"/dev\", \"/dev/**\", \"/usr/sbin\"]");
    assert_runs(&f);
}

#[test]
fn control_a_mount_over_an_empty_sealed_directory_or_a_new_path_runs() {
    let f = Fixture::new();
    std::fs::create_dir(f.rootfs.join("mnt")).unwrap();
    reseal(&f);
    let src = host_dir(&f, "hostsrc", "host\n");
    add_mount(&f, bind("/mnt", &src, &["rbind", "ro"]));
    add_mount(&f, bind("/srv/data", &src, &["rbind", "ro"]));
    assert_runs(&f);
}

#[test]
fn a_planted_symlink_at_a_mount_destination_is_blocked() {
    let f = Fixture::new();
    let src = host_dir(&f, "hostsrc", "host\n");
    std::os::unix::fs::symlink("/etc", f.rootfs.join("data")).unwrap();
    add_mount(&f, bind("/data", &src, &["rbind", "ro"]));
    assert_blocks(&f, &["mount destination /data resolves to /etc on disk but to /data in seal"]);
}

#[test]
fn a_planted_symlink_above_a_mount_destination_is_blocked() {
    let f = Fixture::new();
    let src = host_dir(&f, "hostsrc", "host\n");
    // /var/lib does not exist in the image; on disk it now leads into /usr/sbin.
    std::os::unix::fs::symlink("../usr/sbin", f.rootfs.join("var/lib")).unwrap();
    add_mount(&f, bind("/var/lib/data", &src, &["rbind", "ro"]));
    assert_blocks(
        &f,
        &["mount destination /var/lib/data resolves to /usr/sbin/data on disk but to /var/lib/data in seal"],
    );
}

#[test]
fn a_mount_over_the_root_itself_is_blocked() {
    let f = Fixture::new();
    let src = host_dir(&f, "hostsrc", "host\n");
    add_mount(&f, bind("/", &src, &["rbind", "ro"]));
    prestart(&f).assert_blocked("a mount over / hides the whole sealed rootfs");
    for dest in ["/..", "//.", "/etc/../"] {
        f.patch(|c| {
            let ms = c["mounts"].as_array_mut().unwrap();
            ms.retain(|m| m["source"] != serde_json::json!(src));
            ms.push(bind(dest, &src, &["rbind", "ro"]));
        });
        prestart(&f).assert_blocked(&format!("mount destination {dest:?}"));
    }
}
