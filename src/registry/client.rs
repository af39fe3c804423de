//! The OCI distribution API, as a small blocking client (ureq over rustls): manifests and blobs
//! fetched with bounded sizes and checked digests, blob uploads, manifest puts, the referrers
//! API, and the two ways registries authenticate (auth.rs). Every request has a timeout and
//! every redirect chain a length; the number of requests is counted for the sync summary and
//! the benchmark.

use super::auth::{AuthFile, Challenge, TokenResponse};
use super::RegistryError;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Redirects followed for one request (blob storage may redirect once or twice).
const MAX_REDIRECTS: u32 = 5;
/// The largest token endpoint answer or error body read.
const MAX_SMALL_BODY: u64 = 1 << 20;

/// How to reach registries.
#[derive(Debug, Clone, Default)]
pub struct ClientSettings {
    /// `certs_dir/<host[:port]>/*.crt`: extra CAs per registry.
    pub certs_dir: PathBuf,
    /// Hosts (`host:port`) spoken to over plain HTTP.
    pub plain_http: Vec<String>,
    /// The deadline of every request, whole: connect, redirects, headers and body.
    pub timeout: Duration,
    pub auth: AuthFile,
}

pub struct Client {
    settings: ClientSettings,
    agents: Mutex<HashMap<String, ureq::Agent>>,
    requests: AtomicU64,
    /// The authorization each (host, repository) obtained: the sessions of one run (the
    /// fingerprint, the seal fetches, other images of the repository) answer a challenge once.
    authorizations: Mutex<HashMap<(String, String), String>>,
    /// Hosts that answered 404 on the referrers API: not asked again by this client (a sync
    /// of 200 images on one registry asks once).
    no_referrers_api: Mutex<std::collections::HashSet<String>>,
}

/// A response whose status is not 401 (that one is handled).
pub struct Response {
    pub status: u16,
    inner: ureq::Response,
    /// The request's deadline, for the error when the body does not arrive in time.
    timeout: Duration,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.inner.header(name)
    }

    /// The body, at most `limit` bytes (a longer one is an error, read no further).
    pub fn body(self, host: &str, what: &str, limit: u64) -> Result<Vec<u8>, RegistryError> {
        let too_large = || RegistryError::TooLarge { host: host.into(), what: what.into(), limit };
        if self.inner.header("Content-Length").and_then(|v| v.trim().parse::<u64>().ok()).is_some_and(|n| n > limit) {
            return Err(too_large());
        }
        let timeout = self.timeout;
        let mut out = Vec::new();
        self.inner.into_reader().take(limit + 1).read_to_end(&mut out).map_err(|e| {
            if e.kind() == std::io::ErrorKind::TimedOut {
                RegistryError::Timeout { host: host.into(), what: what.into(), timeout }
            } else {
                RegistryError::Connect { host: host.into(), detail: format!("reading {what}: {e}") }
            }
        })?;
        if out.len() as u64 > limit {
            return Err(too_large());
        }
        Ok(out)
    }
}

impl Client {
    pub fn new(settings: ClientSettings) -> Client {
        Client {
            settings,
            agents: Mutex::new(HashMap::new()),
            requests: AtomicU64::new(0),
            authorizations: Mutex::new(HashMap::new()),
            no_referrers_api: Mutex::new(Default::default()),
        }
    }

    /// Requests sent so far (token requests and retries included).
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    pub fn settings(&self) -> &ClientSettings {
        &self.settings
    }

    fn plain(&self, host: &str) -> bool {
        self.settings.plain_http.iter().any(|h| h == host)
    }

    fn agent(&self, host: &str) -> Result<ureq::Agent, RegistryError> {
        let mut agents = self.agents.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(a) = agents.get(host) {
            return Ok(a.clone());
        }
        let t = self.settings.timeout;
        // A deadline on the whole request, not only on each read: a registry that sends a
        // byte just before every read timeout would otherwise hold a request for as long as
        // its body limit allows (days for a 4 MiB index; ureq caps headers at 100 KiB, which
        // is hours as well). ureq's `timeout` covers connect, redirects, headers and body.
        let mut b = ureq::AgentBuilder::new()
            .timeout_connect(t)
            .timeout(t)
            // ureq counts the first response: `redirects(n)` follows n - 1 (unit.rs, `connect`).
            .redirects(MAX_REDIRECTS + 1)
            .user_agent(concat!("rootseal/", env!("CARGO_PKG_VERSION")));
        if !self.plain(host) {
            let tls = super::tls::client_config(&self.settings.certs_dir, host).map_err(|e| RegistryError::Tls {
                host: host.into(),
                detail: e.to_string(),
                certs_dir: self.settings.certs_dir.clone(),
            })?;
            b = b.tls_config(tls);
        }
        let a = b.build();
        agents.insert(host.into(), a.clone());
        Ok(a)
    }

