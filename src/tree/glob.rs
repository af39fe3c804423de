//! Shell-like patterns for image names and host paths: `*` matches within one `/`-separated
//! component, `**` matches across components, `?` one character other than `/`. Nothing else
//! is special.

pub fn matches(pattern: &str, text: &str) -> bool {
    m(pattern.as_bytes(), text.as_bytes())
}

fn m(p: &[u8], t: &[u8]) -> bool {
    match p.first() {
        None => t.is_empty(),
        Some(b'*') if p.get(1) == Some(&b'*') => {
            let rest = &p[2..];
            (0..=t.len()).any(|i| m(rest, &t[i..]))
        }
        Some(b'*') => {
            let rest = &p[1..];
            let limit = t.iter().position(|&c| c == b'/').unwrap_or(t.len());
            (0..=limit).any(|i| m(rest, &t[i..]))
        }
        Some(b'?') => t.first().is_some_and(|&c| c != b'/') && m(&p[1..], &t[1..]),
        Some(&c) => t.first() == Some(&c) && m(&p[1..], &t[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn star_stays_in_a_component_double_star_crosses() {
        assert!(matches("registry.k8s.io/pause:*", "registry.k8s.io/pause:3.9"));
        assert!(!matches("registry.example/*", "registry.example/team/app:1"));
        assert!(matches("registry.example/**", "registry.example/team/app:1"));
        assert!(matches(
            "/var/lib/kubelet/pods/*/volumes/kubernetes.io~empty-dir/*",
            "/var/lib/kubelet/pods/uid-1/volumes/kubernetes.io~empty-dir/cache"
        ));
        assert!(!matches(
            "/var/lib/kubelet/pods/*/volumes/kubernetes.io~empty-dir/*",
            "/var/lib/kubelet/pods/uid-1/volumes/kubernetes.io~secret/token"
        ));
        assert!(matches("app:?", "app:1") && !matches("app:?", "app:12"));
        assert!(matches("exact", "exact") && !matches("exact", "exactly"));
        assert!(matches("**", "") && matches("*", ""));
    }
}
