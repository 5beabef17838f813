//! EKS managed node groups as Kompox node pools (issue 6; reference §6.4,
//! whose AKS agent-pool rules this mirrors).
//!
//! Stage: provider I/O at the edges (`list`, `create`, `update`, `delete`,
//! `poll` call the EKS API), pure in the middle: the mapping between a
//! [`NodePool`] and an EKS node group ([`NodegroupView`], [`CreateRequest`]),
//! zone and subnet resolution, the mutable/immutable decision
//! ([`update_plan`]), the operation ids and the state an EKS status means.
//! The pure functions are unit-tested here; the I/O is tested against moto
//! in `tests/eks.rs`.
//!
//! Mapping (pool ↔ node group): name ↔ `nodegroupName`; instance type ↔
//! `instanceTypes[0]`; zones ↔ `subnets` (provider setting
//! `AWS_EKS_SUBNETS`, `zone=subnet-id` pairs) and, for reading them back,
//! the node-group tag `kompox-node-zones`; labels ↔ `labels` (plus
//! `kompox.dev/node-pool` and `kompox.dev/node-zone` added on create);
//! taints ↔ `taints`; min/max/count ↔ `scalingConfig` min/max/desired.
//! `NodePool` has no OS-disk size or priority, so these come from the
//! settings `AWS_EKS_NODE_DISK_SIZE_GB` and `AWS_EKS_NODE_CAPACITY_TYPE`
//! (ON_DEMAND | SPOT) on create; like the instance type, subnets and taints
//! they are fixed afterwards. Only labels and scaling change
//! (`UpdateNodegroupConfig`).

use std::collections::{BTreeMap, HashMap};

use aws_sdk_eks::types::{
    CapacityTypes, Nodegroup, NodegroupScalingConfig, Taint as EksTaint,
    TaintEffect as EksTaintEffect, UpdateLabelsPayload,
};

use super::aws_error::sdk_error;
use super::zones::{to_aws, to_kompox};
use crate::provider::driver::{
    DriverError, NODE_POOL_LABEL, NODE_ZONE_LABEL, NodePool, NodePoolUpdate, Operation,
    OperationKind, OperationState, Taint, TaintEffect,
};

/// Provider setting: `zone=subnet-id` pairs, comma or space separated; the
/// zone in Kompox (`us-east-1-1`) or AWS (`us-east-1a`) form.
pub(super) const SUBNETS_SETTING: &str = "AWS_EKS_SUBNETS";
/// Provider setting: the IAM role ARN of the nodes (required to create).
pub(super) const NODE_ROLE_SETTING: &str = "AWS_EKS_NODE_ROLE_ARN";
/// Provider setting: root volume size of new node groups, GiB (EKS default
/// 20).
pub(super) const NODE_DISK_SIZE_SETTING: &str = "AWS_EKS_NODE_DISK_SIZE_GB";
/// Provider setting: `ON_DEMAND` (default) or `SPOT` (also `regular`/`spot`,
/// the AKS priority words).
pub(super) const NODE_CAPACITY_TYPE_SETTING: &str = "AWS_EKS_NODE_CAPACITY_TYPE";

/// Node-group tag listing the pool's zones (Kompox form, comma separated):
/// EKS keeps subnets, not zones, and `list` has no subnet map to go back.
pub(super) const ZONES_TAG: &str = "kompox-node-zones";
/// Node-group tag naming the pool.
pub(super) const POOL_TAG: &str = "kompox-node-pool";
/// Ownership tag (the IAM policy in docs/drivers.md conditions update and
/// delete on it).
pub(super) const MANAGED_BY_TAG: (&str, &str) = ("managed-by", "kompox");

/// Prefix of the operation ids this module returns.
pub(super) const OP_PREFIX: &str = "eks-nodegroup";

// ---------------------------------------------------------------- pure part

/// An EKS node group reduced to what Kompox maps (the SDK's `Nodegroup`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(super) struct NodegroupView {
    pub name: String,
    /// `ACTIVE`, `CREATING`, `CREATE_FAILED`, `DEGRADED`, …
    pub status: String,
    pub instance_types: Vec<String>,
    pub min_size: Option<i32>,
    pub max_size: Option<i32>,
    pub desired_size: Option<i32>,
    pub labels: BTreeMap<String, String>,
    /// (key, value, EKS effect `NO_SCHEDULE` | `PREFER_NO_SCHEDULE` |
    /// `NO_EXECUTE`).
    pub taints: Vec<(String, String, String)>,
    pub tags: BTreeMap<String, String>,
    /// Health issues, `code: message [resources]`.
    pub health: Vec<String>,
}

