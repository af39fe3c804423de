//! A registry that lies: a plain-HTTP/1.1 server on 127.0.0.1 (std::net, a thread per
//! connection, `Connection: close` on every answer) that speaks just enough of the OCI
//! distribution API for `rootseal pull` (distribution-spec 1.1: `GET
//! /v2/<name>/manifests/<reference>`, `GET /v2/<name>/referrers/<digest>`, `GET
//! /v2/<name>/blobs/<digest>`) and answers each request with whatever the test's handler says:
//! honest content from [`Content`], or a stream of 1 GiB, a redirect loop, a body trickled a
//! byte at a time.
//!
//! It logs every request line and, for each body it wrote, how many bytes went out and
//! whether the client closed the connection before the end: what the tests assert "the
//! client stopped reading" with.

use sha2::Digest as _;
use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub(crate) const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub(crate) const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// src/registry/artifact.rs: the seal artifact's type and its one layer's media type.
pub(crate) const SEAL_ARTIFACT_TYPE: &str = "application/vnd.rootseal.seal.v1+json";
pub(crate) const DSSE: &str = "application/vnd.dsse.envelope.v1+json";
const EMPTY_DIGEST: &str = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

/// A server-side socket timeout: a client that stops reading cannot pin a thread for longer.
const SOCKET_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest request head read (the client's requests are a few hundred bytes).
const MAX_REQUEST_HEAD: usize = 64 << 10;
/// The size of each write of a streamed body.
const CHUNK: usize = 64 << 10;

pub(crate) fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{:x}", sha2::Sha256::digest(bytes))
}

/// One request as received (its headers are read and dropped): `GET`,
/// `/v2/app/manifests/1` (with the query).
#[derive(Debug, Clone)]
pub(crate) struct Request {
    pub method: String,
    pub target: String,
}

impl Request {
    /// The target without its query.
    pub(crate) fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }
}

/// How the end of a body is told (RFC 9112 section 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    ContentLength,
    Chunked,
    /// Neither: the body ends when the server closes the connection.
    Close,
}

#[derive(Debug, Clone)]
pub(crate) enum Body {
    Bytes(Vec<u8>),
    /// `len` bytes of `fill`, written 64 KiB at a time: never held in memory.
    Stream {
        len: u64,
        fill: u8,
    },
    /// `bytes`, one byte every `every`: each read of the client gets something in time.
    Trickle {
        bytes: Vec<u8>,
        every: Duration,
    },
}

impl Body {
    fn len(&self) -> u64 {
        match self {
            Body::Bytes(b) | Body::Trickle { bytes: b, .. } => b.len() as u64,
            Body::Stream { len, .. } => *len,
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Body,
    pub framing: Framing,
}

impl Reply {
    pub(crate) fn new(status: u16, body: Body) -> Reply {
        Reply { status, headers: Vec::new(), body, framing: Framing::ContentLength }
    }

    /// 200 with `bytes` as `media_type`.
    pub(crate) fn content(media_type: &str, bytes: Vec<u8>) -> Reply {
        Reply::new(200, Body::Bytes(bytes)).header("Content-Type", media_type)
    }

    /// distribution 2.8's answer to a route it does not have (the referrers API among them).
    pub(crate) fn not_found() -> Reply {
        Reply::new(404, Body::Bytes(b"404 page not found\n".to_vec())).header("Content-Type", "text/plain")
    }

    pub(crate) fn redirect(location: &str) -> Reply {
        Reply::new(302, Body::Bytes(Vec::new())).header("Location", location)
    }

    pub(crate) fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub(crate) fn framing(mut self, framing: Framing) -> Reply {
        self.framing = framing;
        self
    }
}

/// What the server saw of one body it wrote.
#[derive(Debug, Clone)]
pub(crate) struct Written {
    pub target: String,
    pub bytes: u64,
    pub of: u64,
    /// The client closed the connection (a write failed) before the body's end.
    pub closed_early: bool,
}

#[derive(Debug, Default)]
pub(crate) struct Log {
    /// `GET /v2/...` for every request, in order.
    pub requests: Vec<String>,
    pub written: Vec<Written>,
}

/// Answers request number `n` (from 0, over the server's life).
pub(crate) type Handler = dyn Fn(&Request, usize) -> Reply + Send + Sync;

/// The server; it stops accepting when dropped (connections in flight end by themselves: the
/// client's exit closes them, and every socket has a timeout).
pub(crate) struct Server {
    port: u16,
    log: Arc<Mutex<Log>>,
    stop: Arc<AtomicBool>,
}

impl Server {
    pub(crate) fn start(handler: impl Fn(&Request, usize) -> Reply + Send + Sync + 'static) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let log = Arc::new(Mutex::new(Log::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let handler: Arc<Handler> = Arc::new(handler);
        let counter = Arc::new(AtomicUsize::new(0));
        let (log2, stop2) = (log.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (log, handler, counter) = (log2.clone(), handler.clone(), counter.clone());
                std::thread::spawn(move || serve(conn, &*handler, &counter, &log));
            }
        });
        Server { port, log, stop }
    }

