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
    // The image itself says /data is /etc (absolute, and climbing above the root, which
    // securejoin clamps): runc mounts over /etc, so /etc is what the hook excludes.
    for target in ["/etc", "../../../../etc"] {
        let f = Fixture::new();
        let src = host_dir(&f, "hostsrc", "mounted from the host\n");
        std::os::unix::fs::symlink(target, f.rootfs.join("data")).unwrap();
        reseal(&f);
        add_mount(&f, bind("/data", &src, &["rbind", "ro"]));
        f.patch(|c| c["process"]["args"] = serde_json::json!(["cat", "/etc/marker"]));
        f.run("runc").assert_ran("mounted from the host");
    }
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
    for dest in ["/", "/..", "//.", "/etc/../"] {
        f.patch(|c| {
            let ms = c["mounts"].as_array_mut().unwrap();
            ms.retain(|m| m["source"] != serde_json::json!(src));
            ms.push(bind(dest, &src, &["rbind", "ro"]));
        });
        prestart(&f).assert_blocked("a mount over / hides the whole sealed rootfs");
    }
}
