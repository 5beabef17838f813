//! The IAM actions the EKS driver needs, in one place (pure data).
//!
//! `docs/drivers.md` ("IAM policy") gives the least-privilege policy built
//! from this list, with the tag conditions AWS supports. The tests below
//! keep the three in step: every SDK call in the driver's sources is an
//! action listed here, every action listed here is allowed by the policy
//! in the docs, and the policy allows nothing that is not listed.

/// `(action, why the driver needs it)`.
pub const IAM_ACTIONS: &[(&str, &str)] = &[
    // Disks and snapshots (`ebs.rs`).
    ("ec2:DescribeAvailabilityZones", "check a disk's zone"),
    ("ec2:DescribeVolumes", "list disks (filtered by tags)"),
    ("ec2:DescribeSnapshots", "list snapshots (filtered by tags)"),
    ("ec2:CreateVolume", "create a disk, restore a snapshot"),
    ("ec2:CreateSnapshot", "snapshot a disk, clone a disk"),
    ("ec2:CopySnapshot", "copy a snapshot to another region"),
    (
        "ec2:CreateTags",
        "tag on create; move `kompox-disk-assigned`",
    ),
    (
        "ec2:DeleteTags",
        "drop `kompox-create-token` after a create",
    ),
    ("ec2:DeleteVolume", "delete a disk"),
    ("ec2:DeleteSnapshot", "delete a snapshot"),
    // Customer-managed KMS keys of encrypted volumes (EC2 calls KMS on
    // the caller's behalf: `kms:ViaService`).
    ("kms:CreateGrant", "attach an encrypted volume"),
    ("kms:DescribeKey", "create an encrypted volume"),
    (
        "kms:GenerateDataKeyWithoutPlaintext",
        "create an encrypted volume or snapshot copy",
    ),
    ("kms:Decrypt", "restore or copy an encrypted snapshot"),
    ("kms:ReEncryptFrom", "copy an encrypted snapshot"),
    ("kms:ReEncryptTo", "copy an encrypted snapshot"),
    // Node pools (`nodegroups.rs`).
    ("eks:ListNodegroups", "list node pools"),
    ("eks:DescribeNodegroup", "list and poll node pools"),
    ("eks:CreateNodegroup", "create a node pool"),
    ("eks:TagResource", "tag a node group on create"),
    ("eks:UpdateNodegroupConfig", "change labels and scaling"),
    ("eks:DescribeUpdate", "poll a node pool update"),
    ("eks:DeleteNodegroup", "delete a node pool"),
    ("iam:PassRole", "hand the node role to a new node group"),
    // Cluster (`cluster.rs`).
    ("eks:DescribeCluster", "cluster status, kubeconfig"),
];

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::IAM_ACTIONS;

    /// The driver's sources and the service their SDK calls go to.
    const SOURCES: &[(&str, &str, &str)] = &[
        ("ebs.rs", "ec2", include_str!("ebs.rs")),
        ("nodegroups.rs", "eks", include_str!("nodegroups.rs")),
        ("cluster.rs", "eks", include_str!("cluster.rs")),
        ("mod.rs", "ec2", include_str!("mod.rs")),
    ];

    const VERBS: &[&str] = &[
        "create_",
        "delete_",
        "describe_",
        "copy_",
        "modify_",
        "list_",
        "update_",
        "get_",
        "tag_",
        "untag_",
        "attach_",
        "detach_",
        "enable_",
        "disable_",
        "run_",
        "terminate_",
    ];

    /// What the driver names its SDK clients (`ec2.client`, `target.once`,
    /// `eks`).
    const CLIENTS: &[&str] = &["client", "once", "eks", "ec2", "sts"];

    /// SDK operations called in `src`: `<client>.snake_name()` with no
    /// arguments (the fluent builders start so; getters and the driver's
    /// own helpers are called on other receivers or with arguments).
    fn sdk_calls(src: &str) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let b = src.as_bytes();
        for (i, _) in src.match_indices('.') {
            let rest = &src[i + 1..];
            let ident: String = rest
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            let after = i + 1 + ident.len();
            let receiver: String = src[..i]
                .trim_end()
                .chars()
                .rev()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            if after + 2 <= b.len()
                && &b[after..after + 2] == b"()"
                && VERBS.iter().any(|v| ident.starts_with(v))
                && CLIENTS.contains(&receiver.as_str())
            {
                out.insert(ident);
            }
        }
        out
    }

    fn pascal(snake: &str) -> String {
        snake
            .split('_')
            .map(|w| {
                let mut c = w.chars();
                c.next()
                    .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                    .unwrap_or_default()
            })
            .collect()
    }

    /// The JSON policy of the EKS section of docs/drivers.md.
    fn documented_policy() -> serde_json::Value {
        let doc = include_str!("../../../docs/drivers.md");
        let section = doc
            .split("\n## ")
            .find(|s| s.starts_with("The EKS driver"))
            .expect("docs/drivers.md has a `## The EKS driver` section");
        let block = section
            .split("```json\n")
            .skip(1)
            .map(|b| b.split("\n```").next().unwrap_or_default())
            .find(|b| b.contains("\"2012-10-17\""))
            .expect("the EKS section has a ```json block with the IAM policy");
        serde_json::from_str(block).expect("the IAM policy in docs/drivers.md is valid JSON")
    }

    fn strings(v: &serde_json::Value) -> Vec<String> {
        match v {
            serde_json::Value::String(s) => vec![s.clone()],
            serde_json::Value::Array(a) => a.iter().flat_map(strings).collect(),
            _ => vec![],
        }
    }

    #[test]
    fn every_sdk_call_is_a_listed_action() {
        let listed: BTreeSet<&str> = IAM_ACTIONS.iter().map(|(a, _)| *a).collect();
        let mut seen = 0;
        for (file, service, src) in SOURCES {
            for call in sdk_calls(src) {
                let action = format!("{service}:{}", pascal(&call));
                assert!(
                    listed.contains(action.as_str()),
                    "{file} calls `.{call}()`: add `{action}` to IAM_ACTIONS and to the policy in docs/drivers.md"
                );
                seen += 1;
            }
        }
        assert!(seen >= 15, "the source scan found only {seen} SDK calls");
        assert_eq!(
            pascal("describe_availability_zones"),
            "DescribeAvailabilityZones"
        );
    }

    #[test]
    fn the_documented_policy_allows_exactly_the_listed_actions() {
        let policy = documented_policy();
        assert_eq!(policy["Version"], "2012-10-17");
        let statements = policy["Statement"].as_array().expect("Statement array");
        let mut allowed = BTreeSet::new();
        let mut sids = BTreeSet::new();
        for s in statements {
            assert_eq!(s["Effect"], "Allow", "{s}");
            assert!(!strings(&s["Resource"]).is_empty(), "no Resource: {s}");
            let sid = s["Sid"].as_str().expect("every statement has a Sid");
            assert!(sids.insert(sid.to_string()), "duplicate Sid {sid}");
            for a in strings(&s["Action"]) {
                assert!(!a.contains('*'), "no wildcard actions: {a}");
                allowed.insert(a);
            }
        }
        let listed: BTreeSet<String> = IAM_ACTIONS.iter().map(|(a, _)| a.to_string()).collect();
        let missing: Vec<_> = listed.difference(&allowed).collect();
        let extra: Vec<_> = allowed.difference(&listed).collect();
        assert!(missing.is_empty(), "policy lacks {missing:?}");
        assert!(extra.is_empty(), "policy allows unlisted {extra:?}");
    }

    /// The node role may be handed to EKS only: without the condition the
    /// same grant would let the caller pass it to any service (an EC2
    /// instance, a Lambda) and act with its rights.
    #[test]
    fn the_node_role_is_passed_to_eks_only() {
        let policy = documented_policy();
        let pass: Vec<&serde_json::Value> = policy["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| strings(&s["Action"]).iter().any(|a| a == "iam:PassRole"))
            .collect();
        assert_eq!(pass.len(), 1, "one PassRole statement: {pass:?}");
        let s = pass[0];
        assert_eq!(
            s["Condition"]["StringEquals"]["iam:PassedToService"], "eks.amazonaws.com",
            "{s}"
        );
        assert_eq!(strings(&s["Action"]), vec!["iam:PassRole".to_string()]);
        assert!(
            strings(&s["Resource"])
                .iter()
                .all(|r| r.contains(":role/") && !r.ends_with('*')),
            "PassRole names the node role, no wildcard: {s}"
        );
    }
}