    /// A session with one repository of one registry.
    pub fn repo(&self, registry: &str, api_host: &str, repository: &str) -> Repo<'_> {
        Repo {
            client: self,
            registry: registry.into(),
            host: api_host.into(),
            repository: repository.into(),
            authorization: self
                .authorizations
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&(api_host.to_string(), repository.to_string()))
                .cloned(),
        }
    }
}

/// Requests to one repository; keeps the authorization it obtained.
pub struct Repo<'c> {
    client: &'c Client,
    /// As in the reference (the auth file's key).
    registry: String,
    host: String,
    repository: String,
    authorization: Option<String>,
}

/// A manifest as served, with the digest of its bytes.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub bytes: Vec<u8>,
    pub media_type: String,
    pub digest: String,
}

pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", crate::manifest::hex(&Sha256::digest(bytes)))
}

impl Repo<'_> {
    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn repository(&self) -> &str {
        &self.repository
    }

    fn url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            return path.into();
        }
        let scheme = if self.client.plain(&self.host) { "http" } else { "https" };
        format!("{scheme}://{}{path}", self.host)
    }

    /// Sends a request, answering one 401 challenge; every other status is the caller's.
    pub fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Result<Response, RegistryError> {
        let agent = self.client.agent(&self.host)?;
        let url = self.url(path);
        let mut challenged = false;
        loop {
            let mut req = agent.request(method, &url);
            for (k, v) in headers {
                req = req.set(k, v);
            }
            if let Some(a) = &self.authorization {
                req = req.set("Authorization", a);
            }
            self.client.requests.fetch_add(1, Ordering::Relaxed);
            let result = match body {
                Some(b) => req.send_bytes(b),
                None => req.call(),
            };
            let resp = match result {
                Ok(r) => r,
                Err(ureq::Error::Status(_, r)) => r,
                Err(ureq::Error::Transport(t)) => {
                    return Err(self.transport(&t, &format!("the answer to {method} {path}")))
                }
            };
            if resp.status() != 401 {
                return Ok(Response { status: resp.status(), inner: resp, timeout: self.client.settings.timeout });
            }
            let challenge = resp.header("WWW-Authenticate").and_then(Challenge::parse);
            if challenged || challenge.is_none() {
                return Err(self.unauthorized());
            }
            challenged = true;
            self.authorize(challenge.expect("checked"))?;
            if let Some(a) = &self.authorization {
                self.client
                    .authorizations
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert((self.host.clone(), self.repository.clone()), a.clone());
            }
        }
    }

    fn unauthorized(&self) -> RegistryError {
        RegistryError::Unauthorized {
            host: self.registry.clone(),
            repository: self.repository.clone(),
            auth_file: self.client.settings.auth.path.clone(),
            had_credentials: self.client.settings.auth.for_host(&self.registry).is_some(),
        }
    }

    /// `what`: the request, for a timeout.
    fn transport(&self, t: &ureq::Transport, what: &str) -> RegistryError {
        let detail = t.to_string();
        // Told by ureq's words after the URL: a repository may be named "tls".
        let url = t.url().map(|u| format!("{u}: ")).unwrap_or_default();
        let lower = detail.strip_prefix(url.as_str()).unwrap_or(&detail).to_ascii_lowercase();
        match t.kind() {
            ureq::ErrorKind::TooManyRedirects => {
                RegistryError::Redirects { host: self.host.clone(), limit: MAX_REDIRECTS }
            }
            // ureq's words for a passed deadline ("timed out reading response", "connection
            // timed out"): a registry that is up but too slow, or silent.
            _ if lower.contains("timed out") => RegistryError::Timeout {
                host: self.host.clone(),
                what: what.into(),
                timeout: self.client.settings.timeout,
            },
            _ if lower.contains("certificate") || lower.contains("tls") || lower.contains("handshake") => {
                RegistryError::Tls {
                    host: self.host.clone(),
                    detail,
                    certs_dir: self.client.settings.certs_dir.clone(),
                }
            }
            _ => RegistryError::Connect { host: self.host.clone(), detail },
        }
    }

    /// Answers a challenge: basic credentials from the auth file, or a token from the realm.
    fn authorize(&mut self, challenge: Challenge) -> Result<(), RegistryError> {
        let creds = self.client.settings.auth.for_host(&self.registry).cloned();
        match challenge {
            Challenge::Basic => {
                let c = creds.ok_or_else(|| self.unauthorized())?;
                self.authorization = Some(c.basic_header());
            }
            Challenge::Bearer { realm, service, scope } => {
                let realm_host = realm.split("://").nth(1).and_then(|r| r.split('/').next()).unwrap_or("").to_string();
                let agent = self.client.agent(&realm_host)?;
                let mut req = agent.get(&realm);
                if let Some(s) = &service {
                    req = req.query("service", s);
                }
                if let Some(s) = &scope {
                    req = req.query("scope", s);
                }
                if let Some(c) = &creds {
                    req = req.set("Authorization", &c.basic_header());
                }
                self.client.requests.fetch_add(1, Ordering::Relaxed);
                let resp = match req.call() {
                    Ok(r) => r,
                    Err(ureq::Error::Status(401 | 403, _)) => return Err(self.unauthorized()),
                    Err(ureq::Error::Status(code, _)) => {
                        return Err(RegistryError::Status {
                            host: realm_host,
                            what: "a token".into(),
                            status: code,
                            detail: format!("from {realm}"),
                        })
                    }
                    Err(ureq::Error::Transport(t)) => return Err(self.transport(&t, "a token")),
                };
                let timeout = self.client.settings.timeout;
                let body =
                    Response { status: 200, inner: resp, timeout }.body(&realm_host, "the token", MAX_SMALL_BODY)?;
                let t: TokenResponse = serde_json::from_slice(&body).map_err(|e| RegistryError::Malformed {
                    host: realm_host.clone(),
                    what: "the token response".into(),
                    detail: e.to_string(),
                })?;
                let token =
                    t.token.or(t.access_token).filter(|t| !t.is_empty()).ok_or_else(|| RegistryError::Malformed {
                        host: realm_host,
                        what: "the token response".into(),
                        detail: "it has no token".into(),
                    })?;
                self.authorization = Some(format!("Bearer {token}"));
            }
        }
        Ok(())
    }

    fn error_status(&self, what: &str, resp: Response) -> RegistryError {
        let status = resp.status;
        let body = resp.body(&self.host, what, 4096).unwrap_or_default();
        let detail = String::from_utf8_lossy(&body).chars().filter(|c| !c.is_control()).take(300).collect();
        RegistryError::Status { host: self.host.clone(), what: what.into(), status, detail }
    }

    /// GET a manifest by tag or digest; None when the registry has none (404). The bytes'
    /// digest is checked against a requested digest and against `Docker-Content-Digest`.
    pub fn manifest(&mut self, reference: &str, accept: &[&str], limit: u64) -> Result<Option<Fetched>, RegistryError> {
        let path = format!("/v2/{}/manifests/{reference}", self.repository);
        let accept = accept.join(", ");
        let what = format!("manifest {}:{reference}", self.repository);
        let resp = self.send("GET", &path, &[("Accept", &accept)], None)?;
        match resp.status {
            200 => {}
            404 => return Ok(None),
            _ => return Err(self.error_status(&what, resp)),
        }
        let media_type = resp.header("Content-Type").unwrap_or("").split(';').next().unwrap_or("").trim().to_string();
        let said = resp.header("Docker-Content-Digest").map(str::to_string);
        let bytes = resp.body(&self.host, &what, limit)?;
        let digest = sha256_digest(&bytes);
        let expected = if super::reference::is_digest(reference) { Some(reference.to_string()) } else { said };
        if let Some(e) = expected.filter(|e| e.starts_with("sha256:") && *e != digest) {
            return Err(RegistryError::DigestMismatch { host: self.host.clone(), what, expected: e, actual: digest });
        }
        Ok(Some(Fetched { bytes, media_type, digest }))
    }

    /// GET a blob by digest, at most `limit` bytes, checked against its digest.
    pub fn blob(&mut self, digest: &str, limit: u64) -> Result<Vec<u8>, RegistryError> {
        let what = format!("blob {}@{digest}", self.repository);
        let resp = self.send("GET", &format!("/v2/{}/blobs/{digest}", self.repository), &[], None)?;
        if resp.status != 200 {
            return Err(self.error_status(&what, resp));
        }
        let bytes = resp.body(&self.host, &what, limit)?;
        let actual = sha256_digest(&bytes);
        if actual != digest {
            return Err(RegistryError::DigestMismatch {
                host: self.host.clone(),
                what,
                expected: digest.into(),
                actual,
            });
        }
        Ok(bytes)
    }

    /// Uploads `bytes` as a blob unless the registry has it (monolithic upload: POST, then
    /// PUT with the digest; distribution spec "Pushing a blob monolithically").
    pub fn upload_blob(&mut self, bytes: &[u8]) -> Result<String, RegistryError> {
        let digest = sha256_digest(bytes);
        let head = self.send("HEAD", &format!("/v2/{}/blobs/{digest}", self.repository), &[], None)?;
        if head.status == 200 {
            return Ok(digest);
        }
        let what = format!("a blob upload to {}", self.repository);
        let post = self.send("POST", &format!("/v2/{}/blobs/uploads/", self.repository), &[], Some(&[]))?;
        if post.status != 202 {
            return Err(self.error_status(&what, post));
        }
        let location = post.header("Location").map(str::to_string).ok_or_else(|| RegistryError::Malformed {
            host: self.host.clone(),
            what: what.clone(),
            detail: "202 without a Location".into(),
        })?;
        let sep = if location.contains('?') { '&' } else { '?' };
        let put_url = format!("{location}{sep}digest={digest}");
        let len = bytes.len().to_string();
        let put = self.send(
            "PUT",
            &put_url,
            &[("Content-Type", "application/octet-stream"), ("Content-Length", &len)],
            Some(bytes),
        )?;
        if put.status != 201 {
            return Err(self.error_status(&what, put));
        }
        Ok(digest)
    }

    /// PUT a manifest under `reference` (tag or digest). Returns its digest and whether the
    /// registry said it indexed the subject itself (`OCI-Subject`: it has the referrers API).
    pub fn put_manifest(
        &mut self,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<(String, bool), RegistryError> {
        let what = format!("manifest {}:{reference}", self.repository);
        let resp = self.send(
            "PUT",
            &format!("/v2/{}/manifests/{reference}", self.repository),
            &[("Content-Type", media_type)],
            Some(bytes),
        )?;
        if resp.status != 201 {
            return Err(self.error_status(&what, resp));
        }
        Ok((sha256_digest(bytes), resp.header("OCI-Subject").is_some()))
    }

    /// The referrers API (OCI distribution 1.1): the index of `digest`'s referrers of
    /// `artifact_type`; None when the registry does not have the API (404).
    pub fn referrers_api(
        &mut self,
        digest: &str,
        artifact_type: &str,
        limit: u64,
    ) -> Result<Option<Vec<u8>>, RegistryError> {
        let what = format!("referrers of {}@{digest}", self.repository);
        let path = if artifact_type.is_empty() {
            format!("/v2/{}/referrers/{digest}", self.repository)
        } else {
            format!("/v2/{}/referrers/{digest}?artifactType={}", self.repository, artifact_type.replace('+', "%2B"))
        };
        let lacks = |c: &Client| c.no_referrers_api.lock().unwrap_or_else(|e| e.into_inner()).contains(&self.host);
        if lacks(self.client) {
            return Ok(None);
        }
        let resp = self.send("GET", &path, &[("Accept", super::artifact::INDEX_MEDIA_TYPE)], None)?;
        match resp.status {
            200 => {}
            404 => {
                self.client.no_referrers_api.lock().unwrap_or_else(|e| e.into_inner()).insert(self.host.clone());
                return Ok(None);
            }
            _ => return Err(self.error_status(&what, resp)),
        }
        let is_index = resp.header("Content-Type").is_some_and(|t| t.starts_with(super::artifact::INDEX_MEDIA_TYPE));
        if !is_index {
            return Ok(None);
        }
        resp.body(&self.host, &what, limit).map(Some)
    }
}

