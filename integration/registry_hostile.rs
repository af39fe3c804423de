//! Bad registries, end to end through the `rootseal` binary: one that is down or silent, one
//! that refuses the credentials or shows a certificate from another CA (the real
//! `docker-registry` of registry_env.rs), and a registry that lies ([`server`]): a 1 GiB
//! envelope, redirect loops, 10 000 referrers, a seal of another image or by an untrusted key,
//! a listing that changes under the pull, bytes that do not match their digest, manifests over
//! 4 MiB, an answer trickled a byte at a time.
//!
//! Every case asserts the error's words (what it names), the exit code (`pull`: 0 a valid seal
//! is stored, 1 none is valid, 2 a registry error; `sync`: 1 an image failed), that the run
//! ended within [`HANG`] (a bound that only catches hangs: a timing is printed, not asserted),
//! and that the seal store is byte for byte what it was, with the seal filed before the test
//! still there: nothing a registry serves enters the store unless it verifies.
//!
//! ```sh
//! cargo test --test integration registry_hostile
//! ```

mod server;

use crate::harness::HANG;
use crate::registry_env::{write_auth_json, Registry};
use crate::util::*;
use server::*;
use std::collections::BTreeMap;
use std::io::Read as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `[registry] timeout` of these tests: short, so that the cases that wait for it are quick.
const TIMEOUT: &str = "2s";
const GIB: u64 = 1 << 30;
/// src/registry: the largest manifest or index read, and a seal artifact's manifest.
const MAX_MANIFEST: u64 = 4 << 20;
const MAX_ARTIFACT_MANIFEST: u64 = 64 << 10;
/// src/seal: the largest seal, so the largest envelope blob read.
const MAX_SEAL: u64 = 64 << 20;
/// A pull's peak memory: well above what it takes (under 20 MiB; 40 MiB with 10 000
/// referrers listed), far below what reading a 1 GiB body would.
const MAX_RSS_KIB: i64 = 64 << 10;

/// One run of the binary, watched.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
    elapsed: Duration,
    /// Peak resident memory of the process, from GNU time's `%M`.
    max_rss_kib: i64,
}

/// Runs `cmd` under `/usr/bin/time` (its wait4 sees rootseal's own peak memory: a child of the
/// test process would count the test's pages, which fork shares and exec does not reset),
/// killing its process group and failing the test when it runs past [`HANG`].
fn watched(cmd: Command, rss_file: &Path) -> Run {
    let mut timed = Command::new("/usr/bin/time");
    timed.arg("-f").arg("%M").arg("-o").arg(rss_file).arg(cmd.get_program()).args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        if let Some(v) = v {
            timed.env(k, v);
        }
    }
    timed.process_group(0).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = timed.spawn().expect("/usr/bin/time is installed (scripts/setup-host.sh)");
    let drain = |mut r: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut s = Vec::new();
            let _ = r.read_to_end(&mut s);
            String::from_utf8_lossy(&s).into_owned()
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > HANG {
            // SAFETY: kill(2) on the process group this test created (process_group(0)).
            unsafe { libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL) };
            let _ = child.wait();
            panic!("{cmd:?} still running after {HANG:?}; killed. stderr so far: {}", err.join().unwrap());
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let elapsed = start.elapsed();
    let rss = std::fs::read_to_string(rss_file).unwrap();
    Run {
        code: status.code().unwrap_or_else(|| panic!("{cmd:?}: {status}")),
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
        elapsed,
        max_rss_kib: rss.lines().last().and_then(|l| l.trim().parse().ok()).unwrap_or_else(|| panic!("{rss:?}")),
    }
}

