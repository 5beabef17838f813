//! Zone names of the EKS driver. Pure.
//!
//! Kompox names zones the same way on every cloud, `<region>-<n>` with
//! n = 1, 2, 3 … (AKS: `japaneast-1` is Azure zone `1`), so an App's
//! `deployment.zone` reads alike everywhere. AWS names availability zones
//! `<region><letter>`; the n-th letter is zone n:
//!
//! | Kompox        | AWS          |
//! |---------------|--------------|
//! | `us-east-1-1` | `us-east-1a` |
//! | `us-east-1-2` | `us-east-1b` |
//! | `us-east-1-6` | `us-east-1f` |
//!
//! AWS names are accepted as given (`us-east-1b`); listings answer the
//! Kompox form. Zone ids (`use1-az1`), Local Zones and zones of another
//! region are refused: a disk of this driver lives in one of the
//! region's availability zones. The letter of a zone name is per AWS
//! account (AWS shuffles names to ids per account), which is fine here:
//! every Kompox name is resolved in the same account as the disks.

/// The AWS name (`us-east-1b`) of a zone given in Kompox (`us-east-1-2`)
/// or AWS form, or `None` when it is not an availability zone name of
/// `region`.
pub fn to_aws(region: &str, zone: &str) -> Option<String> {
    let rest = zone.strip_prefix(region)?;
    if region.is_empty() {
        return None;
    }
    if let Some(n) = rest.strip_prefix('-') {
        if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let n: u8 = n.parse().ok().filter(|n| (1..=26).contains(n))?;
        return Some(format!("{region}{}", (b'a' + n - 1) as char));
    }
    let b = rest.as_bytes();
    (b.len() == 1 && b[0].is_ascii_lowercase()).then(|| zone.to_string())
}

/// The Kompox name (`us-east-1-2`) of an AWS zone (`us-east-1b`); a name
/// that is not an availability zone of `region` comes back unchanged.
pub fn to_kompox(region: &str, az: &str) -> String {
    match to_aws(region, az) {
        Some(aws) => {
            let letter = aws.as_bytes()[aws.len() - 1];
            format!("{region}-{}", letter - b'a' + 1)
        }
        None => az.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const R: &str = "us-east-1";

    #[test]
    fn kompox_numbers_are_aws_letters() {
        assert_eq!(to_aws(R, "us-east-1-1").as_deref(), Some("us-east-1a"));
        assert_eq!(to_aws(R, "us-east-1-2").as_deref(), Some("us-east-1b"));
        assert_eq!(to_aws(R, "us-east-1-26").as_deref(), Some("us-east-1z"));
        assert_eq!(to_kompox(R, "us-east-1b"), "us-east-1-2");
        assert_eq!(to_kompox("eu-central-1", "eu-central-1c"), "eu-central-1-3");
    }

    #[test]
    fn aws_names_are_accepted_as_given() {
        assert_eq!(to_aws(R, "us-east-1c").as_deref(), Some("us-east-1c"));
        assert_eq!(to_kompox(R, "us-east-1-3"), "us-east-1-3", "already Kompox");
    }

    #[test]
    fn names_outside_the_region_are_refused() {
        for bad in [
            "",
            "us-east-1",
            "us-east-1-0",
            "us-east-1-27",
            "us-east-1-+1",
            "us-east-1-x",
            "us-east-1ab",
            "us-east-1A",
            "us-west-2a",
            "us-west-2-1",
            "use1-az1",
            "us-east-1-bos-1a",
            "2",
        ] {
            assert_eq!(to_aws(R, bad), None, "{bad}");
        }
        assert_eq!(to_aws("", "a"), None);
        assert_eq!(to_kompox(R, "use1-az1"), "use1-az1");
    }

    #[test]
    fn round_trip() {
        for n in 1..=26 {
            let k = format!("{R}-{n}");
            let aws = to_aws(R, &k).unwrap();
            assert_eq!(to_kompox(R, &aws), k);
        }
    }
}
