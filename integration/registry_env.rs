//! A real registry per test, for the end-to-end tests of registry distribution: Debian's
//! `docker-registry` (distribution 2.8) on 127.0.0.1 with its own port and storage, either plain
//! HTTP or TLS with basic auth; images pushed with skopeo, pulled with ctr into the test's own
//! containerd and with podman into the test's own store. Nothing is mocked, nothing is shared
//! between tests: each registry, certificate, htpasswd file and podman store lives in the test's
//! temp dir.
//!
//! # What distribution 2.8.2 accepts
//!
//! Probed against the real binary on this machine (HTTP PUT/GET by hand), and matching its
//! source: `registry/storage/ocimanifesthandler.go` `verifyManifest` checks only the schema
//! version and that every descriptor exists (OCI layer media types are checked for foreign-layer
//! URLs, a nested OCI manifest must exist as a manifest, and everything else is "forward[ed] to
//! blob storage": the blob must be in the repository). The test
//! `the_registry_takes_what_the_referrers_tag_schema_pushes` (registry_env_tests.rs) pins the parts
//! rootseal relies on.
//!
//! - **Manifest PUT**: the `Content-Type` must be `application/vnd.oci.image.manifest.v1+json`
//!   (parameters such as `; charset=utf-8` are fine) and the body's `mediaType` must be that or
//!   absent. The same body under the Docker schema2 type or without a `Content-Type`, an index
//!   body under the manifest type (or a manifest body with a `manifests` field), and the
//!   withdrawn OCI 1.1-rc artifact manifest `application/vnd.oci.artifact.manifest.v1+json` are
//!   all `400 MANIFEST_INVALID`. Bodies over 4 MiB: `400 MANIFEST_INVALID` ("http: request body
//!   too large").
//! - **Config and layer media types are free**: `application/vnd.oci.empty.v1+json`, a custom
//!   `application/vnd.rootseal...` type, `application/vnd.dsse.envelope.v1+json`, even `""` or
//!   `text/plain; charset=utf-8`; `layers: []` and no `layers` at all are accepted. The only
//!   rule is that every config and layer blob was pushed to the same repository first (else
//!   `400 MANIFEST_BLOB_UNKNOWN` naming the digest): push the 2-byte `{}` empty blob explicitly.
//!   No `validation:` setting is needed (2.8 has only `validation.manifests.urls` for foreign
//!   layers, and the deprecated `validation.disabled`).
//! - **`subject` and `artifactType` are stored, not understood**: the registry keeps the exact
//!   bytes (the digest is sha256 of what was sent), a subject naming a manifest that does not
//!   exist is accepted, no `OCI-Subject` header is returned, and there is no referrers API
//!   (`GET /v2/<name>/referrers/<digest>` is a plain-text `404 page not found`). So clients must
//!   use the referrers tag schema.
//! - **Index PUT** (`application/vnd.oci.image.index.v1+json`): every `manifests[]` entry must
//!   exist in the repository (else `400 MANIFEST_BLOB_UNKNOWN`); `manifests: []`, a top-level
//!   `artifactType`, and `artifactType`/`annotations` on the entries are accepted.
//! - **Tags** match `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`: `sha256-<64 hex>` (71 characters) is
//!   fine, upper case too; 129 characters or a leading `-`/`.` is a plain-text `404 page not
//!   found` (the route does not match). So `sha512-<128 hex>` is refused, and
//!   `sha512-<first 64 hex>`, the distribution spec's truncated fallback tag, is accepted.
//! - **GET and HEAD must send `Accept`** naming the stored type: without it, with only Docker
//!   types, or with `*/*`, an OCI manifest or index is `404 MANIFEST_UNKNOWN` ("OCI manifest
//!   found, but accept header does not support OCI manifests"). `Docker-Content-Digest` is
//!   returned on success.
//! - **DELETE** (`storage.delete.enabled: true`, set here) works by digest (`202`); by tag it is
//!   `400 DIGEST_INVALID`: 2.8 cannot untag, only overwrite a tag by a new PUT.

