//! The hostile-input suite: what an attacker who controls the image, the host's view of the
//! rootfs, the runtime's input or a seal file can throw at the hook, end to end as root.
//!
//! Every case asserts one exact verdict: the container **ran**, or it was **blocked** with a
//! reason containing specific text, or (for input runc cannot produce) the hook **exited** with
//! a given code and line. Container starts go through the real runc with the hook wired into
//! config.json ([`Fixture`]); protocol-level input that runc never sends is fed to the rootseal
//! binary exactly as runc runs it (`rootseal --config CFG hook prestart`, state on stdin, an
//! empty environment).
//!
//! | module | class |
//! |---|---|
//! | [`rootfs`] | hostile rootfs content: symlinks out of the root and loops, FIFOs, devices, sockets, names with newlines, escapes and invalid UTF-8, 255-byte names, deep nesting, a million entries, a 1 TiB sparse file |
//! | [`races`] | the tree changing under the walk: symlink/directory `RENAME_EXCHANGE`, files appended, truncated and rewritten, a bind mount appearing mid-walk, a file mapped writable across the cache; a host canary watched with inotify throughout, and each race asserts (with inotify on the raced entries, [`Overlaps`]) that its changes met a walk at least once |
//! | [`protocol`] | the hook protocol: empty, truncated, oversized, nested state; stdin held open; bad bundles and root paths; hostile container ids; a hostile hook environment |
//! | [`seals`] | hostile seals: duplicate keys (also escaped), payloadType variants, raw-payload and wrong-key signatures, thresholds, non-canonical and small-order ed25519, base64 variants, oversized and over-signed envelopes |
//! | [`mounts`] | `["rbind","ro"]` over a writable submount, a read-write mount shadowing a read-only one, destinations through image symlinks |
//! | [`spec`] | capabilities that can remount the root, a spec that brings its own rootseal hook entry to rootseal-runtime |
//! | [`trust`] | the trust store: unsafe key files, symlinks, empty or unparseable stores |
//! | [`state`] | state records: a blocked container (another runc root) with a running container's id, or id and bundle |
//!
//! Run (as root, runc and busybox-static installed; about a minute on 2 cores, of which the
//! million-entry case is 15 s and each race 5 to 10 s):
//!
//! ```sh
//! cargo test --test integration hostile:: -- --test-threads=2
//! cargo test --test integration hostile:: -- --ignored --test-threads=2    # the open findings
//! ```
//!
//! A case marked `#[ignore = "finding: ..."]` asserts the correct behaviour of a bug that is
//! not fixed yet; remove the attribute with the fix. The races print how their starts ended
//! with `--nocapture`. Some cases mount (a tmpfs rootfs, tmpfs submounts, bind mounts in the
//! rootfs): every mount is detached by a guard ([`Mounted`]) even when the case fails.

mod mounts;
mod protocol;
mod races;
mod rootfs;
mod seals;
mod spec;
mod state;
mod trust;

use crate::harness::*;
use crate::util::*;
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// What the sealed busybox rootfs prints when it runs (`cat /etc/motd`).
pub const MOTD: &str = "hello from a sealed rootfs";

/// The outcome of one container start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Ran,
    /// The hook's one-line reason.
    Blocked(String),
}

/// Runs the fixture's bundle with runc and classifies the outcome; anything that is neither a
/// clean run nor a rootseal block (a crash, a runc error of its own) fails the test.
pub fn start(f: &Fixture) -> (Verdict, RunResult) {
    let r = f.run("runc");
    if r.out.status.success() {
        assert!(r.stdout().contains(MOTD), "ran but printed something else: {}\n{}", r.stdout(), r.stderr());
        return (Verdict::Ran, r);
    }
    let line = r.assert_blocked();
    (Verdict::Blocked(line), r)
}

/// Starts the container with runc and asserts it ran.
pub fn assert_runs(f: &Fixture) {
    f.run("runc").assert_ran(MOTD);
}

/// Starts the container with runc, asserts it was blocked with a reason containing every one of
/// `expect`, and returns the reason.
pub fn assert_blocks(f: &Fixture, expect: &[&str]) -> String {
    let r = f.run("runc");
    let line = r.assert_blocked();
    for e in expect {
        assert!(line.contains(e), "expected {e:?} in the reason: {line}\nrunc: {}", r.stderr());
    }
    assert!(!line.contains("internal error"), "a panic is never a verdict: {line}");
    line
}

/// Seals the rootfs as it is now and imports that seal (the old one stays in the store).
///
/// The bundle is then annotated with the image name, so that a later change is compared with
/// this newest seal (by-name candidates come newest first) rather than the most similar one.
pub fn reseal(f: &Fixture) {
    let seal = f.reseal(&[]);
    f.env.expect(0, [std::ffi::OsStr::new("trust"), std::ffi::OsStr::new("import"), seal.as_os_str()]);
    f.annotate("rootseal.dev/image", IMAGE);
}