/// A TCP port on 127.0.0.1 where nothing listens, reserved while the socket lives: bound but
/// never `listen`ed, so connections are refused and no other test can take the port (a port
/// taken from the kernel and released could be).
fn closed_port() -> (std::os::fd::OwnedFd, String) {
    use std::os::fd::FromRawFd as _;
    // SAFETY: plain socket(2); the result is checked before use.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
    // SAFETY: `fd` is a new socket that nothing else owns.
    let sock = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
    let mut addr = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes([127, 0, 0, 1]) },
        sin_zero: [0; 8],
    };
    let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: `addr` is a valid sockaddr_in of `len` bytes, for reading and then writing.
    let rc = unsafe { libc::bind(fd, std::ptr::addr_of!(addr).cast(), len) };
    assert_eq!(rc, 0, "bind: {}", std::io::Error::last_os_error());
    // SAFETY: as above.
    let rc = unsafe { libc::getsockname(fd, std::ptr::addr_of_mut!(addr).cast(), &mut len) };
    assert_eq!(rc, 0, "getsockname: {}", std::io::Error::last_os_error());
    (sock, format!("127.0.0.1:{}", u16::from_be(addr.sin_port)))
}

/// A node with a trust store (key `ci`), a seal already filed (of the tree `old`), and a
/// valid seal of another tree (`fresh`, signed by `ci`) that is not filed: what the registries
/// serve, so that a pull that admitted it would change the store.
struct Node {
    env: Env,
    fresh: Vec<u8>,
}

impl Node {
    fn new() -> Node {
        let env = Env::new();
        let (key, public) = env.keygen("ci");
        env.expect(0, ["trust".as_ref(), "add".as_ref(), public.as_os_str()]);
        let old = sealed_tree(&env, &key, "old");
        env.expect(0, ["trust".as_ref(), "import".as_ref(), old.as_os_str()]);
        let fresh = std::fs::read(sealed_tree(&env, &key, "fresh")).unwrap();
        Node { env, fresh }
    }

    /// The test config with `[registry]` holding `lines`, and no node image stores.
    fn configure(&self, lines: &str) {
        self.env.write_config(&format!(
            "[registry]\ntimeout = \"{TIMEOUT}\"\ncontainerd_address = \"\"\npodman = false\n{lines}\n"
        ));
    }

    /// The config for a plain-HTTP registry at `host` without credentials.
    fn configure_plain(&self, host: &str) {
        self.configure(&format!("plain_http = [\"{host}\"]\nauth_file = \"\"\ncerts_dir = \"\""));
    }

    /// Every file of the seal store with its bytes (directories as None).
    fn store(&self) -> BTreeMap<String, Option<Vec<u8>>> {
        let dir = self.env.path("seals");
        listing(&dir)
            .into_iter()
            .map(|rel| {
                let p = dir.join(&rel);
                let bytes = p.is_file().then(|| std::fs::read(&p).unwrap());
                (rel, bytes)
            })
            .collect()
    }

    fn run(&self, args: &[&str]) -> Run {
        let r = watched(self.env.cmd(args), &self.env.path("rss"));
        eprintln!("rootseal {args:?}: exit {} in {:?}, peak {} KiB\n{}", r.code, r.elapsed, r.max_rss_kib, r.stderr);
        assert!(!r.stderr.contains("panicked"), "{r:?}");
        r
    }

    /// `rootseal args`, asserting the exit code and that the seal store is unchanged.
    fn refused(&self, code: i32, args: &[&str]) -> Run {
        let before = self.store();
        assert!(before.values().any(Option::is_some), "the store holds the old seal");
        let r = self.run(args);
        assert_eq!(r.code, code, "{r:#?}");
        assert_eq!(self.store(), before, "the seal store changed: {r:#?}");
        r
    }

    /// `rootseal pull image`, refused with `code`; returns stderr.
    fn pull_refused(&self, code: i32, image: &str) -> String {
        self.refused(code, &["pull", image]).stderr
    }
}

/// Seals a small tree named `name` with `key` (`--name name`); returns the seal file.
fn sealed_tree(env: &Env, key: &Path, name: &str) -> PathBuf {
    let root = env.path(&format!("{name}-root"));
    small_tree(&root);
    std::fs::write(root.join("etc/name"), name).unwrap();
    let seal = env.path(&format!("{name}.seal.json"));
    env.seal(&root, key, &seal, &["--name", name]);
    seal
}

/// A server answering from `content`, except where `lie` has an answer.
fn lying(content: &Content, lie: impl Fn(&Request, usize) -> Option<Reply> + Send + Sync + 'static) -> Server {
    let c = content.clone();
    Server::start(move |req, n| lie(req, n).unwrap_or_else(|| c.answer(req)))
}