    /// `127.0.0.1:PORT`.
    pub(crate) fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The request lines so far.
    pub(crate) fn requests(&self) -> Vec<String> {
        self.log.lock().unwrap().requests.clone()
    }

    /// The record of the body written for `target`, waiting up to `within` for the
    /// connection's end (the writer learns of the client's close only at its next write).
    pub(crate) fn written(&self, target: &str, within: Duration) -> Written {
        let start = Instant::now();
        loop {
            if let Some(w) = self.log.lock().unwrap().written.iter().find(|w| w.target == target) {
                return w.clone();
            }
            assert!(start.elapsed() < within, "no body for {target} ended within {within:?}: {:?}", self.requests());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop so that it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn serve(mut conn: TcpStream, handler: &Handler, counter: &AtomicUsize, log: &Mutex<Log>) {
    conn.set_read_timeout(Some(SOCKET_TIMEOUT)).unwrap();
    conn.set_write_timeout(Some(SOCKET_TIMEOUT)).unwrap();
    let Some(req) = read_request(&mut conn) else { return };
    log.lock().unwrap().requests.push(format!("{} {}", req.method, req.target));
    let reply = handler(&req, counter.fetch_add(1, Ordering::Relaxed));
    let (bytes, closed_early) = write_reply(&mut conn, &reply);
    log.lock().unwrap().written.push(Written { target: req.target, bytes, of: reply.body.len(), closed_early });
}

fn read_request(conn: &mut TcpStream) -> Option<Request> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > MAX_REQUEST_HEAD || conn.read(&mut byte).ok()? == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head);
    let mut first = text.split("\r\n").next()?.split(' ');
    Some(Request { method: first.next()?.to_string(), target: first.next()?.to_string() })
}

/// Writes the reply; returns the body bytes written and whether the client closed first.
fn write_reply(conn: &mut TcpStream, reply: &Reply) -> (u64, bool) {
    let reason = match reply.status {
        200 => "OK",
        302 => "Found",
        404 => "Not Found",
        _ => "Whatever",
    };
    let mut head = format!("HTTP/1.1 {} {reason}\r\nConnection: close\r\n", reply.status);
    for (k, v) in &reply.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    match reply.framing {
        Framing::ContentLength => head.push_str(&format!("Content-Length: {}\r\n", reply.body.len())),
        Framing::Chunked => head.push_str("Transfer-Encoding: chunked\r\n"),
        Framing::Close => {}
    }
    head.push_str("\r\n");
    if conn.write_all(head.as_bytes()).is_err() {
        return (0, true);
    }
    let mut sent = 0u64;
    let mut send = |conn: &mut TcpStream, data: &[u8]| -> bool {
        let ok = match reply.framing {
            Framing::Chunked => {
                conn.write_all(format!("{:x}\r\n", data.len()).as_bytes()).is_ok()
                    && conn.write_all(data).is_ok()
                    && conn.write_all(b"\r\n").is_ok()
            }
            _ => conn.write_all(data).is_ok(),
        };
        if ok {
            sent += data.len() as u64;
        }
        ok
    };
    let complete = match &reply.body {
        Body::Bytes(b) => b.is_empty() || send(conn, b),
        Body::Stream { len, fill } => {
            let chunk = vec![*fill; CHUNK];
            let mut left = *len;
            loop {
                if left == 0 {
                    break true;
                }
                let n = left.min(CHUNK as u64) as usize;
                if !send(conn, &chunk[..n]) {
                    break false;
                }
                left -= n as u64;
            }
        }
        Body::Trickle { bytes, every } => bytes.iter().all(|b| {
            std::thread::sleep(*every);
            send(conn, std::slice::from_ref(b))
        }),
    };
    if complete && reply.framing == Framing::Chunked && conn.write_all(b"0\r\n\r\n").is_err() {
        return (sent, true);
    }
    (sent, !complete)
}

/// An honest registry's content for one repository: an image manifest under a tag, its
/// referrers index under the tag schema (`sha256-<hex>` of the subject, distribution-spec 1.1
/// "Referrers Tag Schema"), the seal artifacts it lists and their envelope blobs.
#[derive(Debug, Clone)]
pub(crate) struct Content {
    pub repository: String,
    pub tag: String,
    pub image_manifest: Vec<u8>,
    /// The image manifest's digest: the subject seals refer to.
    pub subject: String,
    /// Manifests by digest (seal artifacts).
    pub manifests: BTreeMap<String, Vec<u8>>,
    pub blobs: BTreeMap<String, Vec<u8>>,
    /// The referrers index's entries.
    pub entries: Vec<serde_json::Value>,
}

impl Content {
    /// `app:1`, a one-layer image manifest (the registry never has to serve its blobs: a pull
    /// of seals reads only the manifest).
    pub(crate) fn new() -> Content {
        let image_manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(b"config"), "size": 6},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha256(b"layer"), "size": 5}],
        }))
        .unwrap();
        Content {
            repository: "app".into(),
            tag: "1".into(),
            subject: sha256(&image_manifest),
            image_manifest,
            manifests: BTreeMap::new(),
            blobs: BTreeMap::new(),
            entries: Vec::new(),
        }
    }

    /// `127.0.0.1:PORT/app:1` on `server`.
    pub(crate) fn reference(&self, server: &Server) -> String {
        format!("{}/{}:{}", server.host(), self.repository, self.tag)
    }

    /// Files `envelope` as a seal artifact of `subject`, created at `created`, listed in the
    /// index. Returns the artifact's digest and the envelope's.
    pub(crate) fn add_seal_for(&mut self, subject: &str, envelope: &[u8], created: &str) -> (String, String) {
        let envelope_digest = sha256(envelope);
        self.blobs.insert(envelope_digest.clone(), envelope.to_vec());
        (self.add_artifact(subject, &envelope_digest, envelope.len() as u64, created), envelope_digest)
    }

    /// Files a seal artifact whose envelope layer says `envelope_digest` and `envelope_size`
    /// (as src/registry/artifact.rs `seal_manifest` and `referrer_entry` write them), listed
    /// in the index; the blob is not added. Returns the artifact's digest.
    pub(crate) fn add_artifact(
        &mut self,
        subject: &str,
        envelope_digest: &str,
        envelope_size: u64,
        created: &str,
    ) -> String {
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": SEAL_ARTIFACT_TYPE,
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": EMPTY_DIGEST, "size": 2, "data": "e30="},
            "layers": [{"mediaType": DSSE, "digest": envelope_digest, "size": envelope_size}],
            "subject": {"mediaType": OCI_MANIFEST, "digest": subject, "size": self.image_manifest.len()},
            "annotations": {"org.opencontainers.image.created": created},
        }))
        .unwrap();
        let digest = sha256(&manifest);
        self.entries.push(entry(&digest, manifest.len(), created));
        self.manifests.insert(digest.clone(), manifest);
        digest
    }

    /// A seal artifact of this image's manifest.
    pub(crate) fn add_seal(&mut self, envelope: &[u8]) -> (String, String) {
        let subject = self.subject.clone();
        self.add_seal_for(&subject, envelope, "2026-01-01T00:00:00Z")
    }

    /// The referrers index as served.
    pub(crate) fn index(&self) -> Vec<u8> {
        index_of(self.entries.clone())
    }

    /// `/v2/app/manifests/<reference>`.
    pub(crate) fn manifest_path(&self, reference: &str) -> String {
        format!("/v2/{}/manifests/{reference}", self.repository)
    }

    /// `/v2/app/blobs/<digest>`.
    pub(crate) fn blob_path(&self, digest: &str) -> String {
        format!("/v2/{}/blobs/{digest}", self.repository)
    }

    /// The referrers tag of the subject.
    pub(crate) fn index_path(&self) -> String {
        self.manifest_path(&self.subject.replacen(':', "-", 1))
    }

    /// What an honest registry (without the referrers API, as distribution 2.8) answers.
    pub(crate) fn answer(&self, req: &Request) -> Reply {
        let path = req.path();
        if req.method != "GET" {
            return Reply::new(405, Body::Bytes(Vec::new()));
        }
        if path == "/v2/" {
            return Reply::content("application/json", b"{}".to_vec());
        }
        if path == self.manifest_path(&self.tag) || path == self.manifest_path(&self.subject) {
            return Reply::content(OCI_MANIFEST, self.image_manifest.clone())
                .header("Docker-Content-Digest", &self.subject);
        }
        if path == self.index_path() {
            let index = self.index();
            return Reply::content(OCI_INDEX, index.clone()).header("Docker-Content-Digest", &sha256(&index));
        }
        if let Some(d) = path.strip_prefix(&self.manifest_path("")) {
            if let Some(m) = self.manifests.get(d) {
                return Reply::content(OCI_MANIFEST, m.clone()).header("Docker-Content-Digest", d);
            }
        }
        if let Some(b) = path.strip_prefix(&self.blob_path("")).and_then(|d| self.blobs.get(d)) {
            return Reply::content("application/octet-stream", b.clone());
        }
        Reply::not_found()
    }
}

/// A referrers index entry for a seal artifact.
pub(crate) fn entry(digest: &str, size: usize, created: &str) -> serde_json::Value {
    serde_json::json!({
        "mediaType": OCI_MANIFEST,
        "digest": digest,
        "size": size,
        "artifactType": SEAL_ARTIFACT_TYPE,
        "annotations": {"org.opencontainers.image.created": created},
    })
}

pub(crate) fn index_of(entries: Vec<serde_json::Value>) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries})).unwrap()
}