impl NodegroupView {
    pub(super) fn from_sdk(ng: &Nodegroup) -> NodegroupView {
        let map = |m: Option<&HashMap<String, String>>| -> BTreeMap<String, String> {
            m.map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default()
        };
        let scaling = ng.scaling_config();
        NodegroupView {
            name: ng.nodegroup_name().unwrap_or_default().to_string(),
            status: ng
                .status()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default(),
            instance_types: ng.instance_types().to_vec(),
            min_size: scaling.and_then(|s| s.min_size()),
            max_size: scaling.and_then(|s| s.max_size()),
            desired_size: scaling.and_then(|s| s.desired_size()),
            labels: map(ng.labels()),
            taints: ng
                .taints()
                .iter()
                .map(|t| {
                    (
                        t.key().unwrap_or_default().to_string(),
                        t.value().unwrap_or_default().to_string(),
                        t.effect()
                            .map(|e| e.as_str().to_string())
                            .unwrap_or_default(),
                    )
                })
                .collect(),
            tags: map(ng.tags()),
            health: ng
                .health()
                .map(|h| {
                    h.issues()
                        .iter()
                        .map(|i| {
                            health_issue(
                                i.code().map(|c| c.as_str()).unwrap_or("unknown"),
                                i.message().unwrap_or_default(),
                                i.resource_ids(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default(),
        }
    }
}

/// One health issue as a line of an operation's failure message.
fn health_issue(code: &str, message: &str, resources: &[String]) -> String {
    if resources.is_empty() {
        format!("{code}: {message}")
    } else {
        format!("{code}: {message} [{}]", resources.join(", "))
    }
}

/// The node pool a node group is.
pub(super) fn to_node_pool(ng: &NodegroupView, region: &str) -> NodePool {
    let zones = match ng.tags.get(ZONES_TAG) {
        Some(z) => z
            .split(',')
            .map(str::trim)
            .filter(|z| !z.is_empty())
            .map(|z| to_kompox(region, z))
            .collect(),
        // A node group Kompox did not create: its zone label if any.
        None => ng
            .labels
            .get(NODE_ZONE_LABEL)
            .map(|z| vec![to_kompox(region, z)])
            .unwrap_or_default(),
    };
    let count = |n: Option<i32>| n.and_then(|n| u32::try_from(n).ok());
    NodePool {
        name: ng.name.clone(),
        zones,
        instance_type: ng.instance_types.first().cloned(),
        min_count: count(ng.min_size),
        max_count: count(ng.max_size),
        count: count(ng.desired_size),
        labels: ng.labels.clone(),
        taints: ng
            .taints
            .iter()
            .filter_map(|(key, value, effect)| {
                Some(Taint {
                    key: key.clone(),
                    value: value.clone(),
                    effect: taint_effect_from_eks(effect)?,
                })
            })
            .collect(),
    }
}

fn taint_effect_to_eks(e: TaintEffect) -> &'static str {
    match e {
        TaintEffect::NoSchedule => "NO_SCHEDULE",
        TaintEffect::PreferNoSchedule => "PREFER_NO_SCHEDULE",
        TaintEffect::NoExecute => "NO_EXECUTE",
    }
}

fn taint_effect_from_eks(e: &str) -> Option<TaintEffect> {
    match e {
        "NO_SCHEDULE" => Some(TaintEffect::NoSchedule),
        "PREFER_NO_SCHEDULE" => Some(TaintEffect::PreferNoSchedule),
        "NO_EXECUTE" => Some(TaintEffect::NoExecute),
        _ => None,
    }
}

/// `AWS_EKS_SUBNETS` parsed: AWS zone → subnet id.
fn parse_subnets(region: &str, value: &str) -> Result<BTreeMap<String, String>, DriverError> {
    let bad =
        |m: String| DriverError::InvalidInput(format!("provider setting {SUBNETS_SETTING}: {m}"));
    let mut out = BTreeMap::new();
    for pair in value
        .split([',', ' ', '\n', '\t'])
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        let (zone, subnet) = pair
            .split_once('=')
            .ok_or_else(|| bad(format!("`{pair}` is not `zone=subnet-id`")))?;
        let (zone, subnet) = (zone.trim(), subnet.trim());
        let aws = to_aws(region, zone).ok_or_else(|| {
            bad(format!(
                "`{zone}` is not a zone of region {region} (`{region}-1` or `{region}a`)"
            ))
        })?;
        if subnet.is_empty() {
            return Err(bad(format!("zone `{zone}` has an empty subnet id")));
        }
        if out.insert(aws, subnet.to_string()).is_some() {
            return Err(bad(format!("zone `{zone}` is listed twice")));
        }
    }
    Ok(out)
}

/// What `CreateNodegroup` is sent (the pool plus settings, resolved).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct CreateRequest {
    pub name: String,
    pub node_role: String,
    pub subnets: Vec<String>,
    pub instance_type: Option<String>,
    pub disk_size: Option<i32>,
    pub capacity_type: Option<&'static str>,
    /// (min, max, desired); `None` = the EKS default.
    pub scaling: Option<(i32, i32, i32)>,
    pub labels: BTreeMap<String, String>,
    pub taints: Vec<(String, String, &'static str)>,
    pub tags: BTreeMap<String, String>,
}

/// The create request for `pool`, or `InvalidInput` naming the pool or the
/// setting at fault. Zones without a subnet in `AWS_EKS_SUBNETS` are refused;
/// a pool without zones gets every configured subnet (a multi-zone group,
/// listed back without zones).
pub(super) fn create_request(
    pool: &NodePool,
    region: &str,
    settings: &BTreeMap<String, String>,
) -> Result<CreateRequest, DriverError> {
    pool.validate()?;
    let setting = |k: &str| settings.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
    let node_role = setting(NODE_ROLE_SETTING).ok_or_else(|| {
        DriverError::InvalidInput(format!(
            "creating node pool `{}` needs the provider setting {NODE_ROLE_SETTING} (the IAM role ARN of the nodes)",
            pool.name
        ))
    })?;
    let subnet_map = parse_subnets(region, setting(SUBNETS_SETTING).unwrap_or_default())?;
    if subnet_map.is_empty() {
        return Err(DriverError::InvalidInput(format!(
            "creating node pool `{}` needs the provider setting {SUBNETS_SETTING} (`zone=subnet-id` pairs)",
            pool.name
        )));
    }
    let mut zones = Vec::new();
    let mut subnets = Vec::new();
    for z in &pool.zones {
        let aws = to_aws(region, z).ok_or_else(|| {
            DriverError::InvalidInput(format!(
                "node pool `{}`: `{z}` is not a zone of region {region} (`{region}-1` or `{region}a`)",
                pool.name
            ))
        })?;
        let subnet = subnet_map.get(&aws).ok_or_else(|| {
            DriverError::InvalidInput(format!(
                "node pool `{}`: zone `{z}` has no subnet in provider setting {SUBNETS_SETTING} (zones with one: {})",
                pool.name,
                subnet_map
                    .keys()
                    .map(|a| to_kompox(region, a))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
        let kz = to_kompox(region, z);
        if !zones.contains(&kz) {
            zones.push(kz);
            subnets.push(subnet.clone());
        }
    }
    if pool.zones.is_empty() {
        subnets = subnet_map.values().cloned().collect();
    }
    let disk_size = match setting(NODE_DISK_SIZE_SETTING) {
        None => None,
        Some(v) => Some(v.parse::<i32>().ok().filter(|n| *n > 0).ok_or_else(|| {
            DriverError::InvalidInput(format!(
                "provider setting {NODE_DISK_SIZE_SETTING}: `{v}` is not a positive number of GiB"
            ))
        })?),
    };
    let capacity_type = match setting(NODE_CAPACITY_TYPE_SETTING).map(str::to_ascii_uppercase) {
        None => None,
        Some(v) if v == "ON_DEMAND" || v == "REGULAR" => Some("ON_DEMAND"),
        Some(v) if v == "SPOT" => Some("SPOT"),
        Some(v) => {
            return Err(DriverError::InvalidInput(format!(
                "provider setting {NODE_CAPACITY_TYPE_SETTING}: `{v}` is not ON_DEMAND or SPOT"
            )));
        }
    };
    let to_i32 = |n: u32, what: &str| {
        i32::try_from(n).map_err(|_| {
            DriverError::InvalidInput(format!(
                "node pool `{}`: {what} {n} is too large",
                pool.name
            ))
        })
    };
    let scaling = match (pool.min_count, pool.max_count, pool.count) {
        (None, None, None) => None,
        (min, max, count) => {
            let desired = count.or(min).or(max).unwrap_or_default();
            let min = min.unwrap_or(desired);
            let max = max.unwrap_or(desired.max(min));
            Some((
                to_i32(min, "min_count")?,
                to_i32(max, "max_count")?,
                to_i32(desired.clamp(min, max.max(min)), "count")?,
            ))
        }
    };
    let mut labels = pool.labels.clone();
    labels.insert(NODE_POOL_LABEL.to_string(), pool.name.clone());
    if let Some(first) = zones.first() {
        labels.insert(NODE_ZONE_LABEL.to_string(), first.clone());
    }
    let mut tags = BTreeMap::from([
        (MANAGED_BY_TAG.0.to_string(), MANAGED_BY_TAG.1.to_string()),
        (POOL_TAG.to_string(), pool.name.clone()),
    ]);
    if !zones.is_empty() {
        tags.insert(ZONES_TAG.to_string(), zones.join(","));
    }
    Ok(CreateRequest {
        name: pool.name.clone(),
        node_role: node_role.to_string(),
        subnets,
        instance_type: pool.instance_type.clone(),
        disk_size,
        capacity_type,
        scaling,
        labels,
        taints: pool
            .taints
            .iter()
            .map(|t| {
                (
                    t.key.clone(),
                    t.value.clone(),
                    taint_effect_to_eks(t.effect),
                )
            })
            .collect(),
        tags,
    })
}

/// What `UpdateNodegroupConfig` is sent; empty = nothing to change.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(super) struct UpdatePlan {
    pub add_or_update_labels: BTreeMap<String, String>,
    pub remove_labels: Vec<String>,
    /// (min, max, desired), all three as EKS wants them.
    pub scaling: Option<(i32, i32, i32)>,
}

impl UpdatePlan {
    pub(super) fn is_empty(&self) -> bool {
        self.add_or_update_labels.is_empty()
            && self.remove_labels.is_empty()
            && self.scaling.is_none()
    }
}

/// The change that applies `update` to the node group `current`. Labels are
/// replaced as a set, except `kompox.dev/node-pool` and
/// `kompox.dev/node-zone`, which keep the values they got on create (pod
/// placement relies on them). Counts left `None` keep their current value;
/// a desired count left `None` is clamped into the new bounds; an explicit
/// one outside them is `InvalidInput`.
pub(super) fn update_plan(
    current: &NodegroupView,
    update: &NodePoolUpdate,
) -> Result<UpdatePlan, DriverError> {
    let mut plan = UpdatePlan::default();
    if let Some(wanted) = &update.labels {
        let mut wanted = wanted.clone();
        for key in [NODE_POOL_LABEL, NODE_ZONE_LABEL] {
            match current.labels.get(key) {
                Some(v) => {
                    wanted.insert(key.to_string(), v.clone());
                }
                None => {
                    wanted.remove(key);
                }
            }
        }
        plan.add_or_update_labels = wanted
            .iter()
            .filter(|(k, v)| current.labels.get(*k) != Some(*v))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        plan.remove_labels = current
            .labels
            .keys()
            .filter(|k| !wanted.contains_key(*k))
            .cloned()
            .collect();
    }
    if update.min_count.is_some() || update.max_count.is_some() || update.count.is_some() {
        let bad =
            |m: String| DriverError::InvalidInput(format!("node pool `{}`: {m}", update.name));
        let as_i32 = |n: u32| i32::try_from(n).map_err(|_| bad(format!("count {n} is too large")));
        let min = match update.min_count {
            Some(n) => as_i32(n)?,
            None => current.min_size.unwrap_or(0),
        };
        let max = match update.max_count {
            Some(n) => as_i32(n)?,
            None => current.max_size.unwrap_or(min.max(1)),
        };
        if min > max {
            return Err(bad(format!("min_count {min} is above max_count {max}")));
        }
        let desired = match update.count {
            Some(n) => {
                let n = as_i32(n)?;
                if n < min || n > max {
                    return Err(bad(format!(
                        "count {n} is outside min_count {min} ..= max_count {max}"
                    )));
                }
                n
            }
            None => current.desired_size.unwrap_or(min).clamp(min, max),
        };
        let next = (min, max, desired);
        if Some(next)
            != current
                .min_size
                .zip(current.max_size)
                .zip(current.desired_size)
                .map(|((a, b), c)| (a, b, c))
        {
            plan.scaling = Some(next);
        }
    }
    Ok(plan)
}

/// What an operation id says to poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Step {
    Create,
    Update(String),
    Delete,
}

/// `eks-nodegroup:<cluster>:<nodegroup>:<create|update:<updateId>|delete>`
/// (EKS cluster and node-group names cannot contain `:`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct OpId {
    pub cluster: String,
    pub nodegroup: String,
    pub step: Step,
}

impl OpId {
    pub(super) fn render(&self) -> String {
        let step = match &self.step {
            Step::Create => "create".to_string(),
            Step::Update(id) => format!("update:{id}"),
            Step::Delete => "delete".to_string(),
        };
        format!("{OP_PREFIX}:{}:{}:{step}", self.cluster, self.nodegroup)
    }

    pub(super) fn parse(id: &str) -> Option<OpId> {
        let mut parts = id.splitn(4, ':');
        if parts.next()? != OP_PREFIX {
            return None;
        }
        let cluster = parts.next().filter(|s| !s.is_empty())?.to_string();
        let nodegroup = parts.next().filter(|s| !s.is_empty())?.to_string();
        let step = match parts.next()? {
            "create" => Step::Create,
            "delete" => Step::Delete,
            s => Step::Update(
                s.strip_prefix("update:")
                    .filter(|u| !u.is_empty())?
                    .to_string(),
            ),
        };
        Some(OpId {
            cluster,
            nodegroup,
            step,
        })
    }

    fn kind(&self) -> OperationKind {
        match self.step {
            Step::Create => OperationKind::CreateNodePool,
            Step::Update(_) => OperationKind::UpdateNodePool,
            Step::Delete => OperationKind::DeleteNodePool,
        }
    }

    fn operation(&self, state: OperationState) -> Operation {
        Operation {
            id: self.render(),
            kind: self.kind(),
            target: self.nodegroup.clone(),
            state,
        }
    }
}

fn failed(what: &str, status: &str, details: &[String]) -> OperationState {
    if details.is_empty() {
        OperationState::Failed(format!("{what}: node group is {status}"))
    } else {
        OperationState::Failed(format!(
            "{what}: node group is {status}: {}",
            details.join("; ")
        ))
    }
}

/// The state of a create, from the node group's status (`None` = the node
/// group is gone).
pub(super) fn create_state(status: Option<&str>, health: &[String]) -> OperationState {
    match status {
        None => OperationState::Failed(
            "create: the node group was deleted before it became active".into(),
        ),
        // Created; UPDATING = someone changes it already.
        Some("ACTIVE" | "UPDATING") => OperationState::Succeeded,
        Some(s @ ("CREATE_FAILED" | "DEGRADED" | "DELETING" | "DELETE_FAILED")) => {
            failed("create", s, health)
        }
        Some(_) => OperationState::Running,
    }
}

/// The state of a delete, from the node group's status (`None` = gone).
pub(super) fn delete_state(status: Option<&str>, health: &[String]) -> OperationState {
    match status {
        None => OperationState::Succeeded,
        Some(s @ "DELETE_FAILED") => failed("delete", s, health),
        Some(_) => OperationState::Running,
    }
}

/// The state of an update, from `DescribeUpdate`'s status and errors.
pub(super) fn update_state(status: &str, errors: &[String]) -> OperationState {
    match status {
        "Successful" => OperationState::Succeeded,
        "Failed" | "Cancelled" => OperationState::Failed(if errors.is_empty() {
            format!("update {}", status.to_ascii_lowercase())
        } else {
            format!(
                "update {}: {}",
                status.to_ascii_lowercase(),
                errors.join("; ")
            )
        }),
        _ => OperationState::Running,
    }
}

// ------------------------------------------------------------------ I/O part

/// All managed node groups of `cluster`, as node pools sorted by name.
pub(super) async fn list(
    eks: &aws_sdk_eks::Client,
    cluster: &str,
    region: &str,
) -> Result<Vec<NodePool>, DriverError> {
    let mut names = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let page = eks
            .list_nodegroups()
            .cluster_name(cluster)
            .set_next_token(next.take())
            .send()
            .await
            .map_err(|e| sdk_error(&format!("list node groups of EKS cluster `{cluster}`"), e))?;
        names.extend(page.nodegroups().iter().cloned());
        match page.next_token() {
            Some(t) if !t.is_empty() => next = Some(t.to_string()),
            _ => break,
        }
    }
    let mut pools = Vec::new();
    for name in names {
        // Deleted between the list and the describe: not a pool any more.
        if let Some(ng) = describe(eks, cluster, &name).await? {
            pools.push(to_node_pool(&ng, region));
        }
    }
    pools.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(pools)
}

/// Starts creating `pool` as a managed node group; a taken name → `Conflict`.
pub(super) async fn create(
    eks: &aws_sdk_eks::Client,
    cluster: &str,
    region: &str,
    settings: &BTreeMap<String, String>,
    pool: NodePool,
) -> Result<Operation, DriverError> {
    let req = create_request(&pool, region, settings)?;
    let mut call = eks
        .create_nodegroup()
        .cluster_name(cluster)
        .nodegroup_name(&req.name)
        .node_role(&req.node_role)
        .set_subnets(Some(req.subnets.clone()))
        .set_labels(Some(req.labels.clone().into_iter().collect()))
        .set_tags(Some(req.tags.clone().into_iter().collect()));
    if let Some(t) = &req.instance_type {
        call = call.instance_types(t);
    }
    if let Some(d) = req.disk_size {
        call = call.disk_size(d);
    }
    if let Some(c) = req.capacity_type {
        call = call.capacity_type(CapacityTypes::from(c));
    }
    if let Some((min, max, desired)) = req.scaling {
        call = call.scaling_config(
            NodegroupScalingConfig::builder()
                .min_size(min)
                .max_size(max)
                .desired_size(desired)
                .build(),
        );
    }
    for (key, value, effect) in &req.taints {
        call = call.taints(
            EksTaint::builder()
                .key(key)
                .value(value)
                .effect(EksTaintEffect::from(*effect))
                .build(),
        );
    }
    let out = call.send().await.map_err(|e| {
        match sdk_error(
            &format!(
                "create node group `{}` in EKS cluster `{cluster}`",
                req.name
            ),
            e,
        ) {
            DriverError::Conflict(m) if m.contains("ResourceInUseException") => {
                DriverError::Conflict(format!(
                    "node pool `{}` already exists in EKS cluster `{cluster}` ({m})",
                    req.name
                ))
            }
            other => other,
        }
    })?;
    let view = out.nodegroup().map(NodegroupView::from_sdk);
    let op = OpId {
        cluster: cluster.to_string(),
        nodegroup: req.name.clone(),
        step: Step::Create,
    };
    // Real EKS answers CREATING; an emulator may answer ACTIVE at once.
    let state = match &view {
        Some(v) if !v.status.is_empty() => create_state(Some(&v.status), &v.health),
        _ => OperationState::Running,
    };
    Ok(op.operation(state))
}

/// Starts changing labels and scaling of a node group; a missing one →
/// `NotFound`; nothing to change → an operation already `Succeeded`.
pub(super) async fn update(
    eks: &aws_sdk_eks::Client,
    cluster: &str,
    region: &str,
    update: NodePoolUpdate,
) -> Result<Operation, DriverError> {
    let _ = region;
    if update.name.is_empty() {
        return Err(DriverError::InvalidInput(
            "node pool update without a name".into(),
        ));
    }
    let current = describe(eks, cluster, &update.name).await?.ok_or_else(|| {
        DriverError::NotFound(format!(
            "node pool `{}` does not exist in EKS cluster `{cluster}`",
            update.name
        ))
    })?;
    let plan = update_plan(&current, &update)?;
    if plan.is_empty() {
        return Ok(Operation::completed(
            OperationKind::UpdateNodePool,
            &update.name,
        ));
    }
    let mut call = eks
        .update_nodegroup_config()
        .cluster_name(cluster)
        .nodegroup_name(&update.name);
    if !plan.add_or_update_labels.is_empty() || !plan.remove_labels.is_empty() {
        let mut labels = UpdateLabelsPayload::builder();
        if !plan.add_or_update_labels.is_empty() {
            labels = labels.set_add_or_update_labels(Some(
                plan.add_or_update_labels.clone().into_iter().collect(),
            ));
        }
        if !plan.remove_labels.is_empty() {
            labels = labels.set_remove_labels(Some(plan.remove_labels.clone()));
        }
        call = call.labels(labels.build());
    }
    if let Some((min, max, desired)) = plan.scaling {
        call = call.scaling_config(
            NodegroupScalingConfig::builder()
                .min_size(min)
                .max_size(max)
                .desired_size(desired)
                .build(),
        );
    }
    let out = call.send().await.map_err(|e| {
        sdk_error(
            &format!(
                "update node group `{}` in EKS cluster `{cluster}`",
                update.name
            ),
            e,
        )
    })?;
    let upd = out.update().ok_or_else(|| {
        DriverError::Io(format!(
            "update node group `{}`: EKS answered without an update",
            update.name
        ))
    })?;
    let id = upd.id().unwrap_or_default();
    if id.is_empty() {
        return Err(DriverError::Io(format!(
            "update node group `{}`: EKS answered an update without an id",
            update.name
        )));
    }
    let op = OpId {
        cluster: cluster.to_string(),
        nodegroup: update.name.clone(),
        step: Step::Update(id.to_string()),
    };
    let state = update_state(
        upd.status().map(|s| s.as_str()).unwrap_or("InProgress"),
        &update_errors(upd),
    );
    Ok(op.operation(state))
}

/// Starts deleting a node group; a missing one is an operation already
/// `Succeeded`.
pub(super) async fn delete(
    eks: &aws_sdk_eks::Client,
    cluster: &str,
    name: &str,
) -> Result<Operation, DriverError> {
    match eks
        .delete_nodegroup()
        .cluster_name(cluster)
        .nodegroup_name(name)
        .send()
        .await
    {
        Ok(_) => Ok(OpId {
            cluster: cluster.to_string(),
            nodegroup: name.to_string(),
            step: Step::Delete,
        }
        .operation(OperationState::Running)),
        Err(e) => match sdk_error(
            &format!("delete node group `{name}` in EKS cluster `{cluster}`"),
            e,
        ) {
            DriverError::NotFound(_) => {
                Ok(Operation::completed(OperationKind::DeleteNodePool, name))
            }
            other => Err(other),
        },
    }
}

/// The current state of an operation `create`/`update`/`delete` returned
/// (also answers `sync:` ids of operations that completed at once).
pub(super) async fn poll(eks: &aws_sdk_eks::Client, id: &str) -> Result<Operation, DriverError> {
    if let Some(done) = Operation::parse_completed(id) {
        return Ok(done);
    }
    let op = OpId::parse(id).ok_or_else(|| {
        DriverError::NotFound(format!(
            "operation `{id}` is not an EKS node-group operation (`{OP_PREFIX}:<cluster>:<nodegroup>:<step>`)"
        ))
    })?;
    let state = match &op.step {
        Step::Create => {
            let ng = describe(eks, &op.cluster, &op.nodegroup).await?;
            create_state(
                ng.as_ref().map(|n| n.status.as_str()),
                ng.as_ref().map(|n| n.health.as_slice()).unwrap_or_default(),
            )
        }
        Step::Delete => {
            let ng = describe(eks, &op.cluster, &op.nodegroup).await?;
            delete_state(
                ng.as_ref().map(|n| n.status.as_str()),
                ng.as_ref().map(|n| n.health.as_slice()).unwrap_or_default(),
            )
        }
        Step::Update(update_id) => {
            let out = eks
                .describe_update()
                .name(&op.cluster)
                .nodegroup_name(&op.nodegroup)
                .update_id(update_id)
                .send()
                .await
                .map_err(|e| {
                    sdk_error(
                        &format!(
                            "describe update `{update_id}` of node group `{}` in EKS cluster `{}`",
                            op.nodegroup, op.cluster
                        ),
                        e,
                    )
                })?;
            match out.update() {
                Some(u) => update_state(
                    u.status().map(|s| s.as_str()).unwrap_or("InProgress"),
                    &update_errors(u),
                ),
                None => OperationState::Running,
            }
        }
    };
    Ok(op.operation(state))
}

fn update_errors(u: &aws_sdk_eks::types::Update) -> Vec<String> {
    u.errors()
        .iter()
        .map(|e| {
            health_issue(
                e.error_code().map(|c| c.as_str()).unwrap_or("unknown"),
                e.error_message().unwrap_or_default(),
                e.resource_ids(),
            )
        })
        .collect()
}

/// A node group, or `None` if it (or its cluster) does not exist.
async fn describe(
    eks: &aws_sdk_eks::Client,
    cluster: &str,
    name: &str,
) -> Result<Option<NodegroupView>, DriverError> {
    match eks
        .describe_nodegroup()
        .cluster_name(cluster)
        .nodegroup_name(name)
        .send()
        .await
    {
        Ok(out) => Ok(out.nodegroup().map(NodegroupView::from_sdk)),
        Err(e) => match sdk_error(
            &format!("describe node group `{name}` in EKS cluster `{cluster}`"),
            e,
        ) {
            DriverError::NotFound(_) => Ok(None),
            other => Err(other),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const R: &str = "us-east-1";

    fn settings() -> BTreeMap<String, String> {
        BTreeMap::from([
            (
                SUBNETS_SETTING.to_string(),
                "us-east-1-1=subnet-a, us-east-1b=subnet-b us-east-1-3=subnet-c".to_string(),
            ),
            (
                NODE_ROLE_SETTING.to_string(),
                "arn:aws:iam::123456789012:role/nodes".to_string(),
            ),
        ])
    }

    fn pool() -> NodePool {
        NodePool {
            name: "user".into(),
            zones: vec!["us-east-1-2".into(), "us-east-1a".into()],
            instance_type: Some("m6i.large".into()),
            min_count: Some(1),
            max_count: Some(4),
            count: None,
            labels: BTreeMap::from([
                ("team".to_string(), "a".to_string()),
                (NODE_POOL_LABEL.to_string(), "spoofed".to_string()),
            ]),
            taints: vec![Taint {
                key: "gpu".into(),
                value: "true".into(),
                effect: TaintEffect::NoSchedule,
            }],
        }
    }

    #[test]
    fn create_request_maps_the_pool() {
        let mut s = settings();
        s.insert(NODE_DISK_SIZE_SETTING.into(), "50".into());
        s.insert(NODE_CAPACITY_TYPE_SETTING.into(), "spot".into());
        let req = create_request(&pool(), R, &s).unwrap();
        assert_eq!(
            req.subnets,
            ["subnet-b", "subnet-a"],
            "in the pool's zone order"
        );
        assert_eq!(req.instance_type.as_deref(), Some("m6i.large"));
        assert_eq!(req.disk_size, Some(50));
        assert_eq!(req.capacity_type, Some("SPOT"));
        assert_eq!(req.scaling, Some((1, 4, 1)));
        // Kompox labels win over the user's, the zone label is Kompox form.
        assert_eq!(req.labels[NODE_POOL_LABEL], "user");
        assert_eq!(req.labels[NODE_ZONE_LABEL], "us-east-1-2");
        assert_eq!(req.labels["team"], "a");
        assert_eq!(req.tags[ZONES_TAG], "us-east-1-2,us-east-1-1");
        assert_eq!(req.tags["managed-by"], "kompox");
        assert_eq!(req.taints, [("gpu".into(), "true".into(), "NO_SCHEDULE")]);
    }

    #[test]
    fn create_request_scaling_and_defaults() {
        let mut p = pool();
        p.zones.clear();
        (p.min_count, p.max_count, p.count) = (None, None, Some(3));
        let req = create_request(&p, R, &settings()).unwrap();
        assert_eq!(req.scaling, Some((3, 3, 3)));
        assert_eq!(
            req.subnets,
            ["subnet-a", "subnet-b", "subnet-c"],
            "no zones: every subnet"
        );
        assert!(!req.labels.contains_key(NODE_ZONE_LABEL));
        assert!(!req.tags.contains_key(ZONES_TAG));
        assert_eq!((req.disk_size, req.capacity_type), (None, None));
        (p.min_count, p.max_count, p.count) = (None, None, None);
        assert_eq!(create_request(&p, R, &settings()).unwrap().scaling, None);
        (p.min_count, p.max_count, p.count) = (Some(2), Some(5), Some(4));
        assert_eq!(
            create_request(&p, R, &settings()).unwrap().scaling,
            Some((2, 5, 4))
        );
    }

    #[test]
    fn create_request_refuses_bad_input_naming_the_setting() {
        let err = |p: &NodePool, s: &BTreeMap<String, String>| match create_request(p, R, s) {
            Err(DriverError::InvalidInput(m)) => m,
            other => panic!("{other:?}"),
        };
        let mut p = pool();
        p.zones = vec!["us-east-1-4".into()];
        let m = err(&p, &settings());
        assert!(
            m.contains("us-east-1-4") && m.contains(SUBNETS_SETTING),
            "{m}"
        );
        p.zones = vec!["eu-west-1-1".into()];
        assert!(err(&p, &settings()).contains("not a zone of region"));
        let mut s = settings();
        s.remove(NODE_ROLE_SETTING);
        assert!(err(&pool(), &s).contains(NODE_ROLE_SETTING));
        let mut s = settings();
        s.remove(SUBNETS_SETTING);
        assert!(err(&pool(), &s).contains(SUBNETS_SETTING));
        for bad in [
            "us-east-1-1",
            "us-east-1-1=",
            "mars-1=subnet-x",
            "us-east-1a=s1,us-east-1-1=s2",
        ] {
            let mut s = settings();
            s.insert(SUBNETS_SETTING.into(), bad.into());
            assert!(err(&pool(), &s).contains(SUBNETS_SETTING), "{bad}");
        }
        let mut s = settings();
        s.insert(NODE_CAPACITY_TYPE_SETTING.into(), "cheap".into());
        assert!(err(&pool(), &s).contains(NODE_CAPACITY_TYPE_SETTING));
        let mut s = settings();
        s.insert(NODE_DISK_SIZE_SETTING.into(), "0".into());
        assert!(err(&pool(), &s).contains(NODE_DISK_SIZE_SETTING));
        let mut p = pool();
        p.name = "Bad_Name".into();
        assert!(err(&p, &settings()).contains("DNS-1123"));
    }

    fn view() -> NodegroupView {
        NodegroupView {
            name: "user".into(),
            status: "ACTIVE".into(),
            instance_types: vec!["m6i.large".into()],
            min_size: Some(1),
            max_size: Some(4),
            desired_size: Some(2),
            labels: BTreeMap::from([
                ("team".to_string(), "a".to_string()),
                (NODE_POOL_LABEL.to_string(), "user".to_string()),
                (NODE_ZONE_LABEL.to_string(), "us-east-1-2".to_string()),
            ]),
            taints: vec![("gpu".into(), "true".into(), "NO_SCHEDULE".into())],
            tags: BTreeMap::from([(ZONES_TAG.to_string(), "us-east-1-2,us-east-1a".to_string())]),
            health: vec![],
        }
    }

    #[test]
    fn node_groups_list_as_pools() {
        let p = to_node_pool(&view(), R);
        assert_eq!(p.zones, ["us-east-1-2", "us-east-1-1"]);
        assert_eq!(p.instance_type.as_deref(), Some("m6i.large"));
        assert_eq!(
            (p.min_count, p.max_count, p.count),
            (Some(1), Some(4), Some(2))
        );
        assert_eq!(p.taints[0].effect, TaintEffect::NoSchedule);
        assert_eq!(p.labels[NODE_POOL_LABEL], "user");
        // Not made by Kompox: zones from the zone label, or none.
        let mut v = view();
        v.tags.clear();
        assert_eq!(to_node_pool(&v, R).zones, ["us-east-1-2"]);
        v.labels.clear();
        assert!(to_node_pool(&v, R).zones.is_empty());
        // A listed pool compared with itself needs no update.
        let listed = to_node_pool(&view(), R);
        assert!(
            NodePoolUpdate::between(&listed, &listed)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn updates_change_labels_and_scaling_only() {
        let u = NodePoolUpdate {
            name: "user".into(),
            labels: Some(BTreeMap::from([("tier".to_string(), "web".to_string())])),
            ..Default::default()
        };
        let plan = update_plan(&view(), &u).unwrap();
        assert_eq!(
            plan.add_or_update_labels,
            BTreeMap::from([("tier".to_string(), "web".to_string())])
        );
        assert_eq!(plan.remove_labels, ["team"], "kompox.dev labels are kept");
        assert_eq!(plan.scaling, None);

        let u = NodePoolUpdate {
            name: "user".into(),
            max_count: Some(2),
            ..Default::default()
        };
        assert_eq!(update_plan(&view(), &u).unwrap().scaling, Some((1, 2, 2)));
        let u = NodePoolUpdate {
            name: "user".into(),
            min_count: Some(3),
            ..Default::default()
        };
        assert_eq!(
            update_plan(&view(), &u).unwrap().scaling,
            Some((3, 4, 3)),
            "desired clamped up"
        );
        let u = NodePoolUpdate {
            name: "user".into(),
            count: Some(2),
            ..Default::default()
        };
        assert!(
            update_plan(&view(), &u).unwrap().is_empty(),
            "same counts: nothing to send"
        );
        for bad in [
            NodePoolUpdate {
                name: "user".into(),
                count: Some(9),
                ..Default::default()
            },
            NodePoolUpdate {
                name: "user".into(),
                min_count: Some(5),
                ..Default::default()
            },
        ] {
            assert!(
                matches!(
                    update_plan(&view(), &bad),
                    Err(DriverError::InvalidInput(_))
                ),
                "{bad:?}"
            );
        }
        // An instance-type change never becomes an update.
        let current = to_node_pool(&view(), R);
        let mut desired = current.clone();
        desired.instance_type = Some("m6i.xlarge".into());
        assert!(
            matches!(NodePoolUpdate::between(&current, &desired), Err(DriverError::InvalidInput(m)) if m.contains("instance_type"))
        );
    }

    #[test]
    fn operation_ids_round_trip() {
        for step in [Step::Create, Step::Delete, Step::Update("5f3c-a1".into())] {
            let id = OpId {
                cluster: "prod_1".into(),
                nodegroup: "user".into(),
                step,
            };
            assert_eq!(OpId::parse(&id.render()), Some(id.clone()));
        }
        assert_eq!(
            OpId {
                cluster: "c".into(),
                nodegroup: "n".into(),
                step: Step::Update("u".into())
            }
            .render(),
            "eks-nodegroup:c:n:update:u"
        );
        for bad in [
            "eks-nodegroup:c:n",
            "eks-nodegroup:c:n:resize",
            "eks-nodegroup:c:n:update:",
            "eks-nodegroup::n:create",
            "sync:x:y",
        ] {
            assert_eq!(OpId::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn statuses_map_to_operation_states() {
        let health = vec!["Ec2SubnetInvalidConfiguration: no route [subnet-a]".to_string()];
        assert_eq!(create_state(Some("CREATING"), &[]), OperationState::Running);
        assert_eq!(create_state(Some("ACTIVE"), &[]), OperationState::Succeeded);
        match create_state(Some("CREATE_FAILED"), &health) {
            OperationState::Failed(m) => assert!(
                m.contains("Ec2SubnetInvalidConfiguration") && m.contains("CREATE_FAILED"),
                "{m}"
            ),
            s => panic!("{s:?}"),
        }
        assert!(matches!(
            create_state(Some("DEGRADED"), &health),
            OperationState::Failed(_)
        ));
        assert!(matches!(create_state(None, &[]), OperationState::Failed(_)));
        assert_eq!(delete_state(Some("DELETING"), &[]), OperationState::Running);
        assert_eq!(delete_state(None, &[]), OperationState::Succeeded);
        assert!(matches!(
            delete_state(Some("DELETE_FAILED"), &health),
            OperationState::Failed(_)
        ));
        assert_eq!(update_state("InProgress", &[]), OperationState::Running);
        assert_eq!(update_state("Successful", &[]), OperationState::Succeeded);
        assert_eq!(
            update_state("Failed", &["NodeCreationFailure: x".into()]),
            OperationState::Failed("update failed: NodeCreationFailure: x".into())
        );
        assert_eq!(health_issue("C", "m", &[]), "C: m");
    }
}