/// A node configured for `server`, and the image reference there.
fn node_for(node: &Node, content: &Content, server: &Server) -> String {
    node.configure_plain(&server.host());
    content.reference(server)
}

fn assert_has(text: &str, parts: &[&str]) {
    for p in parts {
        assert!(text.contains(p), "{p:?} not in:\n{text}");
    }
}

#[test]
fn the_fake_registry_serves_a_seal_that_pull_verifies_and_files() {
    // The control for every lying case below: told the truth, the same pull stores the seal.
    let node = Node::new();
    let mut content = Content::new();
    content.add_seal(&node.fresh);
    let server = lying(&content, |_, _| None);
    let image = node_for(&node, &content, &server);
    let seals = |n: &Node| -> BTreeMap<String, Vec<u8>> {
        // Top-level files but the writers' lock (`.lock`, empty).
        n.store()
            .into_iter()
            .filter(|(k, _)| !k.contains('/') && k != ".lock")
            .filter_map(|(k, v)| Some((k, v?)))
            .collect()
    };
    let before = seals(&node);
    assert_eq!(before.len(), 1, "{before:?}");
    let r = node.run(&["pull", &image]);
    assert_eq!(r.code, 0, "{r:#?}");
    assert_has(&r.stdout, &["stored seal", "(fresh)", "1 seal(s) stored or present, 0 skipped"]);
    // The indexes (by-content/, by-sketch/...) gain the fresh seal's digest; the seals
    // themselves: the old one as it was, and the fresh one.
    let after = seals(&node);
    assert_eq!(after.len(), 2, "{:?}", after.keys());
    assert!(before.iter().all(|(k, v)| after.get(k) == Some(v)), "the old seal stays");
    assert!(after.values().any(|b| *b == node.fresh), "the fresh seal is filed");
}

// 1. Down and silent registries.

#[test]
fn pull_from_a_registry_that_is_down_fails_naming_the_host() {
    let node = Node::new();
    let (_port, host) = closed_port();
    node.configure_plain(&host);
    let err = node.pull_refused(2, &format!("{host}/app:1"));
    assert_has(&err, &["cannot reach registry", &host, "check the address and that it is up"]);
    // The error is told by its cause, not by words in the URL.
    let err = node.pull_refused(2, &format!("{host}/tls/certificate-handshake:timed"));
    assert_has(&err, &["cannot reach registry", &host, "check the address and that it is up"]);
}

#[test]
fn pull_from_a_registry_that_accepts_and_never_answers_ends_at_the_timeout() {
    let node = Node::new();
    // Connections complete in the kernel's backlog; nothing ever reads or answers them.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let host = listener.local_addr().unwrap().to_string();
    node.configure_plain(&host);
    let err = node.pull_refused(2, &format!("{host}/app:1"));
    assert_has(
        &err,
        &[&format!("registry {host}: the answer to GET /v2/app/manifests/1 did not arrive within {TIMEOUT}")],
    );
    assert_has(&err, &["[registry] timeout", "check that the registry is up, or raise the timeout"]);
    drop(listener);
}

// 2. Credentials, against the real registry with htpasswd.

#[test]
fn pull_without_credentials_names_the_auth_file_and_wrong_ones_are_refused() {
    let node = Node::new();
    let registry = Registry::tls_auth(node.env.tmp.path(), "ci", "s3cret-pass");
    let host = registry.host();
    let auth = node.env.path("auth.json");
    std::fs::write(&auth, "{\"auths\": {}}\n").unwrap();
    node.configure(&format!(
        "auth_file = \"{}\"\ncerts_dir = \"{}\"",
        auth.display(),
        registry.certs_d().unwrap().display()
    ));
    let image = registry.reference("app:1");
    let login = format!("podman login --authfile {} {host}", auth.display());

    let err = node.pull_refused(2, &image);
    assert_has(&err, &["refused access to app (401)", &format!("{} has no credentials for {host}", auth.display())]);
    assert_has(&err, &[&login]);

    write_auth_json(&auth, &host, "ci", "wrong-pass");
    let err = node.pull_refused(2, &image);
    assert_has(&err, &[&format!("the credentials for {host} in {} were refused", auth.display()), &login]);

    // The control: with the right password the registry lets the pull in and has no such image.
    write_auth_json(&auth, &host, "ci", "s3cret-pass");
    let err = node.pull_refused(2, &image);
    assert_has(&err, &[&format!("image {image} is not in the registry")]);
}

