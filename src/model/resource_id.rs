//! Resource IDs: `/ws/<name>/prv/<name>/cls/<name>/app/<name>[/box/<name>]`.

use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Workspace,
    Provider,
    Cluster,
    App,
    Box,
}

impl Kind {
    pub fn short(self) -> &'static str {
        match self {
            Kind::Workspace => "ws",
            Kind::Provider => "prv",
            Kind::Cluster => "cls",
            Kind::App => "app",
            Kind::Box => "box",
        }
    }

    pub fn from_short(s: &str) -> Option<Kind> {
        Some(match s {
            "ws" => Kind::Workspace,
            "prv" => Kind::Provider,
            "cls" => Kind::Cluster,
            "app" => Kind::App,
            "box" => Kind::Box,
            _ => return None,
        })
    }

    /// The KOM `kind:` value.
    pub fn kom_name(self) -> &'static str {
        match self {
            Kind::Workspace => "Workspace",
            Kind::Provider => "Provider",
            Kind::Cluster => "Cluster",
            Kind::App => "App",
            Kind::Box => "Box",
        }
    }

    pub fn from_kom_name(s: &str) -> Option<Kind> {
        Some(match s {
            "Workspace" => Kind::Workspace,
            "Provider" => Kind::Provider,
            "Cluster" => Kind::Cluster,
            "App" => Kind::App,
            "Box" => Kind::Box,
            _ => return None,
        })
    }

    /// Number of `/<sk>/<name>` pairs a Resource ID of this kind has.
    pub fn depth(self) -> usize {
        self as usize + 1
    }

    /// The kind at a given depth (1-based) of the required parent chain.
    pub fn at_depth(depth: usize) -> Option<Kind> {
        [
            Kind::Workspace,
            Kind::Provider,
            Kind::Cluster,
            Kind::App,
            Kind::Box,
        ]
        .get(depth.checked_sub(1)?)
        .copied()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ResourceId {
    pairs: Vec<(Kind, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResourceIdError {
    #[error("a Resource ID starts with '/' (e.g. /ws/<name>/prv/<name>)")]
    NoLeadingSlash,
    #[error("a Resource ID is pairs of /<kind>/<name>; \"{0}\" has an odd number of segments")]
    OddSegments(String),
    #[error("unknown short kind \"{0}\" (expected ws, prv, cls, app or box)")]
    UnknownKind(String),
    #[error(
        "\"{kind}\" cannot appear at position {position}; the chain is /ws/../prv/../cls/../app/../box/.."
    )]
    WrongOrder { kind: String, position: usize },
    #[error(
        "name \"{0}\" is not a DNS-1123 label (lowercase letters, digits and '-', 1 to 63 characters, starting and ending with a letter or digit)"
    )]
    BadName(String),
}

impl ResourceId {
    pub fn new(pairs: Vec<(Kind, String)>) -> Self {
        ResourceId { pairs }
    }

    pub fn pairs(&self) -> &[(Kind, String)] {
        &self.pairs
    }

    pub fn kind(&self) -> Option<Kind> {
        self.pairs.last().map(|p| p.0)
    }

    pub fn name(&self) -> &str {
        self.pairs.last().map(|p| p.1.as_str()).unwrap_or("")
    }

    /// The name of the ancestor (or self) of the given kind.
    pub fn name_of(&self, kind: Kind) -> Option<&str> {
        self.pairs
            .iter()
            .find(|p| p.0 == kind)
            .map(|p| p.1.as_str())
    }

    pub fn parent(&self) -> Option<ResourceId> {
        if self.pairs.len() <= 1 {
            return None;
        }
        Some(ResourceId {
            pairs: self.pairs[..self.pairs.len() - 1].to_vec(),
        })
    }

    pub fn child(&self, kind: Kind, name: &str) -> ResourceId {
        let mut pairs = self.pairs.clone();
        pairs.push((kind, name.to_string()));
        ResourceId { pairs }
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }
}

impl FromStr for ResourceId {
    type Err = ResourceIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let rest = s.strip_prefix('/').ok_or(ResourceIdError::NoLeadingSlash)?;
        let segs: Vec<&str> = rest.split('/').collect();
        if !segs.len().is_multiple_of(2) || segs.is_empty() {
            return Err(ResourceIdError::OddSegments(s.to_string()));
        }
        let mut pairs = Vec::with_capacity(segs.len() / 2);
        for (i, chunk) in segs.chunks(2).enumerate() {
            let kind = Kind::from_short(chunk[0])
                .ok_or_else(|| ResourceIdError::UnknownKind(chunk[0].to_string()))?;
            if Kind::at_depth(i + 1) != Some(kind) {
                return Err(ResourceIdError::WrongOrder {
                    kind: chunk[0].to_string(),
                    position: i + 1,
                });
            }
            if !is_dns_label(chunk[1]) {
                return Err(ResourceIdError::BadName(chunk[1].to_string()));
            }
            pairs.push((kind, chunk[1].to_string()));
        }
        Ok(ResourceId { pairs })
    }
}

impl fmt::Display for ResourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (k, n) in &self.pairs {
            write!(f, "/{}/{}", k.short(), n)?;
        }
        Ok(())
    }
}

/// DNS-1123 label: `^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`, 1..63 characters.
pub fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let id: ResourceId = "/ws/a/prv/b/cls/c/app/d".parse().unwrap();
        assert_eq!(id.to_string(), "/ws/a/prv/b/cls/c/app/d");
        assert_eq!(id.kind(), Some(Kind::App));
        assert_eq!(id.parent().unwrap().to_string(), "/ws/a/prv/b/cls/c");
        assert_eq!(id.name_of(Kind::Provider), Some("b"));
    }

    #[test]
    fn rejects_bad_shapes() {
        assert_eq!(
            "ws/a".parse::<ResourceId>(),
            Err(ResourceIdError::NoLeadingSlash)
        );
        assert!(matches!(
            "/ws".parse::<ResourceId>(),
            Err(ResourceIdError::OddSegments(_))
        ));
        assert!(matches!(
            "/xx/a".parse::<ResourceId>(),
            Err(ResourceIdError::UnknownKind(_))
        ));
        assert!(matches!(
            "/prv/a".parse::<ResourceId>(),
            Err(ResourceIdError::WrongOrder { .. })
        ));
        assert!(matches!(
            "/ws/A_b".parse::<ResourceId>(),
            Err(ResourceIdError::BadName(_))
        ));
    }

    #[test]
    fn dns_labels() {
        assert!(is_dns_label("a-1"));
        assert!(!is_dns_label("-a"));
        assert!(!is_dns_label("a-"));
        assert!(!is_dns_label(&"a".repeat(64)));
        assert!(!is_dns_label(""));
    }
}
