//! OpenSSH `known_hosts` checking for the SSH transport.
//!
//! libgit2 on its own trusts whatever `~/.ssh/known_hosts` of the user
//! running the process says; a controller gets its trusted host keys from a
//! mounted file instead, so the check is done here, in the certificate
//! callback, against exactly that file. The format follows `sshd(8)`
//! "SSH_KNOWN_HOSTS FILE FORMAT": comma-separated host patterns (`*`, `?`,
//! `!negation`), `[host]:port` for a port other than 22, hashed names
//! (`|1|salt|hmac-sha1`), and the `@revoked` marker. `@cert-authority` lines
//! are skipped: libssh2 presents plain host keys, never certificates.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use hmac::{Hmac, Mac};
use sha2::Digest as _;

/// What the `known_hosts` file says about the key a server offered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// A line for this host lists exactly this key.
    Trusted,
    /// No line for this host has a key of the offered type; `known_types`
    /// are the types it does list (empty: the host is not in the file).
    Unknown { known_types: Vec<String> },
    /// The host is listed with a different key of the same type: either the
    /// server's key changed or someone is in the middle.
    Mismatch { expected: Vec<String> },
    /// The key is marked `@revoked` for this host.
    Revoked,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Marker {
    None,
    Revoked,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Hosts {
    /// `|1|base64(salt)|base64(hmac_sha1(salt, name))`
    Hashed { salt: Vec<u8>, hash: Vec<u8> },
    /// `(negated, lowercase pattern)`
    Patterns(Vec<(bool, String)>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Line {
    marker: Marker,
    hosts: Hosts,
    key_type: String,
    key: Vec<u8>,
}

/// The parsed file. Lines that cannot be parsed are skipped, as OpenSSH
/// does, so one odd line does not make every host unknown.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct KnownHosts {
    lines: Vec<Line>,
}

impl KnownHosts {
    pub(crate) fn parse(text: &str) -> KnownHosts {
        KnownHosts {
            lines: text.lines().filter_map(parse_line).collect(),
        }
    }

    /// Checks the key blob `key` (SSH wire format, as the server sent it)
    /// offered by `host` on `port`.
    pub(crate) fn check(&self, host: &str, port: u16, key: &[u8]) -> Verdict {
        let name = host_key_name(host, port);
        let offered_type = key_type(key).unwrap_or_default();
        let mut known_types = Vec::new();
        let mut expected = Vec::new();
        let mut trusted = false;
        for line in self.lines.iter().filter(|l| l.hosts.matches(&name)) {
            if line.marker == Marker::Revoked {
                if line.key == key {
                    return Verdict::Revoked;
                }
                continue;
            }
            if line.key == key {
                trusted = true;
            } else if line.key_type == offered_type {
                expected.push(format!("{} {}", line.key_type, fingerprint(&line.key)));
            }
            if !known_types.contains(&line.key_type) {
                known_types.push(line.key_type.clone());
            }
        }
        if trusted {
            Verdict::Trusted
        } else if !expected.is_empty() {
            Verdict::Mismatch { expected }
        } else {
            Verdict::Unknown { known_types }
        }
    }
}

fn parse_line(line: &str) -> Option<Line> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let mut fields = line.split_whitespace();
    let mut first = fields.next()?;
    let marker = match first {
        "@revoked" => {
            first = fields.next()?;
            Marker::Revoked
        }
        // Certificate authorities sign host certificates, which libssh2
        // never presents; any other marker is unknown to us.
        m if m.starts_with('@') => return None,
        _ => Marker::None,
    };
    let hosts = parse_hosts(first)?;
    let key_type = fields.next()?.to_string();
    let key = STANDARD.decode(fields.next()?).ok()?;
    // The blob names its own type; a line whose type field disagrees is
    // corrupt, not a second way to spell the key.
    if self::key_type(&key)? != key_type {
        return None;
    }
    Some(Line {
        marker,
        hosts,
        key_type,
        key,
    })
}

fn parse_hosts(field: &str) -> Option<Hosts> {
    if let Some(rest) = field.strip_prefix("|1|") {
        let (salt, hash) = rest.split_once('|')?;
        return Some(Hosts::Hashed {
            salt: STANDARD.decode(salt).ok()?,
            hash: STANDARD.decode(hash).ok()?,
        });
    }
    let patterns = field
        .split(',')
        .filter(|p| !p.is_empty())
        .map(|p| match p.strip_prefix('!') {
            Some(p) => (true, p.to_ascii_lowercase()),
            None => (false, p.to_ascii_lowercase()),
        })
        .collect::<Vec<_>>();
    (!patterns.is_empty()).then_some(Hosts::Patterns(patterns))
}

impl Hosts {
    fn matches(&self, name: &str) -> bool {
        match self {
            Hosts::Hashed { salt, hash } => {
                let Ok(mut mac) = Hmac::<sha1::Sha1>::new_from_slice(salt) else {
                    return false;
                };
                mac.update(name.as_bytes());
                mac.verify_slice(hash).is_ok()
            }
            Hosts::Patterns(patterns) => {
                let name = name.to_ascii_lowercase();
                let mut positive = false;
                for (negated, pattern) in patterns {
                    if glob(pattern.as_bytes(), name.as_bytes()) {
                        if *negated {
                            return false;
                        }
                        positive = true;
                    }
                }
                positive
            }
        }
    }
}

/// `*` matches any run of characters, `?` one character.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == b'?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// The name a host is listed under: `host` on port 22, `[host]:port`
/// otherwise (an IPv6 address loses the brackets of its URL form first).
pub(crate) fn host_key_name(host: &str, port: u16) -> String {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    }
}