use crate::containerd::Containerd;
use crate::util::sh;
use base64::Engine as _;
use sha2::Digest as _;
use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long a registry may take to answer `/v2/` after it starts (only a hang bound: it takes
/// tens of milliseconds).
const READY: Duration = Duration::from_secs(30);

/// Free ports lost to another process in a row before giving up.
const BIND_ATTEMPTS: usize = 5;

/// A unique number in this process, for directory names.
fn next() -> usize {
    static N: AtomicUsize = AtomicUsize::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// A running `docker-registry serve` on 127.0.0.1, killed and reaped on drop. Its directory
/// (`<test dir>/registry-N`) holds `config.yml`, `storage/`, `registry.log` and, for TLS, the CA,
/// the server certificate, the htpasswd file and a `certs.d` for its host.
pub(crate) struct Registry {
    child: Child,
    dir: PathBuf,
    port: u16,
    tls: Option<Tls>,
}

/// The TLS and basic-auth side of a registry.
struct Tls {
    ca: PathBuf,
    user: String,
    password: String,
}

/// One HTTP response, read whole (requests are HTTP/1.0 with `Connection: close`).
pub(crate) struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first header named `name` (case-insensitive).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {:?} {}", self.status, self.headers, self.text())
    }
}

impl Registry {
    /// A registry on plain HTTP without auth, in a new directory under `dir`.
    pub(crate) fn plain(dir: &Path) -> Registry {
        Registry::start(dir, None)
    }

    /// A registry on HTTPS with basic auth for `user`/`password` (an htpasswd file made with
    /// `htpasswd -Bbn`), its server certificate (SAN IP:127.0.0.1 and DNS:localhost) issued by a
    /// CA made with openssl for this registry alone.
    pub(crate) fn tls_auth(dir: &Path, user: &str, password: &str) -> Registry {
        Registry::start(dir, Some((user, password)))
    }

