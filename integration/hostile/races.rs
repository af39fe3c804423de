//! The tree changing while the hook walks it: a racer thread mutates the rootfs in a tight loop
//! while runc starts the container again and again. Every start must end in a clean pass or a
//! block with a reason (never a crash, never the deadline); a pass must have verified the
//! sealed content; the host outside the rootfs is never read (an inotify canary); and the
//! racer's changes overlapped a walk at least once (inotify on the raced entries, [`Overlaps`]).

use super::*;
use crate::harness::*;
use std::ffi::CString;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::time::{Duration, Instant};

/// Container starts per race.
const STARTS: usize = 50;

/// Reasons a start may be blocked for while the tree changes under the walk.
const RACE_REASONS: &[&str] = &[
    "changed while it was read",
    "type changed from",
    "added (",
    "removed (",
    "content differs from seal",
    "is a mount point",
    // readlinkat on a name that was a symlink at lstat and is a directory now.
    "read symlink",
];

/// Drops the poststop hook so that each passing start leaves its state record, which names the
/// seal the hook verified.
fn keep_state_records(f: &Fixture) {
    f.patch(|c| c["hooks"]["poststop"] = serde_json::json!([]));
}

/// Checks one start of a race: a pass verified `digest` (its state record says so), a block
/// gives a race reason, and no start took the hook near its deadline.
fn check_start(f: &Fixture, i: usize, digest: &str) -> (Option<String>, Duration) {
    let t = Instant::now();
    let (v, r) = start(f);
    let took = t.elapsed();
    assert!(took < Duration::from_secs(8), "start {i} took {took:?}");
    match v {
        Verdict::Ran => {
            let rec = rootseal::state::path_for(&f.env.path("state"), &r.id, &f.bundle).unwrap();
            let bytes = std::fs::read(&rec).unwrap_or_else(|e| panic!("start {i} ran without a state record: {e}"));
            let rec: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(rec["verdict"], "verified", "start {i}: {rec}");
            assert_eq!(rec["seal_digest"], digest, "start {i}: a pass verified another seal: {rec}");
            (None, took)
        }
        Verdict::Blocked(line) => {
            assert!(
                RACE_REASONS.iter().any(|w| line.contains(w)) && !line.contains("deadline"),
                "start {i}: not a race reason: {line}"
            );
            (Some(line), took)
        }
    }
}

/// Prints how the starts ended: passes, and blocks by class of reason; asserts that the
/// racer's changes overlapped a walk at least once.
fn summarize(name: &str, results: &[(Option<String>, Duration)], spins: u64, overlaps: &Overlaps) {
    let overlapped = overlaps.assert_overlapped(name);
    let mut reasons: std::collections::BTreeMap<String, usize> = Default::default();
    for line in results.iter().filter_map(|r| r.0.as_ref()) {
        let class = RACE_REASONS.iter().find(|w| line.contains(*w)).copied().unwrap_or("other");
        *reasons.entry(class.to_string()).or_default() += 1;
    }
    let passed = results.iter().filter(|r| r.0.is_none()).count();
    let slowest = results.iter().map(|r| r.1).max().unwrap_or_default();
    if let Some(l) = results.iter().find_map(|r| r.0.as_ref()) {
        eprintln!("{name}: e.g. {l}");
    }
    eprintln!(
        "{name}: {} starts, {passed} ran, blocked {reasons:?}, racer {spins} iterations ({overlapped} during a walk), slowest {slowest:?}",
        results.len()
    );
}

/// Sleeps 0 to 300 ms (a fixed pseudo-random sequence): quiet spells of every length between
/// bursts of changes, so that walks both see the sealed content whole and see it change.
fn pause(seed: &mut u64) {
    *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    std::thread::sleep(Duration::from_millis((*seed >> 33) % 300));
}

fn digest_now(f: &Fixture) -> String {
    f.env.expect(0, [std::ffi::OsStr::new("digest"), f.rootfs.as_os_str()]).0.trim().to_string()
}

