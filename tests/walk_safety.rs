//! The walk never follows a symlink out of the tree, never blocks on a FIFO, and refuses
//! mount points, device nodes and sockets for reading.

use crate::util::*;
use std::ffi::OsStr;
use std::time::{Duration, Instant};

#[test]
fn symlinks_out_of_the_tree_are_recorded_not_followed() {
    let env = Env::new();
    let root = env.path("rootfs");
    std::fs::create_dir_all(root.join("etc")).unwrap();
    let outside = env.path("outside-secret");
    std::fs::write(&outside, b"secret v1").unwrap();
    std::os::unix::fs::symlink(&outside, root.join("etc/abs")).unwrap();
    std::os::unix::fs::symlink("../../outside-secret", root.join("etc/rel")).unwrap();
    std::os::unix::fs::symlink(env.path(""), root.join("hostdir")).unwrap();
    let (a, _) = env.expect(0, [OsStr::new("digest"), root.as_os_str()]);
    // Changing what the links point at, outside the tree, changes nothing.
    std::fs::write(&outside, b"secret v2, longer").unwrap();
    std::fs::write(env.path("another"), b"x").unwrap();
    let (b, _) = env.expect(0, [OsStr::new("digest"), root.as_os_str()]);
    assert_eq!(a, b);
    let out = env.run([OsStr::new("digest"), root.as_os_str(), OsStr::new("--manifest")]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("/etc/rel l 0777 0 0 target=../../outside-secret"), "{text}");
    assert!(!text.contains("secret v"), "{text}");
}

#[test]
fn fifos_sockets_and_devices_are_described_never_opened() {
    let env = Env::new();
    let root = env.path("rootfs");
    std::fs::create_dir_all(root.join("dev")).unwrap();
    nix::unistd::mkfifo(&root.join("fifo"), nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    let _sock = std::os::unix::net::UnixListener::bind(root.join("sock")).unwrap();
    // A character device (/dev/zero's numbers) would never end if read.
    nix::sys::stat::mknod(
        &root.join("dev/zero"),
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::from_bits_truncate(0o666),
        nix::sys::stat::makedev(1, 5),
    )
    .unwrap();
    let start = Instant::now();
    let mut child = env
        .cmd([OsStr::new("digest"), root.as_os_str(), OsStr::new("--manifest")])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if start.elapsed() > Duration::from_secs(20) {
            child.kill().unwrap();
            panic!("digest blocked on a FIFO or device");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("/fifo p 0644"), "{text}");
    assert!(text.contains("/sock s "), "{text}");
    assert!(text.contains("/dev/zero c ") && text.contains(" dev=1,5\n"), "{text}");
}

#[test]
fn a_mount_inside_the_tree_is_refused() {
    let env = Env::new();
    let root = env.path("rootfs");
    std::fs::create_dir_all(root.join("mnt")).unwrap();
    let status =
        std::process::Command::new("mount").args(["-t", "tmpfs", "tmpfs"]).arg(root.join("mnt")).status().unwrap();
    assert!(status.success(), "mount tmpfs (tests run as root)");
    let out = env.run([OsStr::new("digest"), root.as_os_str()]);
    let _ = std::process::Command::new("umount").arg(root.join("mnt")).status();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("/mnt") && err.contains("mount point"), "{err}");
}

#[test]
fn hostile_names_are_escaped_in_messages() {
    let env = Env::new();
    let root = env.path("rootfs");
    std::fs::create_dir_all(&root).unwrap();
    let (key, public) = env.keygen("ci");
    let seal = env.path("s.json");
    env.seal(&root, &key, &seal, &[]);
    use std::os::unix::ffi::OsStrExt;
    std::fs::write(root.join(OsStr::from_bytes(b"evil\n\x1b[2Jname\xff")), b"x").unwrap();
    let (_, err) = env.verify(1, &root, &seal, &public, &[]);
    assert!(err.contains("/evil%0A%1B[2Jname%FF added"), "{err}");
    assert!(!err.contains('\x1b'));
}

/// Regression (review): a regular file whose size differs from the sealed one is a difference
/// before a byte of it is read. `rootseal verify` knows the seal before it walks and must not
/// read (here: a 256 MiB hole where the seal has 6 bytes; in an image, 32 GiB) what cannot
/// match. inotify on the file shows any read (IN_ACCESS) the walk makes.
#[test]
fn verify_does_not_read_a_file_whose_size_differs_from_the_seal() {
    use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
    let env = Env::new();
    let root = env.path("rootfs");
    small_tree(&root);
    let (key, public) = env.keygen("ci");
    let seal = env.path("s.json");
    env.seal(&root, &key, &seal, &[]);
    let su = root.join("bin/su");
    std::fs::remove_file(&su).unwrap();
    std::fs::File::create(&su).unwrap().set_len(256 << 20).unwrap();
    let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC).unwrap();
    inotify.add_watch(&su, AddWatchFlags::IN_ACCESS).unwrap();
    let (_, err) = env.verify(1, &root, &seal, &public, &[]);
    assert!(err.contains("/bin/su content differs"), "{err}");
    match inotify.read_events() {
        Err(nix::errno::Errno::EAGAIN) => {}
        other => panic!("the walk read /bin/su: {other:?}"),
    }
    // The same file with the sealed size is read (the watch does see reads).
    std::fs::File::create(&su).unwrap().set_len(6).unwrap();
    let (_, err) = env.verify(1, &root, &seal, &public, &[]);
    assert!(err.contains("/bin/su content differs"), "{err}");
    assert!(inotify.read_events().is_ok_and(|e| !e.is_empty()), "a same-size file is read");
}