    fn start(parent: &Path, auth: Option<(&str, &str)>) -> Registry {
        let dir = parent.join(format!("registry-{}", next()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut tls = auth.map(|(user, password)| make_tls(&dir, user, password));
        // The registry's config has no port 0: take a free port from the kernel, release it,
        // and start on it. Another process may take it in between; the registry then exits
        // with "address already in use" and we go again on a new port.
        for _ in 0..BIND_ATTEMPTS {
            let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
            std::fs::write(dir.join("config.yml"), config_yml(&dir, port, tls.as_ref())).unwrap();
            let log = std::fs::File::create(dir.join("registry.log")).unwrap();
            let child = Command::new("docker-registry")
                .arg("serve")
                .arg(dir.join("config.yml"))
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("docker-registry is installed (scripts/setup-host.sh)");
            let mut r = Registry { child, dir: dir.clone(), port, tls: tls.take() };
            if r.wait_ready() {
                if let Some(t) = &r.tls {
                    write_certs_d(&dir.join("certs.d"), &r.host(), &t.ca);
                }
                return r;
            }
            tls = r.tls.take();
        }
        panic!("docker-registry lost the race for a free port {BIND_ATTEMPTS} times in {}", dir.display());
    }

    /// Waits until `/v2/` answers 200 or 401. False when the port was taken by someone else
    /// first; panics with the registry's log on any other failure.
    fn wait_ready(&mut self) -> bool {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let log = self.log();
                if log.contains("address already in use") {
                    return false;
                }
                panic!("docker-registry on {} exited ({status}) before it was ready:\n{log}", self.host());
            }
            // The registry logs "listening on" once its socket is bound: only then can an
            // answer on this port come from this registry and not from whoever held it before.
            if self.log().contains("listening on") {
                match self.get("/v2/", None) {
                    Ok(r) if r.status == 200 || r.status == 401 => return true,
                    _ => {}
                }
            }
            assert!(
                start.elapsed() < READY,
                "docker-registry on {} did not answer /v2/ within {READY:?}:\n{}",
                self.host(),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// `127.0.0.1:PORT`.
    pub(crate) fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `127.0.0.1:PORT/<repo_tag>`: a full image reference on this registry.
    pub(crate) fn reference(&self, repo_tag: &str) -> String {
        format!("{}/{repo_tag}", self.host())
    }

    /// True for a plain-HTTP registry (clients need `--plain-http`, `--tls-verify=false`).
    pub(crate) fn is_plain_http(&self) -> bool {
        self.tls.is_none()
    }

    /// The PEM CA certificate that issued the server certificate (TLS registries only).
    pub(crate) fn ca_pem_path(&self) -> Option<&Path> {
        self.tls.as_ref().map(|t| t.ca.as_path())
    }

    /// A `certs.d` directory holding `<host:port>/ca.crt` and `hosts.toml` for this registry
    /// (TLS registries only; `write_certs_d`): what `ctr --hosts-dir` and rootseal's
    /// `certs_dir` take.
    pub(crate) fn certs_d(&self) -> Option<PathBuf> {
        self.tls.as_ref().map(|_| self.dir.join("certs.d"))
    }

    /// `certs_d()/<host:port>`: the directory with `ca.crt` that podman's and skopeo's
    /// `--cert-dir` take.
    pub(crate) fn cert_dir(&self) -> Option<PathBuf> {
        self.certs_d().map(|d| d.join(self.host()))
    }

    /// The basic-auth user and password (TLS registries only).
    pub(crate) fn creds(&self) -> Option<(&str, &str)> {
        self.tls.as_ref().map(|t| (t.user.as_str(), t.password.as_str()))
    }

    /// What the registry has logged so far (its access log included).
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("registry.log")).unwrap_or_default()
    }

    /// `GET path` with optional basic auth; see `request`.
    pub(crate) fn get(&self, path: &str, creds: Option<(&str, &str)>) -> Result<Response, String> {
        self.request("GET", path, creds, &[], b"")
    }

    /// One raw HTTP/1.0 request to the registry: over a TcpStream for plain HTTP, through
    /// `openssl s_client` for TLS, which verifies the server certificate against the CA and its
    /// IP SAN 127.0.0.1. `path` is absolute (`/v2/...`). Err when no HTTP response came back
    /// (connection refused, TLS failure), with the reason.
    pub(crate) fn request(
        &self,
        method: &str,
        path: &str,
        creds: Option<(&str, &str)>,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Response, String> {
        let mut req = format!(
            "{method} {path} HTTP/1.0\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
            self.host(),
            body.len()
        );
        if let Some((user, password)) = creds {
            let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            req.push_str(&format!("Authorization: Basic {token}\r\n"));
        }
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        let mut bytes = req.into_bytes();
        bytes.extend_from_slice(body);
        let raw = match &self.tls {
            None => plain_exchange(self.port, &bytes)?,
            Some(t) => tls_exchange(self.port, &t.ca, &bytes)?,
        };
        parse_response(&raw)
    }

    /// Uploads `bytes` as a blob of `repo` (monolithic POST then PUT, with the registry's
    /// credentials); returns its digest.
    pub(crate) fn put_blob(&self, repo: &str, bytes: &[u8]) -> String {
        let digest = format!("sha256:{:x}", sha2::Sha256::digest(bytes));
        let r = self.request("POST", &format!("/v2/{repo}/blobs/uploads/"), self.creds(), &[], b"").unwrap();
        assert_eq!(r.status, 202, "blob upload start in {repo}: {r:?}");
        let location = r.header("Location").expect("an upload location");
        // The location is absolute (`http://127.0.0.1:PORT/v2/...?_state=...`): keep the path.
        let path = location.split_once(&self.host()).map_or(location, |(_, p)| p);
        let sep = if path.contains('?') { '&' } else { '?' };
        let r = self
            .request(
                "PUT",
                &format!("{path}{sep}digest={digest}"),
                self.creds(),
                &[("Content-Type", "application/octet-stream")],
                bytes,
            )
            .unwrap();
        assert_eq!(r.status, 201, "blob upload of {digest} to {repo}: {r:?}");
        digest
    }

    /// PUTs `bytes` as manifest `reference` (tag or digest) of `repo` with `media_type` as its
    /// Content-Type, with the registry's credentials. Returns the response: callers assert.
    pub(crate) fn put_manifest(&self, repo: &str, reference: &str, media_type: &str, bytes: &[u8]) -> Response {
        self.request(
            "PUT",
            &format!("/v2/{repo}/manifests/{reference}"),
            self.creds(),
            &[("Content-Type", media_type)],
            bytes,
        )
        .unwrap()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The registry's config: storage in `dir`, deletes enabled, no upload purging (a background
/// job with nothing to do in a test), TLS and htpasswd auth when `tls` is set.
fn config_yml(dir: &Path, port: u16, tls: Option<&Tls>) -> String {
    let d = dir.display();
    let mut yml = format!(
        "version: 0.1\nlog:\n  level: info\n  formatter: text\nstorage:\n  filesystem:\n    rootdirectory: \"{d}/storage\"\n  delete:\n    enabled: true\n  maintenance:\n    uploadpurging:\n      enabled: false\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: rootseal-test-{port}-{}\n",
        std::process::id()
    );
    if tls.is_some() {
        yml.push_str(&format!(
            "  tls:\n    certificate: \"{d}/tls/server.crt\"\n    key: \"{d}/tls/server.key\"\nauth:\n  htpasswd:\n    realm: rootseal-test\n    path: \"{d}/tls/htpasswd\"\n"
        ));
    }
    yml
}

/// A CA, a server certificate for 127.0.0.1 and localhost, and an htpasswd file, in `dir/tls`.
/// The openssl configs are written here, so the host's openssl.cnf does not matter.
fn make_tls(dir: &Path, user: &str, password: &str) -> Tls {
    let t = dir.join("tls");
    std::fs::create_dir_all(&t).unwrap();
    std::fs::write(
        t.join("ca.cnf"),
        "[req]\ndistinguished_name = dn\nx509_extensions = ext\nprompt = no\n[dn]\nCN = rootseal test CA\n[ext]\nbasicConstraints = critical, CA:TRUE\nkeyUsage = critical, keyCertSign, cRLSign\nsubjectKeyIdentifier = hash\n",
    )
    .unwrap();
    std::fs::write(t.join("server.cnf"), "[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = localhost\n")
        .unwrap();
    // Go (the registry, containerd, podman, skopeo) ignores the CN: the SANs are what count.
    std::fs::write(
        t.join("server.ext"),
        "subjectAltName = IP:127.0.0.1, DNS:localhost\nbasicConstraints = critical, CA:FALSE\nkeyUsage = critical, digitalSignature\nextendedKeyUsage = serverAuth\nauthorityKeyIdentifier = keyid\n",
    )
    .unwrap();
    let openssl = |args: &[&str]| sh(Command::new("openssl").current_dir(&t).args(args).stdin(Stdio::null()));
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    openssl(
        &[&["req", "-x509", "-config", "ca.cnf"][..], &ec, &["-keyout", "ca.key", "-out", "ca.crt", "-days", "2"]]
            .concat(),
    );
    openssl(
        &[&["req", "-new", "-config", "server.cnf"][..], &ec, &["-keyout", "server.key", "-out", "server.csr"]]
            .concat(),
    );
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-set_serial",
        "2",
        "-days",
        "2",
        "-extfile",
        "server.ext",
        "-out",
        "server.crt",
    ]);
    let entry = sh(Command::new("htpasswd").args(["-Bbn", user, password]));
    std::fs::write(t.join("htpasswd"), entry.trim_end().to_string() + "\n").unwrap();
    Tls { ca: t.join("ca.crt"), user: user.into(), password: password.into() }
}

fn plain_exchange(port: u16, request: &[u8]) -> Result<Vec<u8>, String> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut s =
        TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(|e| format!("connect {addr}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    s.write_all(request).map_err(|e| format!("write to {addr}: {e}"))?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| format!("read from {addr}: {e}"))?;
    Ok(raw)
}

/// The request through `openssl s_client` (`-quiet` keeps reading after stdin's end until the
/// server closes; `-verify_return_error` makes a bad chain or SAN a failed handshake).
fn tls_exchange(port: u16, ca: &Path, request: &[u8]) -> Result<Vec<u8>, String> {
    let mut child = Command::new("timeout")
        .args(["-k", "2", "60", "openssl", "s_client", "-connect", &format!("127.0.0.1:{port}"), "-CAfile"])
        .arg(ca)
        .args(["-verify_return_error", "-verify_ip", "127.0.0.1", "-quiet", "-nocommands"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl is installed");
    let mut stdin = child.stdin.take().unwrap();
    let request = request.to_vec();
    // Written from a thread: a large body must not block on a full pipe while openssl waits
    // for us to read its output.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&request);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    if out.stdout.is_empty() {
        return Err(format!("openssl s_client to 127.0.0.1:{port}: {}", String::from_utf8_lossy(&out.stderr)));
    }
    Ok(out.stdout)
}

fn parse_response(raw: &[u8]) -> Result<Response, String> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("no HTTP header in {:?}", String::from_utf8_lossy(raw)))?;
    let head = String::from_utf8_lossy(&raw[..end]);
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no HTTP status line in {head:?}"))?;
    let headers =
        lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_string(), v.trim().to_string())).collect();
    Ok(Response { status, headers, body: raw[end + 4..].to_vec() })
}