#[test]
fn a_symlink_swapped_with_a_directory_never_leads_the_walk_to_the_host() {
    let f = Fixture::new();
    let canary = Canary::new(&f);
    let var = f.rootfs.join("var");
    std::fs::create_dir(var.join("x")).unwrap();
    std::fs::write(var.join("x/inside"), b"sealed, inside the rootfs\n").unwrap();
    std::os::unix::fs::symlink(&canary.dir, var.join("y")).unwrap();
    reseal(&f);
    keep_state_records(&f);
    let digest = digest_now(&f);
    let exchange = exchanger(&var, "x", "y");
    let overlaps = Overlaps::new(&[&var]);
    let (results, spins) = while_racing(STARTS, || overlaps.burst(&exchange), |i| check_start(&f, i, &digest));
    summarize("symlink/directory RENAME_EXCHANGE", &results, spins, &overlaps);
    canary.assert_untouched("the symlink/directory exchange race");
}

/// `/var/data`, 256 KiB of `A`, sealed into the fixture (state records kept): its path, its
/// sealed content and the tree digest.
fn sealed_data_file(f: &Fixture) -> (std::path::PathBuf, Vec<u8>, String) {
    let p = f.rootfs.join("var/data");
    let sealed = vec![b'A'; 256 << 10];
    std::fs::write(&p, &sealed).unwrap();
    reseal(f);
    keep_state_records(f);
    let digest = digest_now(f);
    (p, sealed, digest)
}

#[test]
fn a_file_appended_to_and_truncated_while_hashed_never_passes_changed() {
    let f = Fixture::new();
    let (p, sealed, digest) = sealed_data_file(&f);
    let file = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
    let tail = vec![b'B'; 64 << 10];
    let mut seed = 1u64;
    let overlaps = Overlaps::new(&[&p]);
    let (results, spins) = while_racing(
        STARTS,
        || {
            use std::io::Write as _;
            // A burst of changes, then the sealed content left quiet for a while.
            overlaps.burst(|| {
                for _ in 0..10 {
                    (&file).write_all(&tail).unwrap();
                    file.set_len(sealed.len() as u64).unwrap();
                    file.set_len(1).unwrap();
                    file.set_len(0).unwrap();
                    (&file).write_all(&sealed).unwrap();
                }
            });
            pause(&mut seed);
        },
        |i| check_start(&f, i, &digest),
    );
    summarize("append/truncate", &results, spins, &overlaps);
    // Quiet again: the sealed content runs.
    std::fs::write(&p, &sealed).unwrap();
    assert_runs(&f);
}

#[test]
fn a_file_rewritten_in_place_while_hashed_never_passes_changed() {
    let f = Fixture::new();
    let (p, sealed, digest) = sealed_data_file(&f);
    let file = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
    let other = vec![b'Z'; 16 << 10];
    let mut at = 0u64;
    let mut seed = 2u64;
    let overlaps = Overlaps::new(&[&p]);
    let (results, spins) = while_racing(
        STARTS,
        || {
            // Same size throughout: only the content (and mtime/ctime) changes, at a moving
            // offset; a pause in the sealed state after each pass over the file.
            overlaps.burst(|| {
                file.write_all_at(&other, at).unwrap();
                file.write_all_at(&sealed[..other.len()], at).unwrap();
            });
            at = (at + (16 << 10)) % (256 << 10);
            if at == 0 {
                pause(&mut seed);
            }
        },
        |i| check_start(&f, i, &digest),
    );
    summarize("rewrite in place", &results, spins, &overlaps);
}