// 3. TLS.

#[test]
fn pull_from_a_registry_whose_certificate_another_ca_signed_names_tls_the_host_and_certs_dir() {
    let node = Node::new();
    let registry = Registry::tls_auth(node.env.tmp.path(), "ci", "s3cret-pass");
    let host = registry.host();
    let certs_dir = node.env.path("certs.d");
    let other = certs_dir.join(&host);
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(
        other.join("ca.cnf"),
        "[req]\ndistinguished_name = dn\nx509_extensions = ext\nprompt = no\n[dn]\nCN = another CA\n[ext]\nbasicConstraints = critical, CA:TRUE\nkeyUsage = critical, keyCertSign\n",
    )
    .unwrap();
    sh(Command::new("openssl").current_dir(&other).args([
        "req",
        "-x509",
        "-config",
        "ca.cnf",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
    ]));
    let auth = node.env.path("auth.json");
    write_auth_json(&auth, &host, "ci", "s3cret-pass");
    node.configure(&format!("auth_file = \"{}\"\ncerts_dir = \"{}\"", auth.display(), certs_dir.display()));
    let err = node.pull_refused(2, &registry.reference("app:1"));
    assert_has(&err, &["TLS with registry", &host, &format!("{}/{host}/ca.crt", certs_dir.display())]);
    assert!(err.to_ascii_lowercase().contains("certificate"), "{err}");
}

// 4. A registry that lies.

#[test]
fn a_1_gib_envelope_is_refused_without_being_read() {
    let node = Node::new();
    for framing in [Framing::ContentLength, Framing::Chunked, Framing::Close] {
        // The artifact declares the envelope's true size; the blob is 1 GiB.
        let mut content = Content::new();
        let (_, envelope) = content.add_seal(&node.fresh);
        let blob = content.blob_path(&envelope);
        let b = blob.clone();
        let server = lying(&content, move |req, _| {
            (req.path() == b).then(|| Reply::new(200, Body::Stream { len: GIB, fill: b'{' }).framing(framing))
        });
        let image = node_for(&node, &content, &server);
        let r = node.refused(1, &["pull", &image]);
        assert_has(&r.stderr, &[&format!("blob app@{envelope} is larger than {} bytes; not read", node.fresh.len())]);
        assert!(r.max_rss_kib < MAX_RSS_KIB, "{framing:?}: peak {} KiB", r.max_rss_kib);
        let w = server.written(&blob, HANG);
        eprintln!("{framing:?}: the server wrote {} of {} bytes", w.bytes, w.of);
        assert!(w.closed_early && w.bytes < GIB / 8, "{framing:?}: {w:?}");
    }

    // An artifact that declares a 1 GiB envelope: refused before the blob is asked for.
    let mut content = Content::new();
    let subject = content.subject.clone();
    content.add_artifact(&subject, &server::sha256(&node.fresh), GIB, "2026-01-01T00:00:00Z");
    let server = lying(&content, |_, _| None);
    let err = node.pull_refused(1, &node_for(&node, &content, &server));
    assert_has(&err, &["envelope is larger than 67108864 bytes"]);
    assert!(!server.requests().iter().any(|r| r.contains("/blobs/")), "{:?}", server.requests());

    // The worst a registry can make a pull hold: an envelope declared at the seal size limit
    // (src/seal MAX_SEAL_BYTES, 64 MiB), then 1 GiB served. Read to the limit, no further.
    let mut content = Content::new();
    let subject = content.subject.clone();
    let envelope = server::sha256(&node.fresh);
    content.add_artifact(&subject, &envelope, MAX_SEAL, "2026-01-01T00:00:00Z");
    let blob = content.blob_path(&envelope);
    let b = blob.clone();
    let server = lying(&content, move |req, _| {
        (req.path() == b).then(|| Reply::new(200, Body::Stream { len: GIB, fill: b'{' }).framing(Framing::Chunked))
    });
    let r = node.refused(1, &["pull", &node_for(&node, &content, &server)]);
    assert_has(&r.stderr, &[&format!("blob app@{envelope} is larger than {MAX_SEAL} bytes; not read")]);
    let w = server.written(&blob, HANG);
    eprintln!("at the limit: the server wrote {} of {} bytes; peak {} KiB", w.bytes, w.of, r.max_rss_kib);
    assert!(w.closed_early && w.bytes < GIB / 4, "{w:?}");
    assert!(r.max_rss_kib < MAX_RSS_KIB + (MAX_SEAL as i64 >> 9), "peak {} KiB", r.max_rss_kib);
}

