//! The reference's short hash and the names derived from it (pure).
//!
//! Names of namespaces, PVs and cloud tags must match the original Kompox
//! byte for byte, or its deployed apps could not be adopted. The function is
//! SHA-256, read as a big-endian integer, rendered in base 36 and cut to `n`
//! characters (reference §2.2; the design doc's "LSB first" is wrong).

use sha2::{Digest, Sha256};

/// The length used for every hash in names and labels.
pub const HASH_LEN: usize = 6;

const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";

/// `ShortHash(s, n)` of the reference.
pub fn short_hash(s: &str, n: usize) -> String {
    short_hash_bytes(s.as_bytes(), n)
}

/// Content hash of a key/value map (reference §4.10): keys sorted, each
/// `KEY=VALUE\0` concatenated, then [`short_hash`].
pub fn content_hash<'a, I, V>(kv: I) -> String
where
    I: IntoIterator<Item = (&'a str, V)>,
    V: AsRef<[u8]>,
{
    let mut items: Vec<(&str, V)> = kv.into_iter().collect();
    items.sort_by(|a, b| a.0.cmp(b.0));
    let mut buf: Vec<u8> = Vec::new();
    for (k, v) in &items {
        buf.extend_from_slice(k.as_bytes());
        buf.push(b'=');
        buf.extend_from_slice(v.as_ref());
        buf.push(0);
    }
    short_hash_bytes(&buf, HASH_LEN)
}

/// Secret values may be arbitrary bytes: the reference hashes the Go
/// string, i.e. the raw bytes, so the hash works on bytes.
fn short_hash_bytes(bytes: &[u8], n: usize) -> String {
    base36_prefix(&Sha256::digest(bytes), n)
}

/// Base 36 of a big-endian number by repeated long division, left-padded
/// with `0` and cut to `n` characters.
fn base36_prefix(digest: &[u8], n: usize) -> String {
    let mut num = digest.to_vec();
    let mut out = Vec::new();
    while num.iter().any(|&b| b != 0) {
        let mut rem: u32 = 0;
        for byte in num.iter_mut() {
            let acc = (rem << 8) | u32::from(*byte);
            *byte = (acc / 36) as u8;
            rem = acc % 36;
        }
        out.push(DIGITS[rem as usize]);
    }
    out.reverse();
    let mut s = String::from_utf8(out).unwrap_or_default();
    if s.len() < n {
        s = "0".repeat(n - s.len()) + &s;
    }
    s.truncate(n);
    s
}

/// The identity hashes of one app (reference §2.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppHashes {
    /// `ws:prv` — namespace and PV prefix.
    pub provider: String,
    /// `ws:prv:cls`.
    pub cluster: String,
    /// `ws:prv:app` — cluster-independent app identity (disks are keyed by it).
    pub app_id: String,
    /// `ws:prv:cls:app` — cluster-dependent instance.
    pub instance: String,
}

impl AppHashes {
    pub fn new(ws: &str, prv: &str, cls: &str, app: &str) -> Self {
        AppHashes {
            provider: short_hash(&format!("{ws}:{prv}"), HASH_LEN),
            cluster: short_hash(&format!("{ws}:{prv}:{cls}"), HASH_LEN),
            app_id: short_hash(&format!("{ws}:{prv}:{app}"), HASH_LEN),
            instance: short_hash(&format!("{ws}:{prv}:{cls}:{app}"), HASH_LEN),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_vector_one() {
        let h = AppHashes::new("aks-e2e-gitea-20250925-060355", "aks1", "cluster1", "app1");
        assert_eq!(h.provider, "50vf7y");
        assert_eq!(h.cluster, "62mpgv");
        assert_eq!(h.app_id, "13o40q");
        assert_eq!(h.instance, "2aopo7");
    }

    #[test]
    fn reference_vector_two() {
        let h = AppHashes::new("ws1", "prv1", "cls1", "app1");
        assert_eq!(h.provider, "32kff1");
        assert_eq!(h.app_id, "k9x84f");
        assert_eq!(h.instance, "bgewya");
    }

    #[test]
    fn empty_string_vector() {
        assert_eq!(short_hash("", 6), "5oaq0b");
    }

    #[test]
    fn empty_map_hashes_like_the_empty_string() {
        let empty: Vec<(&str, &str)> = Vec::new();
        assert_eq!(content_hash(empty), "5oaq0b");
    }

    #[test]
    fn content_hash_ignores_input_order() {
        let a = content_hash([("B", "2"), ("A", "1")]);
        let b = content_hash([("A", "1"), ("B", "2")]);
        assert_eq!(a, b);
        assert_eq!(a, short_hash("A=1\0B=2\0", 6));
    }

    #[test]
    fn binary_values_hash_their_bytes() {
        let h = content_hash([("k", &[0xffu8, 0xfe][..])]);
        assert_eq!(h.len(), 6);
        assert_ne!(h, content_hash([("k", &[0xffu8][..])]));
    }
}