/// Writes `<dir>/<host>/ca.crt` (a copy of `ca_pem`), the `certs.d` layout that Docker's
/// `/etc/docker/certs.d`, podman's and skopeo's `--cert-dir` (the host's subdirectory) and
/// rootseal's `certs_dir` read, plus a `hosts.toml` for containerd's hosts directory saying
/// `server = "https://<host>"` with that CA. Without the hosts.toml, containerd 1.6 reads the
/// ca.crt but talks plain HTTP to a loopback host (`remotes/docker/config/hosts.go`,
/// `ConfigureHosts`: a localhost or loopback IP with no configured server gets scheme http) and
/// the TLS registry answers "400 Bad Request". Returns `<dir>/<host>`.
pub(crate) fn write_certs_d(dir: &Path, host: &str, ca_pem: &Path) -> PathBuf {
    let d = dir.join(host);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::copy(ca_pem, d.join("ca.crt")).unwrap();
    // A relative `ca` is resolved against the host's directory.
    std::fs::write(
        d.join("hosts.toml"),
        format!("server = \"https://{host}\"\n\n[host.\"https://{host}\"]\n  capabilities = [\"pull\", \"resolve\", \"push\"]\n  ca = \"ca.crt\"\n"),
    )
    .unwrap();
    d
}

/// Adds `host` with `user:password` to the Docker `config.json` / containers `auth.json` at
/// `path` (`{"auths": {HOST: {"auth": base64(user:password)}}}`), keeping other hosts.
pub(crate) fn write_auth_json(path: &Path, host: &str, user: &str, password: &str) {
    let mut doc: serde_json::Value = std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_else(|| serde_json::json!({"auths": {}}));
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    doc["auths"][host] = serde_json::json!({ "auth": token });
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(path, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
}

/// Pushes the OCI archive at `archive` (one image, as `images::oci_archive` writes) to
/// `registry` as `repo_tag` with `skopeo copy`, with the registry's CA and credentials when it
/// has them. Returns the digest of the manifest as pushed (skopeo's `--digestfile`): skopeo may
/// compress uncompressed layers on the way, so it can differ from the archive's own.
pub(crate) fn push_archive(registry: &Registry, archive: &Path, repo_tag: &str) -> String {
    let digestfile = registry.dir.join(format!("pushed-{}.digest", next()));
    let mut cmd = Command::new("timeout");
    // --insecure-policy: the host's /etc/containers/policy.json is not the test's business.
    cmd.args(["-k", "5", "120", "skopeo", "--insecure-policy", "copy", "--quiet", "--digestfile"]).arg(&digestfile);
    match (registry.cert_dir(), registry.creds()) {
        (Some(cert_dir), Some((user, password))) => {
            cmd.arg("--dest-cert-dir").arg(cert_dir).arg("--dest-creds").arg(format!("{user}:{password}"));
        }
        _ => {
            cmd.arg("--dest-tls-verify=false");
        }
    }
    cmd.arg(format!("oci-archive:{}", archive.display()))
        .arg(format!("docker://{}", registry.reference(repo_tag)))
        .stdin(Stdio::null());
    let o = cmd.output().unwrap();
    assert!(o.status.success(), "{cmd:?}: {}\nregistry log:\n{}", text(&o), registry.log());
    std::fs::read_to_string(&digestfile).unwrap().trim().to_string()
}

/// `ctr images pull` of `repo_tag` from `registry` into `containerd`, with the flags that
/// registry needs (`--plain-http`, or its `certs_d()` as `--hosts-dir` and its credentials).
pub(crate) fn ctr_pull(containerd: &Containerd, registry: &Registry, repo_tag: &str) -> Output {
    containerd.pull(
        &registry.reference(repo_tag),
        registry.is_plain_http(),
        registry.certs_d().as_deref(),
        registry.creds(),
    )
}

/// A podman with a store of its own (`<test dir>/podman-N`): storage.conf, containers.conf and
/// registries.conf through `CONTAINERS_*` variables, file locks in its own tmp dir (the default
/// SHM locks are one segment for the whole machine), `auth_file()` as `REGISTRY_AUTH_FILE`, no
/// hooks unless `--hooks-dir` is given, and the ulimits podman needs on this machine. Tests in
/// parallel never see each other's images, so `rmi` of one cannot remove another's.
pub(crate) struct Podman {
    dir: PathBuf,
}

impl Podman {
    pub(crate) fn new(parent: &Path) -> Podman {
        let dir = parent.join(format!("podman-{}", next()));
        std::fs::create_dir_all(dir.join("hooks.d")).unwrap();
        let d = dir.display();
        std::fs::write(
            dir.join("storage.conf"),
            format!("[storage]\ndriver = \"overlay\"\ngraphroot = \"{d}/root\"\nrunroot = \"{d}/runroot\"\n"),
        )
        .unwrap();
        std::fs::write(
            dir.join("containers.conf"),
            format!(
                "[containers]\ndefault_ulimits = [\"nofile=20000:20000\", \"nproc=1000:1000\"]\n[engine]\ntmp_dir = \"{d}/tmp\"\nstatic_dir = \"{d}/root/libpod\"\nvolume_path = \"{d}/root/volumes\"\nlock_type = \"file\"\nevents_logger = \"file\"\nevents_logfile_path = \"{d}/events.log\"\nhooks_dir = [\"{d}/hooks.d\"]\n"
            ),
        )
        .unwrap();
        std::fs::write(dir.join("registries.conf"), "unqualified-search-registries = []\n").unwrap();
        // podman refuses a REGISTRY_AUTH_FILE that does not exist.
        std::fs::write(dir.join("auth.json"), "{\"auths\": {}}\n").unwrap();
        Podman { dir }
    }

    /// `podman` (under a 120 s `timeout`) on this store: add the subcommand and its arguments.
    pub(crate) fn cmd(&self) -> Command {
        let mut c = Command::new("timeout");
        c.args(["-k", "5", "120", "podman"]).envs(self.envs()).stdin(Stdio::null());
        c
    }

    /// The environment that selects this store: any process that runs `podman` with it (such
    /// as `rootseal sync`, which lists `podman images`) sees this store's images.
    pub(crate) fn envs(&self) -> [(&'static str, PathBuf); 4] {
        [
            ("CONTAINERS_CONF", self.dir.join("containers.conf")),
            ("CONTAINERS_STORAGE_CONF", self.dir.join("storage.conf")),
            ("CONTAINERS_REGISTRIES_CONF", self.dir.join("registries.conf")),
            ("REGISTRY_AUTH_FILE", self.auth_file()),
        ]
    }

    /// The auth file this podman reads (`{"auths": {}}` until a test adds to it with
    /// `write_auth_json`).
    pub(crate) fn auth_file(&self) -> PathBuf {
        self.dir.join("auth.json")
    }

    /// `podman pull REFERENCE`: `plain_http` is `--tls-verify=false`, `cert_dir` a directory
    /// holding `ca.crt` (`Registry::cert_dir`), `creds` `--creds user:password` (without it,
    /// podman uses `auth_file()` if written). Returns podman's output: callers assert.
    pub(crate) fn pull(
        &self,
        reference: &str,
        plain_http: bool,
        cert_dir: Option<&Path>,
        creds: Option<(&str, &str)>,
    ) -> Output {
        let mut c = self.cmd();
        c.args(["pull", "--quiet"]);
        if plain_http {
            c.arg("--tls-verify=false");
        }
        if let Some(d) = cert_dir {
            c.arg("--cert-dir").arg(d);
        }
        if let Some((user, password)) = creds {
            c.arg("--creds").arg(format!("{user}:{password}"));
        }
        c.arg(reference).output().unwrap()
    }

    /// The manifest digest `podman images --digests` lists for `reference`, if listed.
    pub(crate) fn image_digest(&self, reference: &str) -> Option<String> {
        let o = self
            .cmd()
            .args(["images", "--digests", "--format", "{{.Repository}}:{{.Tag}} {{.Digest}}"])
            .output()
            .unwrap();
        assert!(o.status.success(), "podman images: {}", text(&o));
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .find_map(|l| l.split_once(' ').filter(|(r, _)| *r == reference).map(|(_, d)| d.to_string()))
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        // Containers a failed test left running, then whatever is still mounted under the store
        // (overlay mounts and c/storage's private bind of its overlay home), deepest first, so
        // the temp dir can be removed.
        let _ = self.cmd().args(["rm", "--all", "--force", "--time", "0"]).output();
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let dir = self.dir.to_string_lossy();
        let mut points: Vec<&str> =
            mounts.lines().filter_map(|l| l.split(' ').nth(4)).filter(|p| p.starts_with(&*dir)).collect();
        points.sort_by_key(|p| std::cmp::Reverse(p.len()));
        for p in points {
            let _ = Command::new("umount").args(["-l", p]).status();
        }
    }
}

/// `podman pull` of `repo_tag` from `registry` into `podman`, with the flags that registry
/// needs (`--tls-verify=false`, or its `cert_dir()` and credentials).
pub(crate) fn podman_pull(podman: &Podman, registry: &Registry, repo_tag: &str) -> Output {
    podman.pull(
        &registry.reference(repo_tag),
        registry.is_plain_http(),
        registry.cert_dir().as_deref(),
        registry.creds(),
    )
}

use crate::containerd::text;

// The smoke tests of this fixture, in a sibling file to keep this one under 700 lines.
#[path = "registry_env_tests.rs"]
mod tests;