#[test]
fn endless_redirects_stop_at_the_limit_and_say_so() {
    let node = Node::new();
    let mut content = Content::new();
    let (_, envelope) = content.add_seal(&node.fresh);
    let tag = content.manifest_path("1");
    let blob = content.blob_path(&envelope);
    // (what redirects, to a new URL each time, the exit code: the image's manifest is the
    // pull's, an envelope only one seal's).
    for (target, fresh_url, code) in [(&tag, false, 2), (&tag, true, 2), (&blob, false, 1), (&blob, true, 1)] {
        let t = target.clone();
        let server = lying(&content, move |req, n| {
            (req.path() == t).then(|| Reply::redirect(&if fresh_url { format!("{t}?hop={n}") } else { t.clone() }))
        });
        let image = node_for(&node, &content, &server);
        let err = node.pull_refused(code, &image);
        assert_has(&err, &[&format!("registry {} redirected more than 5 times; not followed further", server.host())]);
        // The request and the 5 redirects followed.
        let hops = server.requests().iter().filter(|r| r.contains(target.as_str())).count();
        assert_eq!(hops, 6, "{target} fresh_url={fresh_url}: {:?}", server.requests());
    }
}

#[test]
fn ten_thousand_referrers_fetch_only_the_newest_32() {
    let node = Node::new();
    let mut content = Content::new();
    // Listed oldest first; none of them exists (each fetch is a 404).
    let created = |i: u64| format!("2026-01-01T{:02}:{:02}:{:02}Z", i / 3600, i / 60 % 60, i % 60);
    content.entries = (0..10_000u64).map(|i| entry(&format!("sha256:{i:064x}"), 600, &created(i))).collect();
    assert!((content.index().len() as u64) < MAX_MANIFEST, "the index itself is under the limit");
    let server = lying(&content, |_, _| None);
    let image = node_for(&node, &content, &server);
    let err = node.pull_refused(1, &image);
    assert_has(&err, &["skipped 9968 older seal(s)", "only the newest 32 are fetched", "listed but gone"]);
    let requests = server.requests();
    let fetched: Vec<u64> = requests
        .iter()
        .filter_map(|r| r.strip_prefix(&format!("GET {}sha256:", content.manifest_path(""))))
        .filter_map(|hex| u64::from_str_radix(hex, 16).ok())
        .collect();
    assert_eq!(fetched.len(), 32, "{requests:?}");
    assert!(fetched.iter().all(|i| *i >= 10_000 - 32), "only the newest: {fetched:?}");
    // The tag, the referrers API, the index, 32 artifacts.
    assert!(requests.len() <= 32 + 4, "{} requests: {requests:?}", requests.len());
}

#[test]
fn a_seal_whose_subject_is_another_image_is_skipped_naming_the_subject() {
    let node = Node::new();
    let mut content = Content::new();
    let another = server::sha256(b"another image's manifest");
    let (artifact, _) = content.add_seal_for(&another, &node.fresh, "2026-01-01T00:00:00Z");
    let server = lying(&content, |_, _| None);
    let image = node_for(&node, &content, &server);
    let err = node.pull_refused(1, &image);
    assert_has(
        &err,
        &[&format!("skipped {artifact}"), &format!("its subject is {another}, not the image's {}", content.subject)],
    );
    assert!(!server.requests().iter().any(|r| r.contains("/blobs/")), "the envelope is not fetched");
}

