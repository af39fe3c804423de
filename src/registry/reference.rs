//! Image references as container tools write them: `[host[:port]/]repository[:tag][@digest]`,
//! with Docker Hub's defaults (`busybox` is `docker.io/library/busybox:latest`).

/// Docker Hub's name in references, and the host its API answers on.
const DOCKER_HUB: &str = "docker.io";
const DOCKER_HUB_API: &str = "registry-1.docker.io";

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// `host[:port]` as written (`docker.io` for Hub images).
    pub registry: String,
    pub repository: String,
    pub tag: Option<String>,
    /// `sha256:<hex>` when the reference pins one.
    pub digest: Option<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("image reference {reference:?} {why}; write it as host[:port]/repository[:tag][@sha256:<hex>]")]
pub struct ReferenceError {
    pub reference: String,
    pub why: &'static str,
}

impl Reference {
    pub fn parse(s: &str) -> Result<Reference, ReferenceError> {
        let bad = |why| ReferenceError { reference: s.into(), why };
        if s.is_empty() || s.len() > 512 {
            return Err(bad("is empty or longer than 512 bytes"));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => {
                if !is_digest(d) {
                    return Err(bad("has a digest that is not sha256:<64 lowercase hex>"));
                }
                (r, Some(d.to_string()))
            }
            None => (s, None),
        };
        // The first component is a registry host when it has a dot or a port, or is localhost.
        let (registry, path) = match rest.split_once('/') {
            Some((h, p)) if h.contains('.') || h.contains(':') || h == "localhost" => (h.to_string(), p),
            _ => (DOCKER_HUB.to_string(), rest),
        };
        let (repository, tag) = match path.rsplit_once(':') {
            Some((r, t)) if !t.contains('/') => (r.to_string(), Some(t.to_string())),
            _ => (path.to_string(), None),
        };
        let repository = if registry == DOCKER_HUB && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository
        };
        if repository.is_empty()
            || !repository.split('/').all(|c| {
                !c.is_empty()
                    && c.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
                    && c.as_bytes()[0].is_ascii_alphanumeric()
            })
        {
            return Err(bad("has a repository that is not lowercase [a-z0-9._-] components"));
        }
        if let Some(t) = &tag {
            if t.is_empty() || t.len() > 128 || !t.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)) {
                return Err(bad("has a tag that is not [A-Za-z0-9._-]{1,128}"));
            }
        }
        let (host, port) = registry.split_once(':').unwrap_or((&registry, "0"));
        if host.is_empty()
            || !host.bytes().all(|b| b.is_ascii_alphanumeric() || b".-".contains(&b))
            || port.is_empty()
            || !port.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(bad("has a registry host that is not host[:port]"));
        }
        let tag = if tag.is_none() && digest.is_none() { Some("latest".into()) } else { tag };
        Ok(Reference { registry, repository, tag, digest })
    }

    /// The host the registry API answers on.
    pub fn api_host(&self) -> &str {
        if self.registry == DOCKER_HUB {
            DOCKER_HUB_API
        } else {
            &self.registry
        }
    }

    /// What to ask the manifest endpoint for: the digest when pinned, else the tag.
    pub fn manifest_ref(&self) -> &str {
        self.digest.as_deref().or(self.tag.as_deref()).unwrap_or("latest")
    }

    /// The repository's name with its registry, without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The same image pinned to `digest`.
    pub fn at(&self, digest: &str) -> Reference {
        Reference { digest: Some(digest.into()), ..self.clone() }
    }
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// `sha256:<64 lowercase hex>`: the only digest algorithm rootseal asks for or accepts.
pub fn is_digest(d: &str) -> bool {
    d.strip_prefix("sha256:")
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_container_tools_write() {
        let r = Reference::parse("busybox").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.tag.as_deref()),
            ("docker.io", "library/busybox", Some("latest"))
        );
        assert_eq!(r.api_host(), "registry-1.docker.io");
        let r = Reference::parse("127.0.0.1:5000/team/app:1.2").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.tag.as_deref()),
            ("127.0.0.1:5000", "team/app", Some("1.2"))
        );
        assert_eq!(r.to_string(), "127.0.0.1:5000/team/app:1.2");
        let d = format!("sha256:{}", "a".repeat(64));
        let r = Reference::parse(&format!("localhost/app@{d}")).unwrap();
        assert_eq!((r.tag.as_deref(), r.digest.as_deref(), r.manifest_ref()), (None, Some(d.as_str()), d.as_str()));
        let r = Reference::parse("quay.io/org/app:v1").unwrap();
        assert_eq!(r.name(), "quay.io/org/app");
    }

    #[test]
    fn refuses_what_is_not_a_reference() {
        for bad in ["", "Upper/Case", "host:5000/app:", "app@sha256:abc", "app:bad/tag", "a//b", "host/app:t@md5:00"] {
            let err = Reference::parse(bad).unwrap_err().to_string();
            assert!(err.contains("host[:port]/repository"), "{bad:?}: {err}");
        }
    }
}