/// The OCI state runc passes at prestart.
pub fn state(id: &str, bundle: &Path) -> Vec<u8> {
    prestart_state(id, bundle)
}

/// Runs the hook binary as runc would: `--config` in its arguments, only `env` in its
/// environment (runc passes a hook nothing but the hook's own `env`), `stdin` written then
/// closed (None: held open and never written). A hook still running after 60 s is killed
/// (exit 124 from timeout(1)): that is a hang.
pub fn hook(f: &Fixture, stage: &str, stdin: Option<&[u8]>, env: &[(&str, &str)]) -> HookRun {
    feed_hook(
        Command::new("/usr/bin/timeout")
            .args(["-k", "5", "60"])
            .arg(bin())
            .arg("--config")
            .arg(f.env.config_path())
            .args(["hook", stage])
            .env_clear()
            .envs(env.iter().copied()),
        stdin,
    )
}

/// The prestart hook on the fixture's bundle with a fresh id.
pub fn prestart(f: &Fixture) -> HookRun {
    hook(f, "prestart", Some(&state(&container_id("direct"), &f.bundle)), &[])
}

/// Watches paths with inotify for any open or read (IN_OPEN | IN_ACCESS): on a directory that
/// covers the directory itself and every entry in it.
pub struct Watch {
    inotify: Inotify,
    paths: Vec<PathBuf>,
}

impl Watch {
    pub fn new(paths: &[&Path]) -> Watch {
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC).unwrap();
        for p in paths {
            inotify
                .add_watch(*p, AddWatchFlags::IN_OPEN | AddWatchFlags::IN_ACCESS | AddWatchFlags::IN_DONT_FOLLOW)
                .unwrap_or_else(|e| panic!("watch {}: {e}", p.display()));
        }
        Watch { inotify, paths: paths.iter().map(|p| p.to_path_buf()).collect() }
    }

    /// Asserts nothing opened or read a watched path since the watch began.
    pub fn assert_untouched(&self, when: &str) {
        match self.inotify.read_events() {
            Err(nix::errno::Errno::EAGAIN) => {}
            Ok(events) => panic!("{when}: {:?} were opened or read: {events:?}", self.paths),
            Err(e) => panic!("inotify: {e}"),
        }
    }
}

/// A host directory outside the rootfs holding a secret file, watched from creation on: the
/// hook must never open, list or read it, whatever the rootfs points at.
pub struct Canary {
    pub dir: PathBuf,
    pub file: PathBuf,
    watch: Watch,
}

impl Canary {
    pub fn new(f: &Fixture) -> Canary {
        let dir = f.env.path("host-canary");
        std::fs::create_dir(&dir).unwrap();
        let file = dir.join("secret");
        std::fs::write(&file, b"host secret: never read by the hook\n").unwrap();
        let watch = Watch::new(&[&dir, &file]);
        Canary { dir, file, watch }
    }

    pub fn assert_untouched(&self, when: &str) {
        self.watch.assert_untouched(when);
    }
}

/// Counts the racer's bursts of changes that overlapped a walk: the walk had a watched path
/// (the raced file, or the directory holding the raced entries) open when the burst began, or
/// opened, read or closed one while it ran. inotify shows the walk's IN_OPEN, IN_ACCESS and
/// IN_CLOSE of them; the racers themselves cause none of these (they write, truncate, rename
/// and mount through descriptors opened before the watch). A race whose changes never met a
/// walk proved nothing, so every race asserts a count > 0.
pub struct Overlaps {
    inotify: Inotify,
    /// Opens minus closes seen so far: > 0 while the walk holds a watched path open.
    open: std::sync::atomic::AtomicI64,
    bursts: std::sync::atomic::AtomicU64,
}