#[test]
fn a_seal_signed_by_an_untrusted_key_is_skipped() {
    let node = Node::new();
    let (mallory, _) = node.env.keygen("mallory");
    let forged = std::fs::read(sealed_tree(&node.env, &mallory, "forged")).unwrap();
    let mut content = Content::new();
    let (artifact, _) = content.add_seal(&forged);
    let server = lying(&content, |_, _| None);
    let image = node_for(&node, &content, &server);
    let err = node.pull_refused(1, &image);
    assert_has(&err, &[&format!("skipped {artifact}"), "is not signed by any trusted key", "rootseal trust add"]);
}

#[test]
fn a_listing_that_changes_under_the_pull_is_a_skip_or_an_error_never_a_panic() {
    let node = Node::new();
    let content = Content::new();
    let index = content.index_path();
    // Each pull reads the index once: request k of the index answers the k-th pull.
    let seen = std::sync::atomic::AtomicUsize::new(0);
    let server = lying(&content, move |req, _| {
        (req.path() == index).then(|| {
            let k = seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let body = match k {
                // Lists an artifact that is gone by the time it is fetched.
                0 | 2 => index_of(vec![entry(&format!("sha256:{k:064x}"), 600, "2026-01-01T00:00:00Z")]),
                1 => br#"{"schemaVersion":2,"manifests":"being rewritten"}"#.to_vec(),
                _ => br#"{"schemaVersion":2,"manifests":[{"digest":"sha256:"#.to_vec(),
            };
            Reply::content(OCI_INDEX, body)
        })
    });
    let image = node_for(&node, &content, &server);
    let gone = "is malformed: it is listed but gone (the listing changed)";
    assert_has(&node.pull_refused(1, &image), &[&format!("skipped sha256:{:064x}", 0), gone]);
    let err = node.pull_refused(2, &image);
    assert_has(&err, &[&format!("the referrers of {} is malformed", content.subject), "no manifests array"]);
    assert_has(&node.pull_refused(1, &image), &[&format!("skipped sha256:{:064x}", 2), gone]);
    assert_has(&node.pull_refused(2, &image), &["is not JSON"]);
}

#[test]
fn bytes_that_do_not_match_their_digest_are_refused_naming_the_digest() {
    let node = Node::new();
    let mut content = Content::new();
    let (artifact, envelope) = content.add_seal(&node.fresh);
    let image_manifest = content.manifest_path("1");

    // The artifact's manifest, asked for by digest, served with a byte more.
    let m = content.manifest_path(&artifact);
    let altered = [content.manifests[&artifact].clone(), b" ".to_vec()].concat();
    let server =
        lying(&content, move |req, _| (req.path() == m).then(|| Reply::content(OCI_MANIFEST, altered.clone())));
    let err = node.pull_refused(1, &node_for(&node, &content, &server));
    assert_has(
        &err,
        &[&format!("manifest app:{artifact} has digest sha256:"), &format!("not the {artifact} asked for")],
    );

    // The envelope's blob swapped for another seal that verifies (the layer declares its
    // size, so it is read in full): the digest alone refuses it.
    let other = std::fs::read(sealed_tree(&node.env, &node.env.path("ci.key"), "other")).unwrap();
    let mut swapped = Content::new();
    let subject = swapped.subject.clone();
    swapped.add_artifact(&subject, &envelope, other.len() as u64, "2026-01-01T00:00:00Z");
    swapped.blobs.insert(envelope.clone(), other.clone());
    let server = lying(&swapped, |_, _| None);
    let err = node.pull_refused(1, &node_for(&node, &swapped, &server));
    assert_has(
        &err,
        &[&format!("blob app@{envelope} has digest {}, not the {envelope} asked for", server::sha256(&other))],
    );

    // The image's manifest with a Docker-Content-Digest that is not its bytes'.
    let wrong = server::sha256(b"not these bytes");
    let (bytes, w) = (content.image_manifest.clone(), wrong.clone());
    let server = lying(&content, move |req, _| {
        (req.path() == image_manifest)
            .then(|| Reply::content(OCI_MANIFEST, bytes.clone()).header("Docker-Content-Digest", &w))
    });
    let err = node.pull_refused(2, &node_for(&node, &content, &server));
    assert_has(&err, &[&format!("has digest {}, not the {wrong} asked for", content.subject), "a proxy altered it"]);
}

