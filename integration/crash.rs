//! Crash safety: real rootseal processes SIGKILLed at random points while they write the trust
//! store, the seal store, the verification cache, the hook's state records and the monitor's
//! status and metrics files. After every kill the stores must be readable and consistent,
//! nothing acknowledged (a command that exited 0) may be lost, and the next run must work.
//!
//! Every write goes through `atomic::write` (temp file `.NAME.tmp.PID.N` in the same directory,
//! fsync, rename, fsync of the directory), so a kill leaves either the old file or the new one,
//! plus possibly a temp file that readers must ignore. The kill points come from a seeded
//! xorshift generator: a failure prints the seed, and `ROOTSEAL_CRASH_SEED=N` replays it.

use crate::harness::*;
use crate::util::*;
use sha2::{Digest as _, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::io::Write as _;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

/// xorshift64* (Vigna, "An experimental exploration of Marsaglia's xorshift generators"):
/// small, seedable, good enough to spread kill points.
pub struct Rng(u64);

impl Rng {
    /// A generator for one test: the base seed (`ROOTSEAL_CRASH_SEED`, else the clock) mixed
    /// with the test's name, printed so that a failure can be replayed.
    pub fn for_test(test: &str) -> Rng {
        let base = std::env::var("ROOTSEAL_CRASH_SEED").ok().and_then(|s| s.parse::<u64>().ok()).unwrap_or_else(|| {
            SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1)
                ^ u64::from(std::process::id())
        });
        eprintln!("{test}: seed {base} (replay with ROOTSEAL_CRASH_SEED={base})");
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in test.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        Rng((base ^ h) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// True with probability `num / den`.
    pub fn chance(&mut self, num: u64, den: u64) -> bool {
        self.below(den) < num
    }

    pub fn hex32(&mut self) -> String {
        (0..4).map(|_| format!("{:016x}", self.next())).collect()
    }
}

/// How a process run under [`run_killed`] ended.
#[derive(Debug)]
pub enum Ending {
    /// It finished before the kill: its exit code, stdout and stderr.
    Exited { code: Option<i32>, stdout: String, stderr: String },
    /// SIGKILL ended it.
    Killed,
}

/// Spawns `cmd`, writes `stdin` (then closes it), and SIGKILLs the process `delay` after the
/// spawn returned (std's spawn returns once the exec happened).
pub fn run_killed(cmd: &mut Command, stdin: Option<&[u8]>, delay: Duration) -> Ending {
    cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = cmd.spawn().expect("spawn rootseal");
    if let Some(bytes) = stdin {
        let mut pipe = child.stdin.take().expect("stdin pipe");
        // The process may already be dead (a tiny delay): a broken pipe is fine.
        let _ = pipe.write_all(bytes);
    }
    if let Some(rest) = delay.checked_sub(start.elapsed()) {
        std::thread::sleep(rest);
    }
    let _ = child.kill();
    let out = child.wait_with_output().expect("wait");
    if out.status.signal() == Some(libc::SIGKILL) {
        Ending::Killed
    } else {
        Ending::Exited {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// Runs `cmd` to the end (no kill) and returns how long it took, for calibrating kill delays.
fn timed(cmd: &mut Command, stdin: Option<&[u8]>) -> (Duration, std::process::Output) {
    cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = cmd.spawn().expect("spawn rootseal");
    if let Some(bytes) = stdin {
        let _ = child.stdin.take().expect("stdin").write_all(bytes);
    }
    let out = child.wait_with_output().expect("wait");
    (start.elapsed(), out)
}

/// A kill delay uniform in `0..span`, in microseconds.
fn delay_within(rng: &mut Rng, span: Duration) -> Duration {
    Duration::from_micros(rng.below(span.as_micros().max(1) as u64))
}

/// Where kill points are drawn from: `0..span`, with a span that follows the machine's speed
/// (other tests run beside these). A run that finished first shrinks it by 10%, a kill grows
/// it by 5%: it settles where about two thirds of the runs are killed, so kill points cover
/// the whole run, its end (the writes) included.
struct Span(Duration);

impl Span {
    fn draw(&self, rng: &mut Rng) -> Duration {
        delay_within(rng, self.0)
    }

    fn update(&mut self, e: &Ending) {
        self.0 = match e {
            Ending::Killed => self.0.mul_f64(1.05),
            Ending::Exited { .. } => self.0.mul_f64(0.9),
        };
    }
}

/// How long a test kills: until `kills` SIGKILLs, or `time` has passed (the machine is shared;
/// the test then asserts it still got half of them).
struct Budget {
    start: Instant,
    kills: usize,
    time: Duration,
}

impl Budget {
    fn new(kills: usize, time: Duration) -> Budget {
        Budget { start: Instant::now(), kills, time }
    }

    fn more(&self, t: &Tally) -> bool {
        t.killed < self.kills && self.start.elapsed() < self.time
    }

    fn assert_met(&self, t: &Tally, test: &str) {
        assert!(
            t.killed >= self.kills / 2,
            "{test}: only {} SIGKILLs in {:?} (target {}): the machine is too slow or the runs finish too fast",
            t.killed,
            self.start.elapsed(),
            self.kills
        );
    }
}

/// Kill statistics of one test, printed at its end.
#[derive(Default)]
struct Tally {
    killed: usize,
    finished: usize,
    /// Kills after which a new temp file (`.NAME.tmp.*`) was found: the process died between
    /// creating its temp file and renaming it, i.e. in the middle of a write.
    mid_write: usize,
    /// Temp files seen so far.
    temps: BTreeSet<PathBuf>,
}

impl Tally {
    fn count(&mut self, e: &Ending) {
        match e {
            Ending::Killed => self.killed += 1,
            Ending::Exited { .. } => self.finished += 1,
        }
    }

    /// Notes the temp files under `dirs` after a kill; new ones mean it landed mid-write.
    fn after_kill(&mut self, dirs: &[PathBuf]) {
        let now: BTreeSet<PathBuf> = dirs.iter().flat_map(|d| temp_files(d)).collect();
        assert_temp_names_are_ignored(&now.iter().cloned().collect::<Vec<_>>());
        if now.difference(&self.temps).next().is_some() {
            self.mid_write += 1;
        }
        self.temps.extend(now);
    }

    fn report(&self, test: &str, started: Instant, leftovers: usize) {
        eprintln!(
            "{test}: {} SIGKILLs ({} landed mid-write), {} runs finished before their kill, {} temp file(s) left behind, {:.1}s",
            self.killed,
            self.mid_write,
            self.finished,
            leftovers,
            started.elapsed().as_secs_f64()
        );
    }
}

/// The temp files `atomic::write` leaves when its process dies before the rename:
/// `.NAME.tmp.PID.N`, anywhere under `dir`.
pub fn temp_files(dir: &Path) -> Vec<PathBuf> {
    listing(dir)
        .into_iter()
        .filter(|rel| {
            let name = Path::new(rel).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            name.starts_with('.') && name.contains(".tmp.")
        })
        .map(|rel| dir.join(rel))
        .collect()
}

/// What a reader that filters by extension sees of a temp file: it must never be the
/// extension of a real store file, or the temp file would be read as one.
fn assert_temp_names_are_ignored(temps: &[PathBuf]) {
    for t in temps {
        let ext = t.extension().map(|e| e.to_string_lossy().into_owned()).unwrap_or_default();
        assert!(
            !["pub", "json", "cache", "prom"].contains(&ext.as_str()),
            "temp file {} has extension {ext:?}: readers that list the directory would take it for a real file",
            t.display()
        );
    }
}

/// Live processes whose command line or environment mentions `needle` (a test's temp dir:
/// the hooks runc starts get `--config PATH`, the tests' own runs `ROOTSEAL_CONFIG=PATH`).
/// None may outlive the test's own waits.
pub fn processes_mentioning(needle: &Path) -> Vec<(i32, String)> {
    let needle = needle.display().to_string();
    let me = std::process::id() as i32;
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else { continue };
        if pid == me {
            continue;
        }
        // A zombie has an empty command line and environment: a dead process is not left over.
        let read = |what: &str| {
            std::fs::read(format!("/proc/{pid}/{what}"))
                .map(|raw| String::from_utf8_lossy(&raw).replace('\0', " "))
                .unwrap_or_default()
        };
        let cmdline = read("cmdline");
        if cmdline.contains(&needle) || read("environ").contains(&needle) {
            found.push((pid, cmdline.trim_end().to_string()));
        }
    }
    found
}

fn assert_no_processes_left(env: &Env) {
    let left = processes_mentioning(env.tmp.path());
    assert!(left.is_empty(), "rootseal processes left behind: {left:?}");
}

// ---------------------------------------------------------------------------------------------
// 1. Trust store and seal store: `trust import`, `trust add`, `trust revoke`.
// ---------------------------------------------------------------------------------------------

/// One seal made in setup: its bundle, file, bytes, digest, and where the store indexes it.
struct SealCase {
    bundle: PathBuf,
    file: PathBuf,
    bytes: Vec<u8>,
    digest: rootseal::manifest::TreeDigest,
    content_key: rootseal::manifest::TreeDigest,
    name: String,
}

/// One store operation the loop runs (and kills).
#[derive(Debug, Clone)]
enum StoreOp {
    Import(usize),
    Add(usize),
    RevokeKey(String),
    RevokeDigest(String),
}

impl StoreOp {
    fn kind(&self) -> usize {
        match self {
            StoreOp::Import(_) => 0,
            StoreOp::Add(_) => 1,
            StoreOp::RevokeKey(_) | StoreOp::RevokeDigest(_) => 2,
        }
    }
}

/// What has been acknowledged (exit 0) so far, and so must survive every later kill.
#[derive(Default)]
struct Acked {
    seals: BTreeSet<usize>,
    keys: BTreeSet<String>,
    revoked_keys: BTreeSet<String>,
    revoked_digests: BTreeSet<String>,
}

impl Acked {
    fn add(&mut self, op: &StoreOp) {
        match op {
            StoreOp::Import(i) => {
                self.seals.insert(*i);
            }
            StoreOp::Add(j) => {
                self.keys.insert(format!("extra{j}"));
            }
            StoreOp::RevokeKey(k) => {
                self.revoked_keys.insert(k.clone());
            }
            StoreOp::RevokeDigest(d) => {
                self.revoked_digests.insert(d.clone());
            }
        }
    }
}

const SEALS: usize = 10;
const EXTRA_KEYS: usize = 6;
const STORE_KILLS: usize = 130;

#[test]
fn trust_and_seal_stores_survive_sigkill_at_random_points() {
    let started = Instant::now();
    let mut rng = Rng::for_test("trust_and_seal_stores");
    let env = Env::new();
    let (key, public) = env.keygen("ci");
    env.expect(0, [OsStr::new("trust"), OsStr::new("add"), public.as_os_str()]);
    let extra: Vec<PathBuf> = (0..EXTRA_KEYS).map(|i| env.keygen(&format!("extra{i}")).1).collect();
    let seals: Vec<SealCase> = (0..SEALS)
        .map(|i| {
            let bundle = env.path(&format!("b{i}"));
            let rootfs = bundle.join("rootfs");
            small_tree(&rootfs);
            std::fs::write(rootfs.join("etc/release"), format!("build {i}\n")).unwrap();
            std::fs::write(
                bundle.join("config.json"),
                br#"{"ociVersion":"1.0.2","root":{"path":"rootfs","readonly":true},"mounts":[{"destination":"/proc","type":"proc","source":"proc"}]}"#,
            )
            .unwrap();
            let file = env.path(&format!("s{i}.json"));
            // Three names for ten seals: the by-name index files hold several lines and are
            // rewritten by later imports.
            env.seal(&rootfs, &key, &file, &["--name", &format!("crash.local/app:{}", i % 3)]);
            let bytes = std::fs::read(&file).unwrap();
            let s = rootseal::seal::Seal::parse(&bytes).unwrap();
            let content_key = rootseal::store::content_key(&s.manifest);
            SealCase { bundle, file, bytes, digest: s.digest, content_key, name: s.name }
        })
        .collect();
    // Revocations of key ids and digests nothing here uses: revoking must not make an
    // acknowledged seal fail.
    let fake_keys: Vec<String> = (0..6).map(|_| rng.hex32()).collect();
    let fake_digests: Vec<String> = (0..6).map(|_| format!("sha256:{}", rng.hex32())).collect();

    let args = |op: &StoreOp| -> Vec<std::ffi::OsString> {
        match op {
            StoreOp::Import(i) => vec!["trust".into(), "import".into(), seals[*i].file.clone().into()],
            StoreOp::Add(j) => vec!["trust".into(), "add".into(), extra[*j].clone().into()],
            StoreOp::RevokeKey(k) => vec!["trust".into(), "revoke".into(), "--key".into(), k.into()],
            StoreOp::RevokeDigest(d) => vec!["trust".into(), "revoke".into(), "--digest".into(), d.into()],
        }
    };
    // Calibrate each kind of operation on a first run that really writes (fsyncs included):
    // kill points are drawn from the whole run.
    let mut acked = Acked::default();
    acked.keys.insert("ci".into());
    let mut spans = [Duration::ZERO; 3];
    for op in [
        StoreOp::Import(0),
        StoreOp::Import(1),
        StoreOp::Add(0),
        StoreOp::RevokeKey(fake_keys[0].clone()),
        StoreOp::RevokeDigest(fake_digests[0].clone()),
    ] {
        let (t, out) = timed(&mut env.cmd(args(&op)), None);
        assert!(out.status.success(), "{op:?}: {}", String::from_utf8_lossy(&out.stderr));
        spans[op.kind()] = spans[op.kind()].max(t);
        acked.add(&op);
    }
    eprintln!("trust_and_seal_stores: run times import {:?}, add {:?}, revoke {:?}", spans[0], spans[1], spans[2]);

    let mut spans = spans.map(Span);
    let dirs = [env.path("trust"), env.path("seals")];
    let mut tally = Tally::default();
    let budget = Budget::new(STORE_KILLS, Duration::from_secs(40));
    let mut it = 0;
    while budget.more(&tally) {
        it += 1;
        let op = match rng.below(10) {
            0..=5 => StoreOp::Import(rng.below(SEALS as u64) as usize),
            6 | 7 => StoreOp::Add(rng.below(EXTRA_KEYS as u64) as usize),
            8 => StoreOp::RevokeKey(fake_keys[rng.below(6) as usize].clone()),
            _ => StoreOp::RevokeDigest(fake_digests[rng.below(6) as usize].clone()),
        };
        let delay = spans[op.kind()].draw(&mut rng);
        let ending = run_killed(&mut env.cmd(args(&op)), None, delay);
        tally.count(&ending);
        spans[op.kind()].update(&ending);
        let when = format!("iteration {it}, {op:?} killed after {delay:?}");
        match &ending {
            Ending::Exited { code: Some(0), .. } => acked.add(&op),
            Ending::Exited { code, stdout, stderr } => {
                panic!("{when}: it was not killed but failed with {code:?} (after earlier kills):\n{stdout}{stderr}")
            }
            Ending::Killed => tally.after_kill(&dirs),
        }
        // The seal just imported (or a random one) is also verified in full.
        let verify = match op {
            StoreOp::Import(i) => i,
            _ => rng.below(SEALS as u64) as usize,
        };
        check_stores(&env, &seals, &acked, &when, verify);
        if matches!(ending, Ending::Killed) && rng.chance(1, 3) {
            // The same operation, run to the end, must now succeed: nothing the kill left
            // behind (a temp file, a seal filed but not indexed) may get in its way. (Every
            // later operation that finishes before its kill checks the same.)
            let (so, se) = env.expect(0, args(&op));
            if let StoreOp::Import(i) = op {
                assert!(so.contains(&seals[i].digest.to_string()), "{so}{se}");
            }
            acked.add(&op);
            check_stores(&env, &seals, &acked, &format!("{when}, then run again"), verify);
        }
    }
    // The hook's own lookup (content index, then the seal file, then the trust store) finds
    // and verifies every acknowledged seal.
    for &i in &acked.seals {
        let (out, _) = env.expect(0, [OsStr::new("check"), seals[i].bundle.as_os_str()]);
        assert!(out.contains(&format!("against seal {}", seals[i].digest)), "{out}");
    }
    tally.report("trust_and_seal_stores", started, dirs.iter().map(|d| temp_files(d).len()).sum());
    eprintln!(
        "trust_and_seal_stores: acknowledged {} seal(s), {} key(s), {} revocation(s)",
        acked.seals.len(),
        acked.keys.len(),
        acked.revoked_keys.len() + acked.revoked_digests.len()
    );
    budget.assert_met(&tally, "trust_and_seal_stores");
    assert_no_processes_left(&env);
}

/// The invariants after any kill: `trust list` works and shows every acknowledged key and
/// revocation; every acknowledged seal is filed byte for byte and is reachable through its
/// content and name indexes; every index file is whole. Seal number `verify`, if acknowledged,
/// is also verified against the trust store in full (signature checks are slow in a debug
/// build; the others' bytes are unchanged and the trust store only grew).
fn check_stores(env: &Env, seals: &[SealCase], acked: &Acked, when: &str, verify: usize) {
    let out = env.run(["trust", "list", "--json"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{when}: trust list: {}", String::from_utf8_lossy(&out.stderr));
    let list: serde_json::Value = serde_json::from_str(&text).expect("trust list --json is JSON");
    let names: BTreeSet<&str> = list["keys"].as_array().unwrap().iter().map(|k| k["name"].as_str().unwrap()).collect();
    for k in &acked.keys {
        assert!(names.contains(k.as_str()), "{when}: acknowledged key {k} lost: {text}");
    }
    let set = |v: &serde_json::Value| -> BTreeSet<String> {
        v.as_array().map(|a| a.iter().map(|x| x.as_str().unwrap().to_string()).collect()).unwrap_or_default()
    };
    let (rk, rd) = (set(&list["revoked"]["keys"]), set(&list["revoked"]["digests"]));
    assert!(acked.revoked_keys.is_subset(&rk), "{when}: an acknowledged key revocation was lost: {text}");
    assert!(acked.revoked_digests.is_subset(&rd), "{when}: an acknowledged digest revocation was lost: {text}");

    let store = rootseal::store::SealStore::new(env.path("seals"));
    for &i in &acked.seals {
        let c = &seals[i];
        let got = store.get(&c.digest).expect("seal store readable");
        let got = got.unwrap_or_else(|| panic!("{when}: acknowledged seal {} lost", c.digest));
        assert!(got == c.bytes, "{when}: seal {} changed on disk", c.digest);
        let by_content = store.by_content(&c.content_key).expect("content index parses");
        assert!(by_content.contains(&c.digest), "{when}: seal {} missing from its content index", c.digest);
        let by_name = store.by_name(&c.name).expect("name index parses");
        assert!(by_name.contains(&c.digest), "{when}: seal {} missing from its name index", c.digest);
        if i == verify {
            let trust = rootseal::trust::TrustStore::new(env.path("trust")).load().expect("trust store loads");
            let s = rootseal::seal::Seal::parse(&got).expect("filed seal parses");
            rootseal::verify::check_seal(&s, &trust, SystemTime::now(), 1)
                .unwrap_or_else(|e| panic!("{when}: acknowledged seal {} no longer verifies: {e}", c.digest));
        }
    }
    // Every index file, whether or not an acknowledged seal uses it, is whole.
    for idx in ["by-content", "by-name", "by-sketch"] {
        for e in std::fs::read_dir(env.path("seals").join(idx)).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let text = std::fs::read_to_string(e.path()).unwrap();
            assert!(text.ends_with('\n'), "{when}: index {idx}/{name} is cut short: {text:?}");
            for l in text.lines() {
                assert!(
                    l.len() == 71 && l.starts_with("sha256:") && l[7..].bytes().all(|b| b.is_ascii_hexdigit()),
                    "{when}: index {idx}/{name} has a bad line {l:?}"
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 2. The verification cache, written by `rootseal check` (and the hook) in `verify = "cached"`.
// ---------------------------------------------------------------------------------------------

const FILLER_DIRS: usize = 16;
const FILLER_FILES: usize = 25;
const CACHE_KILLS: usize = 80;

struct CacheNode {
    env: Env,
    bundle: PathBuf,
    rootfs: PathBuf,
}

impl CacheNode {
    fn cache_dir(&self) -> PathBuf {
        self.env.path("cache")
    }

    fn cache_file(&self) -> PathBuf {
        rootseal::cache::path_for(&self.cache_dir(), &self.rootfs)
    }

    fn check_cmd(&self) -> Command {
        self.env.cmd([OsStr::new("check"), self.bundle.as_os_str()])
    }

    /// A check run to the end with `ROOTSEAL_TRACE=1`: its output, and when its walk (cache
    /// load and save included) ended, from the phase timings it prints (the start-up before
    /// the first phase is the wall time not covered by any phase). None if the trace lines
    /// are not there.
    fn traced_check(&self) -> (std::process::Output, Option<Duration>) {
        let (wall, out) = timed(self.check_cmd().env("ROOTSEAL_TRACE", "1"), None);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let ms = |l: &str| -> Option<f64> {
            let rest = l.split("trace: ").nth(1)?;
            let i = rest.find(" ms")?;
            rest[..i].rsplit(' ').next()?.parse().ok()
        };
        let phases: Vec<(bool, f64)> =
            stderr.lines().filter_map(|l| Some((l.contains("trace: walk"), ms(l)?))).collect();
        let walk_at = phases.iter().position(|(w, _)| *w);
        let end = walk_at.map(|i| {
            let total: f64 = phases.iter().map(|(_, t)| t).sum();
            let before: f64 = phases[..=i].iter().map(|(_, t)| t).sum();
            let startup = (wall.as_secs_f64() * 1000.0 - total).max(0.0);
            Duration::from_secs_f64((startup + before) / 1000.0)
        });
        (out, end)
    }

    /// The verdict `rootseal check` must give: exit 0 and "verified", or exit 1 naming the
    /// tampered file.
    fn assert_verdict(&self, code: Option<i32>, stdout: &str, tampered: bool, when: &str) {
        if tampered {
            assert!(
                code == Some(1) && stdout.contains("/etc/passwd content differs"),
                "{when}: a tampered /etc/passwd must be detected, got {code:?}: {stdout}"
            );
        } else {
            assert!(
                code == Some(0) && stdout.contains("verified"),
                "{when}: the untouched tree must verify, got {code:?}: {stdout}"
            );
        }
    }

    fn assert_cache_sound(&self, old_keys: &[Vec<u8>], when: &str) -> usize {
        assert_cache_sound(&self.cache_dir(), &self.rootfs, old_keys, when)
    }
}

/// The cache file of `rootfs` on disk, if any: it must be whole (an atomic writer never leaves
/// a torn one), and every entry whose stat key is still the file's must hold the file's real
/// hash. Returns the number of entries.
///
/// One exception: after the test removed `cache_dir/key`, a killed run may have made a new key
/// and died before it rewrote the cache. The file is then whole but signed with a key that is
/// gone (`old_keys`), and rootseal rightly discards it.
fn assert_cache_sound(cache_dir: &Path, rootfs: &Path, old_keys: &[Vec<u8>], when: &str) -> usize {
    let file = rootseal::cache::path_for(cache_dir, rootfs);
    if !file.exists() {
        return 0;
    }
    let fd = std::fs::File::open(rootfs).unwrap();
    let id = rootseal::cache::RootId::of(&fd).unwrap();
    let (cache, why) = rootseal::cache::load(cache_dir, rootfs, &id);
    if let Some(why) = why {
        let under_old_key = old_keys.iter().any(|k| {
            let t = tempfile::tempdir().unwrap();
            std::fs::write(t.path().join("key"), k).unwrap();
            std::fs::copy(&file, rootseal::cache::path_for(t.path(), rootfs)).unwrap();
            rootseal::cache::load(t.path(), rootfs, &id).1.is_none()
        });
        assert!(under_old_key, "{when}: the cache file is not whole: {why}");
        assert!(cache.files.is_empty());
        return 0;
    }
    // Records are keyed by a hash of the path: look every file of the tree up, as a walk does.
    use std::os::unix::ffi::OsStrExt;
    let mut dirs = vec![rootfs.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for path in std::fs::read_dir(&dir).into_iter().flatten().flatten().map(|e| e.path()) {
            let Ok(m) = std::fs::symlink_metadata(&path) else { continue };
            if m.is_dir() {
                dirs.push(path);
                continue;
            }
            let rel = Path::new("/").join(path.strip_prefix(rootfs).unwrap());
            let Some(c) = cache.files.get(rel.as_os_str().as_bytes()) else { continue };
            let key = rootseal::cache::StatKey {
                dev: m.dev(),
                ino: m.ino(),
                size: m.size(),
                mtime: (m.mtime(), m.mtime_nsec()),
                ctime: (m.ctime(), m.ctime_nsec()),
            };
            if key == c.key {
                let real: [u8; 32] = Sha256::digest(std::fs::read(&path).unwrap()).into();
                assert!(
                    real == c.sha256,
                    "{when}: the cache holds a wrong hash for {} under its current stat key",
                    path.display()
                );
            }
        }
    }
    cache.files.len()
}

/// Rewrites `path` in place with same-size `data` and puts its mtime back (`touch -d`): only
/// ctime tells the change.
fn rewrite_keep_mtime(path: &Path, data: &[u8]) {
    let before = std::fs::metadata(path).unwrap().modified().unwrap();
    assert_eq!(std::fs::metadata(path).unwrap().len() as usize, data.len(), "same size");
    let mut f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all(data).unwrap();
    drop(f);
    let stamp = humantime::format_rfc3339_nanos(before).to_string();
    sh(Command::new("touch").arg("-d").arg(&stamp).arg(path));
}

const PASSWD: &[u8] = b"root:x:0:0::/root:/bin/sh\n";
const EVIL: &[u8] = b"evil:x:0:0::/root:/bin/sh\n";

#[test]
fn the_verification_cache_survives_sigkill_and_never_hides_a_change() {
    let started = Instant::now();
    let mut rng = Rng::for_test("verification_cache");
    let env = Env::new();
    let bundle = env.path("bundle");
    let rootfs = bundle.join("rootfs");
    small_tree(&rootfs);
    // Enough files that writing the cache takes a while (about 400 entries).
    for d in 0..FILLER_DIRS {
        let dir = rootfs.join(format!("usr/share/d{d:02}"));
        std::fs::create_dir_all(&dir).unwrap();
        for f in 0..FILLER_FILES {
            std::fs::write(dir.join(format!("f{f:02}")), format!("filler {d} {f}\n").repeat(4)).unwrap();
        }
    }
    std::fs::write(
        bundle.join("config.json"),
        br#"{"ociVersion":"1.0.2","root":{"path":"rootfs","readonly":true},"mounts":[{"destination":"/proc","type":"proc","source":"proc"}]}"#,
    )
    .unwrap();
    let (key, public) = env.keygen("ci");
    env.expect(0, [OsStr::new("trust"), OsStr::new("add"), public.as_os_str()]);
    let seal = env.path("s.json");
    env.seal(&rootfs, &key, &seal, &[]);
    env.expect(0, [OsStr::new("trust"), OsStr::new("import"), seal.as_os_str()]);
    let n = CacheNode { env, bundle, rootfs };
    // Let the tree age past the racy window so that the cache fills up.
    std::thread::sleep(Duration::from_millis(2200));
    let (cold, out) = timed(&mut n.check_cmd(), None);
    n.assert_verdict(out.status.code(), &String::from_utf8_lossy(&out.stdout), false, "cold check");
    let full = n.assert_cache_sound(&[], "after the cold check");
    assert!(full >= FILLER_DIRS * FILLER_FILES, "the cache holds the tree: {full} entries");
    let mut span = Span(cold);
    // Half of the kill points are aimed at the end of the walk, where the cache is written.
    let mut walk_end = n.traced_check().1.unwrap_or(cold / 4);

    let mut tally = Tally::default();
    let mut tampered = false;
    let mut planted = 0;
    let mut old_keys: Vec<Vec<u8>> = Vec::new();
    let budget = Budget::new(CACHE_KILLS, Duration::from_secs(40));
    let mut it = 0;
    while budget.more(&tally) {
        it += 1;
        // Change what the next check sees: rewrite a few files with their own content (ctime
        // moves, so they are hashed again and the cache is rewritten), sometimes tamper with
        // /etc/passwd or put it back, sometimes drop the cache or its key.
        for _ in 0..3 {
            let p = n.rootfs.join(format!(
                "usr/share/d{:02}/f{:02}",
                rng.below(FILLER_DIRS as u64),
                rng.below(FILLER_FILES as u64)
            ));
            let data = std::fs::read(&p).unwrap();
            std::fs::write(&p, data).unwrap();
        }
        if rng.chance(1, 3) {
            tampered = !tampered;
            rewrite_keep_mtime(&n.rootfs.join("etc/passwd"), if tampered { EVIL } else { PASSWD });
        }
        match rng.below(20) {
            0 => {
                let _ = std::fs::remove_file(n.cache_file());
            }
            1 => {
                if let Ok(k) = std::fs::read(n.cache_dir().join("key")) {
                    old_keys.push(k);
                }
                let _ = std::fs::remove_file(n.cache_dir().join("key"));
            }
            _ => {}
        }
        let aimed = rng.chance(1, 2);
        let delay = if aimed { walk_end / 2 + delay_within(&mut rng, walk_end) } else { span.draw(&mut rng) };
        let ending = run_killed(&mut n.check_cmd(), None, delay);
        tally.count(&ending);
        if !aimed {
            span.update(&ending);
        }
        let when = format!("iteration {it} (kill after {delay:?}, tampered: {tampered})");
        match &ending {
            Ending::Exited { code, stdout, .. } => n.assert_verdict(*code, stdout, tampered, &when),
            Ending::Killed => tally.after_kill(&[n.cache_dir()]),
        }
        n.assert_cache_sound(&old_keys, &when);
        // A torn write (as a filesystem without atomic rename could leave one): a prefix of
        // the cache, or the cache with one byte flipped. It must be discarded, not trusted.
        if rng.chance(1, 6) && n.cache_file().exists() {
            let mut bytes = std::fs::read(n.cache_file()).unwrap();
            if rng.chance(1, 2) {
                bytes.truncate(rng.below(bytes.len() as u64) as usize);
            } else {
                let i = rng.below(bytes.len() as u64) as usize;
                bytes[i] ^= 1 << rng.below(8);
            }
            std::fs::write(n.cache_file(), &bytes).unwrap();
            planted += 1;
            let fd = std::fs::File::open(&n.rootfs).unwrap();
            let id = rootseal::cache::RootId::of(&fd).unwrap();
            let (c, why) = rootseal::cache::load(&n.cache_dir(), &n.rootfs, &id);
            assert!(c.files.is_empty() && why.is_some(), "{when}: a torn cache must be discarded");
        }
        // And whatever the kill or the tear left, the next check gives the right verdict, and
        // so does one after the tamper state flips again.
        let (out, end) = n.traced_check();
        n.assert_verdict(
            out.status.code(),
            &String::from_utf8_lossy(&out.stdout),
            tampered,
            &format!("{when}, next check"),
        );
        if let Some(end) = end {
            walk_end = (walk_end * 3 + end) / 4;
        }
        if it % 4 == 0 {
            n.assert_cache_sound(&old_keys, &format!("{when}, after the next check"));
        }
    }
    if tampered {
        rewrite_keep_mtime(&n.rootfs.join("etc/passwd"), PASSWD);
    }
    let out = n.check_cmd().output().unwrap();
    n.assert_verdict(out.status.code(), &String::from_utf8_lossy(&out.stdout), false, "final check");
    tally.report("verification_cache", started, temp_files(&n.cache_dir()).len());
    eprintln!("verification_cache: {planted} torn cache file(s) planted and discarded");
    budget.assert_met(&tally, "verification_cache");
    assert_no_processes_left(&n.env);
}

// ---------------------------------------------------------------------------------------------
// 3. State records: `rootseal hook prestart` writes one, `poststop` removes it.
// ---------------------------------------------------------------------------------------------

const STATE_KILLS: usize = 100;

/// A stand-in for a container's init process: the hook records its pid and start time.
struct Sleeper(Child);

impl Sleeper {
    /// A stand-in for a container's init: a process whose root is the rootfs (the monitor
    /// scans a container through /proc/PID/root and checks it is the verified directory).
    fn start(rootfs: &Path) -> Sleeper {
        Sleeper(Command::new("chroot").arg(rootfs).args(["/bin/sleep", "600"]).stdin(Stdio::null()).spawn().unwrap())
    }

    fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn oci_state(id: &str, status: &str, pid: u32, bundle: &Path) -> Vec<u8> {
    serde_json::to_vec(
        &serde_json::json!({"ociVersion": "1.0.2", "id": id, "status": status, "pid": pid, "bundle": bundle}),
    )
    .unwrap()
}

fn hook_cmd(env: &Env, stage: &str) -> Command {
    env.cmd(["hook", stage])
}

/// Every file in the records directory is a whole record (strict JSON, the id of its file
/// name) or a temp file that readers skip. Returns the ids of the records.
fn assert_records_whole(state_dir: &Path, when: &str) -> BTreeMap<String, rootseal::state::Record> {
    let mut recs = BTreeMap::new();
    for e in std::fs::read_dir(state_dir.join("containers")).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') && name.contains(".tmp.") {
            continue;
        }
        let Some(stem) = name.strip_suffix(".json") else {
            panic!("{when}: unexpected file {name} in the state directory")
        };
        // `<id>.<bundle hash>.json` (src/node/state.rs).
        let id = stem.rsplit_once('.').map_or(stem, |(id, _)| id);
        let bytes = std::fs::read(e.path()).unwrap();
        let rec: rootseal::state::Record = rootseal::json::from_slice_strict(&bytes)
            .unwrap_or_else(|err| panic!("{when}: state record {name} does not parse: {err}"));
        assert_eq!(rec.id, id, "{when}: record {name} names another id");
        assert_eq!(rootseal::state::path_for(state_dir, id, &rec.bundle).unwrap(), e.path(), "{when}: {name}");
        recs.insert(id.to_string(), rec);
    }
    recs
}

/// Runs a hook stage to the end with `state` on stdin.
fn hook_run(env: &Env, stage: &str, state: &[u8]) -> std::process::Output {
    timed(&mut hook_cmd(env, stage), Some(state)).1
}

fn assert_ok(out: &std::process::Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({:?}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn state_records_survive_sigkill_of_prestart_and_poststop() {
    let started = Instant::now();
    let mut rng = Rng::for_test("state_records");
    let f = Fixture::new();
    let sleeper = Sleeper::start(&f.rootfs);
    let pid = sleeper.pid();
    let state_dir = f.env.path("state");
    let records = state_dir.join("containers");
    // Calibrate on the usual start: a warm cache, past the racy window.
    std::thread::sleep(Duration::from_millis(2200));
    let (mut span, mut stop_span) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..3 {
        let id = container_id("crash-cal");
        let (t, out) = timed(&mut hook_cmd(&f.env, "prestart"), Some(&oci_state(&id, "creating", pid, &f.bundle)));
        assert_ok(&out, "prestart");
        span = span.max(t);
        let (t, out) = timed(&mut hook_cmd(&f.env, "poststop"), Some(&oci_state(&id, "stopped", pid, &f.bundle)));
        assert_ok(&out, "poststop");
        stop_span = stop_span.max(t);
    }
    let (mut span, mut stop_span) = (Span(span), Span(stop_span));

    // Acknowledged records of containers that keep running: they must survive every later kill.
    let mut kept: BTreeMap<String, rootseal::state::Record> = BTreeMap::new();
    let mut tally = Tally::default();
    let budget = Budget::new(STATE_KILLS, Duration::from_secs(40));
    let mut it = 0;
    while budget.more(&tally) {
        it += 1;
        let id = container_id("crash");
        let delay = span.draw(&mut rng);
        let ending =
            run_killed(&mut hook_cmd(&f.env, "prestart"), Some(&oci_state(&id, "creating", pid, &f.bundle)), delay);
        tally.count(&ending);
        span.update(&ending);
        let when = format!("iteration {it}, prestart of {id} killed after {delay:?}");
        let recs = assert_records_whole(&state_dir, &when);
        match &ending {
            Ending::Exited { code: Some(0), .. } => {
                let rec = recs.get(&id).unwrap_or_else(|| panic!("{when}: prestart exited 0 but wrote no record"));
                assert_eq!(rec.verdict, "verified", "{when}");
                assert_eq!(rec.pid, Some(pid as i32), "{when}");
                assert!(rec.pid_start_time.is_some() && rec.seal_digest.is_some(), "{when}: {rec:?}");
                if rng.chance(1, 8) {
                    kept.insert(id.clone(), rec.clone());
                }
            }
            Ending::Exited { code, stdout, stderr } => {
                panic!("{when}: prestart (not killed) exited {code:?}: {stdout}{stderr}")
            }
            Ending::Killed => tally.after_kill(std::slice::from_ref(&records)),
        }
        for (k, r) in &kept {
            assert!(recs.get(k) == Some(r), "{when}: the acknowledged record of {k} was lost or changed");
        }
        if kept.contains_key(&id) {
            continue;
        }
        // The container stops: sometimes poststop is killed too; a poststop run to the end
        // then removes the record (or finds none) and exits 0.
        let stopped = oci_state(&id, "stopped", pid, &f.bundle);
        if rng.chance(1, 2) {
            let e = run_killed(&mut hook_cmd(&f.env, "poststop"), Some(&stopped), stop_span.draw(&mut rng));
            tally.count(&e);
            stop_span.update(&e);
            if matches!(e, Ending::Killed) {
                tally.after_kill(std::slice::from_ref(&records));
            }
            assert_records_whole(&state_dir, &format!("{when}, then poststop killed"));
        }
        assert_ok(&hook_run(&f.env, "poststop", &stopped), &format!("{when}: poststop"));
        let rec = rootseal::state::path_for(&state_dir, &id, &f.bundle).unwrap();
        assert!(!rec.exists(), "{when}: poststop left the record");
    }

    // The monitor reads the records with the temp files of killed hooks beside them: it
    // watches exactly the kept containers and calls nothing unreadable.
    let temps = temp_files(&records);
    assert_temp_names_are_ignored(&temps);
    let out = f.env.run(["monitor", "--once"]);
    let (so, se) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!se.contains("ignoring unreadable state record"), "{se}");
    assert!(so.contains(&format!("{} container(s) watched, 0 drifted", kept.len())), "{so}{se}");
    assert_eq!(out.status.code(), Some(0), "{so}{se}");
    for id in kept.keys() {
        assert_ok(&hook_run(&f.env, "poststop", &oci_state(id, "stopped", pid, &f.bundle)), "poststop");
    }
    assert!(
        assert_records_whole(&state_dir, "at the end").is_empty(),
        "no record is left once every container stopped"
    );
    tally.report("state_records", started, temps.len());
    eprintln!("state_records: {} acknowledged record(s) kept across the later kills", kept.len());
    budget.assert_met(&tally, "state_records");
    assert_no_processes_left(&f.env);
}

// ---------------------------------------------------------------------------------------------
// 4. The monitor daemon: its status file and Prometheus textfile.
// ---------------------------------------------------------------------------------------------

const MONITOR_KILLS: usize = 90;
const METRICS: [&str; 9] = [
    "rootseal_monitor_containers",
    "rootseal_monitor_containers_drifted",
    "rootseal_monitor_scans_total",
    "rootseal_monitor_scan_failures_total",
    "rootseal_monitor_drift_detected_total",
    "rootseal_monitor_scan_duration_seconds_sum",
    "rootseal_monitor_scan_duration_seconds_count",
    "rootseal_monitor_last_scan_duration_seconds",
    "rootseal_monitor_scan_cpu_seconds_total",
];

/// A whole textfile: every sample line `NAME VALUE`, every metric exactly once, a final newline.
fn parse_metrics(text: &str, when: &str) -> BTreeMap<String, f64> {
    assert!(text.ends_with('\n'), "{when}: the metrics file is cut short: {text:?}");
    let mut m = BTreeMap::new();
    for l in text.lines() {
        if l.starts_with("# HELP ") || l.starts_with("# TYPE ") {
            continue;
        }
        let (name, value) = l.split_once(' ').unwrap_or_else(|| panic!("{when}: bad metrics line {l:?}"));
        let v: f64 = value.parse().unwrap_or_else(|_| panic!("{when}: bad metrics value in {l:?}"));
        assert!(m.insert(name.to_string(), v).is_none(), "{when}: {name} twice");
    }
    for name in METRICS {
        assert!(m.contains_key(name), "{when}: {name} missing from the metrics file: {text}");
    }
    m
}

#[test]
fn monitor_status_and_metrics_survive_sigkill_and_it_restarts() {
    let started = Instant::now();
    let mut rng = Rng::for_test("monitor_outputs");
    let f = Fixture::new();
    let metrics_dir = f.env.path("metrics");
    std::fs::create_dir(&metrics_dir).unwrap();
    let metrics = metrics_dir.join("rootseal.prom");
    f.env.write_config(&format!("[monitor]\ninterval = \"100ms\"\nmetrics_file = \"{}\"", metrics.display()));
    let sleeper = Sleeper::start(&f.rootfs);
    let id = container_id("crash-mon");
    assert_ok(&hook_run(&f.env, "prestart", &oci_state(&id, "creating", sleeper.pid(), &f.bundle)), "prestart");
    let status_file = rootseal::monitor::status_path(&f.env.path("state"));
    let dirs = [status_file.parent().unwrap().to_path_buf(), metrics_dir.clone(), f.env.path("cache")];

    let mut tally = Tally::default();
    let (mut seen_status, mut seen_metrics, mut restarts) = (false, false, 0);
    let budget = Budget::new(MONITOR_KILLS, Duration::from_secs(40));
    let mut it = 0;
    while budget.more(&tally) {
        it += 1;
        if it % 25 == 0 {
            assert_monitor_restarts(&f, &id, &metrics, &format!("iteration {it}"));
            restarts += 1;
            continue;
        }
        // A same-content rewrite: the next scan hashes the file again, so the daemon also
        // rewrites the on-disk cache.
        std::fs::write(f.rootfs.join("etc/motd"), b"hello from a sealed rootfs\n").unwrap();
        let delay = delay_within(&mut rng, Duration::from_millis(300));
        let ending = run_killed(&mut f.env.cmd(["monitor"]), None, delay);
        tally.count(&ending);
        let when = format!("iteration {it}, monitor killed after {delay:?}");
        if let Ending::Exited { code, stdout, stderr } = &ending {
            panic!("{when}: the daemon exited on its own with {code:?}: {stdout}{stderr}");
        }
        tally.after_kill(&dirs);
        if status_file.exists() {
            seen_status = true;
            let out = f.env.run(["status", "--json"]);
            // The monitor was just killed: the status is read, and said to be stale (exit 1).
            assert_eq!(out.status.code(), Some(1), "{when}: rootseal status: {}", String::from_utf8_lossy(&out.stderr));
            let st: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status --json is JSON");
            assert!(st["stale"].as_str().is_some_and(|s| s.contains("is not running")), "{when}: {st}");
            assert!(
                st["containers"].as_array().is_some_and(|c| c.iter().any(|c| c["id"] == id.as_str())),
                "{when}: the status lost the watched container: {st}"
            );
        } else {
            assert!(!seen_status, "{when}: the status file vanished");
        }
        if metrics.exists() {
            seen_metrics = true;
            let m = parse_metrics(&std::fs::read_to_string(&metrics).unwrap(), &when);
            assert_eq!(m["rootseal_monitor_containers"], 1.0, "{when}");
        } else {
            assert!(!seen_metrics, "{when}: the metrics file vanished");
        }
        assert_cache_sound(&f.env.path("cache"), &f.rootfs, &[], &when);
    }
    assert!(seen_status && seen_metrics, "the daemon wrote its files at least once");
    assert_monitor_restarts(&f, &id, &metrics, "at the end");
    restarts += 1;
    let leftovers: usize = dirs.iter().map(|d| temp_files(d).len()).sum();
    tally.report("monitor_outputs", started, leftovers);
    eprintln!("monitor_outputs: {restarts} restart(s) after kills, each scanned clean and stopped with exit 0");
    budget.assert_met(&tally, "monitor_outputs");
    drop(sleeper);
    assert_no_processes_left(&f.env);
}

/// A monitor started after the kills takes over: its pid in the status file, the container
/// scanned clean, whole metrics, and exit 0 on SIGTERM.
fn assert_monitor_restarts(f: &Fixture, id: &str, metrics: &Path, when: &str) {
    let mut child = f
        .env
        .cmd(["monitor"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(f.env.path("monitor.stderr")).unwrap())
        .spawn()
        .unwrap();
    let pid = child.id();
    let start = Instant::now();
    loop {
        let st: serde_json::Value = serde_json::from_slice(&f.env.run(["status", "--json"]).stdout).unwrap_or_default();
        let clean =
            st["containers"].as_array().is_some_and(|c| c.iter().any(|c| c["id"] == id && c["result"] == "clean"));
        if st["pid"] == pid && clean {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{when}: the restarted monitor did not report a clean scan: {st}\n{}",
            std::fs::read_to_string(f.env.path("monitor.stderr")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let m = parse_metrics(&std::fs::read_to_string(metrics).unwrap(), when);
    assert_eq!(m["rootseal_monitor_containers"], 1.0, "{when}");
    assert!(Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap().success());
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "{when}: the monitor ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0), "{when}: a clean stop after SIGTERM");
}

// ---------------------------------------------------------------------------------------------
// 5. What killed writers leave behind.
// ---------------------------------------------------------------------------------------------

/// A writer killed between creating its temp file and renaming it leaves `.NAME.tmp.PID.N`
/// beside the file (src/atomic.rs removes it only when the write fails, not when the process
/// dies). Readers skip these (the tests above check it), but nothing ever removes them: in the
/// tests above every kill that landed mid-write left one for good. Runtimes SIGKILL a hook at
/// its timeout, so on a node they pile up in `/run/rootseal/containers` (tmpfs: memory), the
/// seal store, and `cache_dir`, where each is as large as the cache being written.
///
/// This plants exactly what a killed writer leaves, under a pid that cannot be running, and
/// asserts the next successful write to each store directory leaves no such file.
#[test]

fn temp_files_of_killed_writers_do_not_pile_up() {
    let f = Fixture::new();
    // pid_max is one past the largest pid: no process has it.
    let dead = std::fs::read_to_string("/proc/sys/kernel/pid_max").unwrap().trim().to_string();
    let digest = rootseal::seal::Seal::parse(&std::fs::read(&f.seal).unwrap()).unwrap().digest;
    let cache_dir = f.env.path("cache");
    let records = f.env.path("state/containers");
    let cache_file = rootseal::cache::path_for(&cache_dir, &f.rootfs);
    let planted = [
        cache_dir.join(format!(".{}.tmp.{dead}.1", cache_file.file_name().unwrap().to_string_lossy())),
        f.env.path("seals").join(format!(".{}.json.tmp.{dead}.1", digest.hex())),
        records.join(format!(
            ".{}.tmp.{dead}.1",
            rootseal::state::path_for(&f.env.path("state"), "c1", &f.bundle)
                .unwrap()
                .file_name()
                .unwrap()
                .to_str()
                .unwrap()
        )),
    ];
    for p in &planted {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, b"half a file").unwrap();
    }
    // One successful write to each: the seal store (import), the cache and a state record (a
    // prestart that hashes: the cache is cold), then poststop.
    f.env.expect(0, [OsStr::new("trust"), OsStr::new("import"), f.seal.as_os_str()]);
    assert_ok(&hook_run(&f.env, "prestart", &oci_state("c1", "creating", std::process::id(), &f.bundle)), "prestart");
    assert!(cache_file.exists() && rootseal::state::path_for(&f.env.path("state"), "c1", &f.bundle).unwrap().exists());
    assert_ok(&hook_run(&f.env, "poststop", &oci_state("c1", "stopped", std::process::id(), &f.bundle)), "poststop");
    let left: Vec<&PathBuf> = planted.iter().filter(|p| p.exists()).collect();
    assert!(left.is_empty(), "temp files of a dead writer are still there after later writes: {left:?}");
}