#[test]
fn a_bind_mount_appearing_mid_walk_never_leads_the_walk_to_the_host() {
    let f = Fixture::new();
    let canary = Canary::new(&f);
    let mnt = f.rootfs.join("var/mnt");
    std::fs::create_dir(&mnt).unwrap();
    reseal(&f);
    keep_state_records(&f);
    let digest = digest_now(&f);
    // Detaches whatever the racer left mounted, also if an assertion fails.
    let _guard = Mounted(mnt.clone());
    let overlaps = Overlaps::new(&[&f.rootfs.join("var")]);
    let (results, spins) = while_racing(
        STARTS,
        || {
            // Mounted half of the time: a mount that came and went within microseconds met
            // no walk's open of var/mnt in 50 starts.
            overlaps.burst(|| {
                let _ = mount(&canary.dir, &mnt, "", libc::MS_BIND);
                std::thread::sleep(Duration::from_millis(1));
                let _ = umount(&mnt);
            });
            std::thread::sleep(Duration::from_millis(1));
        },
        |i| check_start(&f, i, &digest),
    );
    summarize("bind mount mid-walk", &results, spins, &overlaps);
    drop(_guard);
    canary.assert_untouched("the bind-mount race");
}

#[test]
fn a_file_swapped_with_a_fifo_never_hangs_the_start() {
    let f = Fixture::new();
    let var = f.rootfs.join("var");
    std::fs::write(var.join("file"), b"a regular file\n").unwrap();
    nix::unistd::mkfifo(&var.join("fifo"), nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    reseal(&f);
    keep_state_records(&f);
    let digest = digest_now(&f);
    let exchange = exchanger(&var, "file", "fifo");
    let overlaps = Overlaps::new(&[&var]);
    let (results, spins) = while_racing(STARTS, || overlaps.burst(&exchange), |i| check_start(&f, i, &digest));
    summarize("file/FIFO RENAME_EXCHANGE", &results, spins, &overlaps);
}

/// A page already dirtied through a shared writable mapping can be written again without the
/// kernel moving mtime or ctime: the verification cache must never have trusted such a file.
#[test]
fn a_file_mapped_writable_is_never_trusted_from_the_cache() {
    let f = Fixture::new();
    let p = f.rootfs.join("var/mapped");
    std::fs::write(&p, vec![b'A'; 4096]).unwrap();
    reseal(&f);
    let file = std::fs::OpenOptions::new().read(true).write(true).custom_flags(libc::O_CLOEXEC).open(&p).unwrap();
    // SAFETY: a fresh shared mapping of one page of a file we hold open; nothing else maps it
    // in this process, and it is unmapped below before the file is dropped.
    let map = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            0,
        )
    };
    assert_ne!(map, libc::MAP_FAILED);
    let page = map.cast::<u8>();
    // SAFETY: page points at 4096 mapped, writable bytes.
    unsafe { page.write_volatile(b'A') };
    // Past the cache's racy window, so only the lease decides whether the hash is cached.
    std::thread::sleep(Duration::from_millis(2200));
    assert_runs(&f);
    // SAFETY: as above; the page is already dirty, so this write moves neither mtime nor ctime.
    unsafe { page.write_volatile(b'B') };
    assert_blocks(&f, &["/var/mapped content differs from seal"]);
    // SAFETY: unmapping exactly the mapping made above.
    assert_eq!(unsafe { libc::munmap(map, 4096) }, 0);
}

/// A closure that swaps `a` and `b` in `dir` atomically (renameat2 RENAME_EXCHANGE).
fn exchanger(dir: &Path, a: &str, b: &str) -> impl Fn() + Send + Sync {
    let dir = std::fs::File::open(dir).unwrap();
    let (a, b) = (CString::new(a).unwrap(), CString::new(b).unwrap());
    move || {
        // SAFETY: a valid directory fd and NUL-terminated names.
        let rc =
            unsafe { libc::renameat2(dir.as_raw_fd(), a.as_ptr(), dir.as_raw_fd(), b.as_ptr(), libc::RENAME_EXCHANGE) };
        assert_eq!(rc, 0, "{}", std::io::Error::last_os_error());
    }
}
