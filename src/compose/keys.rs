//! What happens to each compose service key (DECISIONS 6: mapped, ignored
//! with a warning, or rejected with an error — never silently dropped).
//!
//! We keep this table by hand rather than validating against the compose
//! JSON schema: the per-key conversion report needs a decision and a note
//! for every key anyway, and the table doubles as that report's source.

use crate::model::compose::KeyStatus;

/// Classification of a service key and the note shown in the report.
pub fn service_key(key: &str) -> Option<(KeyStatus, &'static str)> {
    use KeyStatus::*;
    Some(match key {
        "image" => (Mapped, "container image"),
        "command" => (Mapped, "container args"),
        "entrypoint" => (Mapped, "container command"),
        "environment" => (Mapped, "container env (sorted)"),
        "env_file" => (Mapped, "Secret <app>-app-<service>-base via envFrom"),
        "ports" => (Mapped, "containerPort + Service ports"),
        "expose" => (
            Ignored,
            "containers of one pod share its network; ports are reachable without expose",
        ),
        "volumes" => (Mapped, "PVC sub-path mounts / memory emptyDir"),
        "configs" => (Mapped, "ConfigMap single-file mounts"),
        "secrets" => (Mapped, "Secret single-file mounts"),
        "healthcheck" => (Mapped, "readiness and startup probes"),
        "user" => (Mapped, "securityContext.runAsUser/runAsGroup"),
        "working_dir" => (Mapped, "container workingDir"),
        "cap_add" => (Mapped, "securityContext.capabilities.add"),
        "cap_drop" => (Mapped, "securityContext.capabilities.drop"),
        "privileged" => (Mapped, "securityContext.privileged"),
        "read_only" => (Mapped, "securityContext.readOnlyRootFilesystem"),
        "tmpfs" => (Mapped, "memory emptyDir volumes"),
        "extra_hosts" => (Mapped, "pod hostAliases (merged by IP)"),
        "stop_grace_period" => (
            Mapped,
            "pod terminationGracePeriodSeconds (largest of the services)",
        ),
        "deploy" => (
            Mapped,
            "deploy.resources → requests/limits; other deploy keys ignored",
        ),
        "cpus" => (Mapped, "cpu limit"),
        "mem_limit" => (Mapped, "memory limit"),
        "mem_reservation" => (Mapped, "memory request"),
        "depends_on" => (
            Mapped,
            "start ordering (service_healthy: warning, all containers start together)",
        ),
        "labels" => (Ignored, "container labels have no Kubernetes equivalent"),
        "annotations" => (Mapped, "pod template annotations"),
        "profiles" => (
            Mapped,
            "services with profiles are not deployed (no profile is active)",
        ),
        "stdin_open" => (Mapped, "container stdin"),
        "tty" => (Mapped, "container tty"),
        "pull_policy" => (Mapped, "container imagePullPolicy"),
        "restart" => (
            Ignored,
            "Deployment pods always restart (restartPolicy Always)",
        ),
        "container_name" => (Ignored, "container name is the service name"),
        "hostname" => (Ignored, "all services share one pod"),
        "domainname" => (Ignored, "all services share one pod"),
        "networks" => (
            Ignored,
            "all services share one pod network; use KOM networkPolicy",
        ),
        "network_mode" => (Ignored, "all services share one pod network"),
        "links" => (Ignored, "each service gets a headless Service for its name"),
        "external_links" => (Ignored, "not supported on Kubernetes"),
        "build" => (Ignored, "Kompox deploys images; build them in CI"),
        "logging" => (Ignored, "container logs go to the cluster's log pipeline"),
        "ulimits" => (Ignored, "not settable per container on Kubernetes"),
        "dns" | "dns_search" | "dns_opt" => (Ignored, "cluster DNS is used"),
        "init" => (Ignored, "no init process injection on Kubernetes"),
        "platform" => (Ignored, "node architecture is chosen by the node pool"),
        "shm_size" => (Ignored, "use a tmpfs mount on /dev/shm instead"),
        "sysctls" => (Ignored, "pod sysctls need cluster allow-listing"),
        "security_opt" => (Ignored, "use cap_add/cap_drop/privileged"),
        "devices" | "device_cgroup_rules" | "gpus" => (Ignored, "host devices are not exposed"),
        "scale" => (Ignored, "Kompox runs exactly one replica"),
        "stop_signal" => (Ignored, "Kubernetes sends SIGTERM"),
        "pid" | "ipc" | "uts" | "userns_mode" | "cgroup" | "cgroup_parent" | "isolation" => {
            (Ignored, "namespace and cgroup options are not supported")
        }
        "oom_kill_disable" | "oom_score_adj" | "blkio_config" | "cpu_count" | "cpu_percent"
        | "cpu_shares" | "cpu_period" | "cpu_quota" | "cpu_rt_runtime" | "cpu_rt_period"
        | "cpuset" | "memswap_limit" | "mem_swappiness" | "pids_limit" | "storage_opt"
        | "runtime" => (Ignored, "low-level runtime tuning is not supported"),
        "mac_address" | "credential_spec" | "attach" | "develop" | "post_start" | "pre_stop"
        | "group_add" | "label_file" | "models" | "provider" | "use_api_socket"
        | "volumes_from" => (Ignored, "not supported on Kubernetes"),
        "extends" => (
            Rejected,
            "extends needs other compose files; inline the service instead",
        ),
        _ if key.starts_with("x-") && key != "x-kompox" => (Ignored, "extension field"),
        "x-kompox" => (
            Mapped,
            "Kompox service options (resources, limits, liveness)",
        ),
        _ => return None,
    })
}

/// Classification of a top-level compose key.
pub fn top_level_key(key: &str) -> Option<(KeyStatus, &'static str)> {
    use KeyStatus::*;
    Some(match key {
        "services" => (Mapped, "containers of the app's pod"),
        "configs" => (Mapped, "ConfigMaps"),
        "secrets" => (Mapped, "Secrets"),
        "volumes" => (Mapped, "names only: the App's KOM volumes are the disks"),
        "networks" => (Ignored, "all services share one pod network"),
        "name" => (Ignored, "the App name names the deployment"),
        "version" => (Ignored, "obsolete"),
        "include" => (Ignored, "other compose files are not read"),
        "models" => (Ignored, "not supported"),
        _ if key.starts_with("x-") => (Ignored, "extension field"),
        _ => return None,
    })
}