/// The key type named at the start of an SSH public key blob
/// (`string key-type`, RFC 4253 6.6).
pub(crate) fn key_type(blob: &[u8]) -> Option<&str> {
    let len = u32::from_be_bytes(blob.get(..4)?.try_into().ok()?) as usize;
    std::str::from_utf8(blob.get(4..4 + len)?).ok()
}

/// `SHA256:<base64>`, as `ssh-keygen -l` prints it.
pub(crate) fn fingerprint(blob: &[u8]) -> String {
    format!(
        "SHA256:{}",
        STANDARD_NO_PAD.encode(sha2::Sha256::digest(blob))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    // Two ed25519 host keys and an RSA one from `ssh-keygen`, base64 as they
    // appear in known_hosts.
    const ED_A: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIItAqjdWsHLOg2B8oBK08pc6tmozxLvM7ZxdL0uXc2oo";
    const ED_B: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIAzUIAHK3uj3C00h+0B8Z2o+6v+gOeetljvZLR5VmWyW";
    const RSA: &str = "AAAAB3NzaC1yc2EAAAADAQABAAAAgQC5hHlwnG5zr0/Id9Y+Aqx8Y+NIMwGjw+Gp67TWB23Gczg91m6mxQGRS1bp22unjhS5bLLm5+aTcpvQ3goOi4X3iU+SvAGcgGRo+T+MMRFcYjy4OqqrnCKO83jAWhKbZyY2OJdHzGFzGxfjjsTd/3V+cDmhtADNNRhl4nsX36hbhQ==";

    fn blob(b64: &str) -> Vec<u8> {
        STANDARD.decode(b64).unwrap()
    }

    #[test]
    fn plain_entries_match_by_host_and_port() {
        let kh = KnownHosts::parse(&format!(
            "# comment\n\ngithub.com,140.82.112.3 ssh-ed25519 {ED_A}\n[127.0.0.1]:2222 ssh-ed25519 {ED_B} root@box\n"
        ));
        assert_eq!(kh.check("github.com", 22, &blob(ED_A)), Verdict::Trusted);
        assert_eq!(kh.check("GitHub.com", 22, &blob(ED_A)), Verdict::Trusted);
        assert_eq!(kh.check("140.82.112.3", 22, &blob(ED_A)), Verdict::Trusted);
        assert_eq!(kh.check("127.0.0.1", 2222, &blob(ED_B)), Verdict::Trusted);
        // the port is part of the name: the same host on 22 is unknown
        assert_eq!(
            kh.check("127.0.0.1", 22, &blob(ED_B)),
            Verdict::Unknown {
                known_types: vec![]
            }
        );
        assert_eq!(
            kh.check("gitlab.com", 22, &blob(ED_A)),
            Verdict::Unknown {
                known_types: vec![]
            }
        );
    }

    #[test]
    fn a_different_key_of_the_same_type_is_a_mismatch() {
        let kh = KnownHosts::parse(&format!("github.com ssh-ed25519 {ED_A}\n"));
        match kh.check("github.com", 22, &blob(ED_B)) {
            Verdict::Mismatch { expected } => {
                assert_eq!(
                    expected,
                    [format!("ssh-ed25519 {}", fingerprint(&blob(ED_A)))]
                )
            }
            v => panic!("{v:?}"),
        }
    }

    #[test]
    fn only_other_key_types_listed_is_unknown_and_says_which() {
        let kh = KnownHosts::parse(&format!("github.com ssh-ed25519 {ED_A}\n"));
        assert_eq!(
            kh.check("github.com", 22, &blob(RSA)),
            Verdict::Unknown {
                known_types: vec!["ssh-ed25519".into()]
            }
        );
    }

    #[test]
    fn hashed_names_wildcards_negation_and_revoked() {
        // `ssh-keygen -H` of "[127.0.0.1]:2222 ssh-ed25519 ED_A"
        let kh = KnownHosts::parse(&format!(
            "|1|tsweuY1t+YRIU1uNjOihDuA//VM=|n4rr6crEb2a//ohMbCa93XzkpOE= ssh-ed25519 {ED_A}\n*.example.com,!bad.example.com ssh-ed25519 {ED_B}\n@revoked git?.example.com ssh-ed25519 {ED_B}\n"
        ));
        assert_eq!(kh.check("127.0.0.1", 2222, &blob(ED_A)), Verdict::Trusted);
        assert_eq!(
            kh.check("127.0.0.2", 2222, &blob(ED_A)),
            Verdict::Unknown {
                known_types: vec![]
            }
        );
        assert_eq!(kh.check("a.example.com", 22, &blob(ED_B)), Verdict::Trusted);
        assert_eq!(
            kh.check("bad.example.com", 22, &blob(ED_B)),
            Verdict::Unknown {
                known_types: vec![]
            }
        );
        assert_eq!(
            kh.check("git1.example.com", 22, &blob(ED_B)),
            Verdict::Revoked
        );
    }

    #[test]
    fn malformed_lines_are_skipped() {
        let kh = KnownHosts::parse(&format!(
            "github.com ssh-ed25519 not-base64!\ngithub.com ssh-rsa {ED_A}\n@cert-authority * ssh-ed25519 {ED_A}\ngithub.com ssh-ed25519 {ED_B}\n"
        ));
        assert_eq!(kh.lines.len(), 1);
        assert_eq!(kh.check("github.com", 22, &blob(ED_B)), Verdict::Trusted);
    }

    #[test]
    fn names_and_types() {
        assert_eq!(host_key_name("[::1]", 2222), "[::1]:2222");
        assert_eq!(host_key_name("example.com", 22), "example.com");
        assert_eq!(key_type(&blob(ED_A)), Some("ssh-ed25519"));
        assert_eq!(key_type(&blob(RSA)), Some("ssh-rsa"));
        assert_eq!(key_type(b"\0\0"), None);
        assert!(glob(b"a*c?", b"abbbcd"));
        assert!(!glob(b"a*c", b"abbbcd"));
    }
}