impl Overlaps {
    pub fn new(paths: &[&Path]) -> Overlaps {
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC).unwrap();
        let mask = AddWatchFlags::IN_OPEN
            | AddWatchFlags::IN_ACCESS
            | AddWatchFlags::IN_CLOSE_NOWRITE
            | AddWatchFlags::IN_CLOSE_WRITE
            | AddWatchFlags::IN_DONT_FOLLOW;
        for p in paths {
            inotify.add_watch(*p, mask).unwrap_or_else(|e| panic!("watch {}: {e}", p.display()));
        }
        Overlaps { inotify, open: Default::default(), bursts: Default::default() }
    }

    /// Reads the queued events, keeping the open count; returns how many there were.
    fn drain(&self) -> usize {
        use std::sync::atomic::Ordering::Relaxed;
        let mut n = 0;
        loop {
            match self.inotify.read_events() {
                Ok(events) => {
                    n += events.len();
                    for e in events {
                        assert!(!e.mask.contains(AddWatchFlags::IN_Q_OVERFLOW), "inotify queue overflowed");
                        if e.mask.contains(AddWatchFlags::IN_OPEN) {
                            self.open.fetch_add(1, Relaxed);
                        }
                        if e.mask.intersects(AddWatchFlags::IN_CLOSE_NOWRITE | AddWatchFlags::IN_CLOSE_WRITE) {
                            // Never below 0: a close of something opened before the watch.
                            let _ = self.open.fetch_update(Relaxed, Relaxed, |o| Some((o - 1).max(0)));
                        }
                    }
                }
                Err(nix::errno::Errno::EAGAIN) => return n,
                Err(e) => panic!("inotify: {e}"),
            }
        }
    }

    /// Runs one burst of changes; counts it when it overlapped a walk of the watched paths.
    pub fn burst(&self, changes: impl FnOnce()) {
        self.drain();
        let open_at_start = self.open.load(std::sync::atomic::Ordering::Relaxed) > 0;
        changes();
        if self.drain() > 0 || open_at_start {
            self.bursts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Asserts at least one burst overlapped a walk; returns how many did.
    pub fn assert_overlapped(&self, race: &str) -> u64 {
        let n = self.bursts.load(std::sync::atomic::Ordering::Relaxed);
        assert!(n > 0, "{race}: no burst of changes overlapped a walk; the race tested nothing");
        n
    }
}

fn cstr(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap()
}

/// A mount made by a test, detached (with everything stacked on it) when dropped.
pub struct Mounted(pub PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let p = cstr(&self.0);
        // SAFETY: a valid NUL-terminated path; umount2 only reads it. Loop until nothing is
        // mounted there any more (EINVAL).
        while unsafe { libc::umount2(p.as_ptr(), libc::MNT_DETACH) } == 0 {}
    }
}

/// mount(2) without going through mount(8), which would open paths itself.
pub fn mount(source: &Path, target: &Path, fstype: &str, flags: libc::c_ulong) -> std::io::Result<()> {
    let (s, t, ty) = (cstr(source), cstr(target), CString::new(fstype).unwrap());
    // SAFETY: valid NUL-terminated strings that outlive the call; no data argument.
    let rc = unsafe { libc::mount(s.as_ptr(), t.as_ptr(), ty.as_ptr(), flags, std::ptr::null()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

pub fn umount(target: &Path) -> std::io::Result<()> {
    let t = cstr(target);
    // SAFETY: a valid NUL-terminated path.
    if unsafe { libc::umount2(t.as_ptr(), libc::MNT_DETACH) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

pub fn mount_tmpfs(target: &Path) -> Mounted {
    mount(Path::new("tmpfs"), target, "tmpfs", 0).unwrap_or_else(|e| panic!("tmpfs at {}: {e}", target.display()));
    Mounted(target.into())
}

/// Adds a mount to config.json.
pub fn add_mount(f: &Fixture, m: serde_json::Value) {
    f.patch(|c| c["mounts"].as_array_mut().unwrap().push(m));
}

/// The config written by `Env::write_config` plus `extra` (top-level keys or tables).
pub fn config(f: &Fixture, extra: &str) {
    f.env.write_config(extra);
}

/// The digest the fixture's original seal seals, and where the seal store files it.
pub fn sealed_digest(f: &Fixture) -> rootseal::manifest::TreeDigest {
    rootseal::seal::Seal::parse(&std::fs::read(&f.seal).unwrap()).unwrap().digest
}

pub fn stored_seal_path(f: &Fixture) -> PathBuf {
    f.env.path(&format!("seals/{}.json", sealed_digest(f).hex()))
}

/// Lists the names in a directory (not recursive), sorted.
pub fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// Runs `body` `n` times while `racer` runs in a loop on another thread until they are done;
/// returns what `body` returned each time and how many racer iterations ran. The racer stops
/// also when `body` panics (a failed assertion must not leave it spinning forever).
pub fn while_racing<T>(n: usize, mut racer: impl FnMut() + Send, mut body: impl FnMut(usize) -> T) -> (Vec<T>, u64) {
    use std::sync::atomic::{AtomicBool, Ordering};
    struct StopOnDrop<'a>(&'a AtomicBool);
    impl Drop for StopOnDrop<'_> {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let h = s.spawn(|| {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                racer();
                i += 1;
            }
            i
        });
        let guard = StopOnDrop(&stop);
        let out: Vec<T> = (0..n).map(&mut body).collect();
        drop(guard);
        (out, h.join().expect("the racer panicked"))
    })
}