/// Shared by the threads of a sync.
pub type SharedClient = Arc<Client>;

#[cfg(test)]
mod tests {
    use super::*;

    fn response(raw: &str) -> Response {
        Response { status: 200, inner: raw.parse().unwrap(), timeout: Duration::from_secs(1) }
    }

    #[test]
    fn a_body_is_read_up_to_its_limit_and_no_further() {
        let ok = response("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789");
        assert_eq!(ok.body("h:5000", "blob x", 10).unwrap(), b"0123456789");
        // A declared length over the limit is refused before a byte is read.
        let declared = response("HTTP/1.1 200 OK\r\nContent-Length: 1073741824\r\n\r\n0123456789");
        let err = declared.body("h:5000", "blob x", 10).unwrap_err();
        assert_eq!(err.to_string(), "registry h:5000: blob x is larger than 10 bytes; not read");
        // Without a length (or chunked), the read stops one byte past the limit.
        for raw in [
            format!("HTTP/1.1 200 OK\r\n\r\n{}", "a".repeat(11)),
            format!("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nb\r\n{}\r\n0\r\n\r\n", "a".repeat(11)),
        ] {
            assert!(
                matches!(response(&raw).body("h", "x", 10), Err(RegistryError::TooLarge { limit: 10, .. })),
                "{raw}"
            );
        }
    }
}