#[test]
fn a_manifest_or_index_over_4_mib_is_not_read() {
    let node = Node::new();
    let mut content = Content::new();
    let (artifact, _) = content.add_seal(&node.fresh);
    let huge = |n: u64| Body::Stream { len: n, fill: b' ' };
    // (the path, its size, framing, exit code, the limit named).
    let cases = [
        (content.manifest_path("1"), MAX_MANIFEST + 1, Framing::ContentLength, 2, MAX_MANIFEST),
        (content.manifest_path("1"), 64 << 20, Framing::Chunked, 2, MAX_MANIFEST),
        (content.index_path(), 64 << 20, Framing::Close, 2, MAX_MANIFEST),
        (content.manifest_path(&artifact), 64 << 20, Framing::ContentLength, 1, MAX_ARTIFACT_MANIFEST),
        (content.manifest_path(&artifact), MAX_ARTIFACT_MANIFEST + 1, Framing::Chunked, 1, MAX_ARTIFACT_MANIFEST),
    ];
    for (path, size, framing, code, limit) in cases {
        let p = path.clone();
        let server = lying(&content, move |req, _| {
            (req.path() == p).then(|| {
                let media_type = if p.contains("sha256-") { OCI_INDEX } else { OCI_MANIFEST };
                Reply::new(200, huge(size)).header("Content-Type", media_type).framing(framing)
            })
        });
        let r = node.refused(code, &["pull", &node_for(&node, &content, &server)]);
        assert_has(&r.stderr, &[&format!("is larger than {limit} bytes; not read")]);
        assert!(r.max_rss_kib < MAX_RSS_KIB, "{path}: peak {} KiB", r.max_rss_kib);
    }
}

#[test]
fn a_registry_that_trickles_its_answer_is_cut_off_at_the_timeout() {
    // Every read gets a byte well within the read timeout; only a deadline on the whole
    // request ends this: at a byte per 100 ms the 64 KiB manifest would take 2 hours.
    let node = Node::new();
    let content = Content::new();
    let tag = content.manifest_path("1");
    let server = lying(&content, move |req, _| {
        (req.path() == tag).then(|| {
            let bytes = vec![b' '; 64 << 10];
            Reply::new(200, Body::Trickle { bytes, every: Duration::from_millis(100) })
                .header("Content-Type", OCI_MANIFEST)
        })
    });
    let r = node.refused(2, &["pull", &node_for(&node, &content, &server)]);
    assert_has(&r.stderr, &[&format!("registry {}: manifest app:1 did not arrive within {TIMEOUT}", server.host())]);
}

// 5. The sync.

#[test]
fn sync_against_a_registry_that_is_down_raises_sync_failed_and_keeps_the_store() {
    let node = Node::new();
    let (_port, host) = closed_port();
    let image = format!("{host}/app:1");
    node.configure(&format!(
        "plain_http = [\"{host}\"]\nauth_file = \"\"\ncerts_dir = \"\"\nimages = [\"{image}\"]\nattempts = 2"
    ));
    let r = node.refused(1, &["sync"]);
    assert_has(&r.stderr, &[&format!("rootseal: sync {image}: cannot reach registry {host}")]);
    assert_has(&r.stdout, &["sync: 1 image(s): 0 unchanged, 0 new seal(s), 1 failed"]);
    let events = std::fs::read_to_string(node.env.path("events.jsonl")).unwrap();
    let failed: Vec<serde_json::Value> = events
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["event"] == "sync-failed")
        .collect();
    assert_eq!(failed.len(), 1, "{events}");
    assert_eq!(failed[0]["image"], image.as_str());
    assert_has(failed[0]["message"].as_str().unwrap(), &["cannot sync the seals of", &host]);
}
