//! Registry credentials and challenges.
//!
//! Credentials come from one auth file in the format Docker (`~/.docker/config.json`) and the
//! containers tools (`auth.json`, `podman login --authfile`) share:
//! `{"auths": {"HOST[:PORT]": {"auth": base64("user:password")}}}`. Credential helpers and
//! `credsStore` are not run (the sync runs as a service; the file is the interface).
//!
//! A registry answers 401 with `WWW-Authenticate`: `Basic realm=...` (htpasswd) or
//! `Bearer realm=...,service=...,scope=...` (the distribution token protocol,
//! distribution/docs/spec/auth/token.md): a token is fetched from the realm, with the basic
//! credentials when there are any, and sent as `Authorization: Bearer`.

use base64::Engine;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The largest auth file read.
const MAX_AUTH_FILE_BYTES: u64 = 1 << 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub user: String,
    pub password: String,
}

impl Credentials {
    pub fn basic_header(&self) -> String {
        let raw = format!("{}:{}", self.user, self.password);
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(raw))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("auth file {}: {source}", path.display())]
    Read { path: PathBuf, source: crate::atomic::ReadError },
    #[error("auth file {}: {what}; it must be {{\"auths\": {{\"HOST\": {{\"auth\": base64(\"user:password\")}}}}}} as `podman login --authfile` writes", path.display())]
    Format { path: PathBuf, what: String },
}

/// The credentials of an auth file, by host.
#[derive(Debug, Default, Clone)]
pub struct AuthFile {
    pub path: Option<PathBuf>,
    by_host: BTreeMap<String, Credentials>,
}

#[derive(serde::Deserialize)]
struct FileFormat {
    #[serde(default)]
    auths: BTreeMap<String, Entry>,
}

#[derive(serde::Deserialize)]
struct Entry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

impl AuthFile {
    /// Reads `path`; an empty path means no credentials, a missing file too (a node that
    /// pulls only public images has none).
    pub fn load(path: &Path) -> Result<AuthFile, AuthError> {
        if path.as_os_str().is_empty() {
            return Ok(AuthFile::default());
        }
        let bytes = match crate::atomic::read_bounded(path, MAX_AUTH_FILE_BYTES) {
            Ok(b) => b,
            Err(crate::atomic::ReadError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                return Ok(AuthFile { path: Some(path.into()), by_host: BTreeMap::new() })
            }
            Err(source) => return Err(AuthError::Read { path: path.into(), source }),
        };
        AuthFile::parse(&bytes, path)
    }

    pub fn parse(bytes: &[u8], path: &Path) -> Result<AuthFile, AuthError> {
        let bad = |what: String| AuthError::Format { path: path.into(), what };
        let f: FileFormat = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
        let mut by_host = BTreeMap::new();
        for (key, e) in f.auths {
            let creds = match (e.auth, e.username, e.password) {
                (Some(a), _, _) => {
                    let raw = base64::engine::general_purpose::STANDARD
                        .decode(a.trim())
                        .map_err(|_| bad(format!("the auth of {key:?} is not base64")))?;
                    let raw = String::from_utf8(raw).map_err(|_| bad(format!("the auth of {key:?} is not UTF-8")))?;
                    let (user, password) =
                        raw.split_once(':').ok_or_else(|| bad(format!("the auth of {key:?} is not user:password")))?;
                    Credentials { user: user.into(), password: password.into() }
                }
                (None, Some(user), Some(password)) => Credentials { user, password },
                _ => continue,
            };
            by_host.insert(normalize_host(&key), creds);
        }
        Ok(AuthFile { path: Some(path.into()), by_host })
    }

    /// The credentials for `host` (`host[:port]`, as in the reference).
    pub fn for_host(&self, host: &str) -> Option<&Credentials> {
        self.by_host.get(&normalize_host(host)).or_else(|| {
            // Docker writes Hub's key as its v1 URL.
            (host == "docker.io" || host == "registry-1.docker.io")
                .then(|| self.by_host.get("index.docker.io"))
                .flatten()
        })
    }
}

/// `https://host:port/v1/` and `host:port` name the same entry.
fn normalize_host(key: &str) -> String {
    let k = key.trim_start_matches("https://").trim_start_matches("http://");
    k.split('/').next().unwrap_or(k).to_string()
}

/// A `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer { realm: String, service: Option<String>, scope: Option<String> },
}

impl Challenge {
    /// Parses `Basic realm="x"` or `Bearer realm="x",service="y",scope="z"`; None for anything else.
    pub fn parse(header: &str) -> Option<Challenge> {
        let (scheme, rest) = header.trim().split_once(' ').unwrap_or((header.trim(), ""));
        if scheme.eq_ignore_ascii_case("basic") {
            return Some(Challenge::Basic);
        }
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        let params = parse_params(rest);
        Some(Challenge::Bearer {
            realm: params.get("realm")?.clone(),
            service: params.get("service").cloned(),
            scope: params.get("scope").cloned(),
        })
    }
}

/// `key="value", key2=value2`: quoted values may hold commas (scopes do).
fn parse_params(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let Some((key, after)) = rest.split_once('=') else { break };
        let key = key.trim().trim_start_matches(',').trim().to_ascii_lowercase();
        let after = after.trim_start();
        let (value, tail) = if let Some(q) = after.strip_prefix('"') {
            match q.find('"') {
                Some(end) => (q[..end].to_string(), &q[end + 1..]),
                None => (q.to_string(), ""),
            }
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim().to_string(), &after[end..])
        };
        out.insert(key, value);
        rest = tail.trim_start().trim_start_matches(',').trim_start();
    }
    out
}

/// The token endpoint's answer (`token`, or OAuth2's `access_token`).
#[derive(serde::Deserialize)]
pub struct TokenResponse {
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub access_token: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_docker_and_podman_auth_files() {
        let f = AuthFile::parse(
            br#"{"auths": {"127.0.0.1:5000": {"auth": "dXNlcjpwYTpzcw=="}, "https://index.docker.io/v1/": {"auth": "aHViOmh1Yg=="}, "helper.example": {}}, "credHelpers": {}}"#,
            Path::new("a.json"),
        )
        .unwrap();
        assert_eq!(f.for_host("127.0.0.1:5000"), Some(&Credentials { user: "user".into(), password: "pa:ss".into() }));
        assert_eq!(f.for_host("docker.io").unwrap().user, "hub");
        assert_eq!(f.for_host("helper.example"), None);
        let err = AuthFile::parse(br#"{"auths": {"h": {"auth": "!!"}}}"#, Path::new("a.json")).unwrap_err().to_string();
        assert!(err.contains("a.json") && err.contains("not base64") && err.contains("podman login"), "{err}");
        let err = AuthFile::parse(b"[", Path::new("a.json")).unwrap_err().to_string();
        assert!(err.starts_with("auth file a.json:"), "{err}");
    }

    #[test]
    fn parses_challenges() {
        assert_eq!(Challenge::parse("Basic realm=\"Registry Realm\""), Some(Challenge::Basic));
        assert_eq!(
            Challenge::parse(
                "Bearer realm=\"https://auth.example/token\",service=\"registry.example\",scope=\"repository:a/b:pull,push\""
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.example/token".into(),
                service: Some("registry.example".into()),
                scope: Some("repository:a/b:pull,push".into()),
            })
        );
        assert_eq!(Challenge::parse("Bearer service=x"), None, "a bearer challenge needs a realm");
        assert_eq!(Challenge::parse("Negotiate abc"), None);
    }
}
