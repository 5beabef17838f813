//! EKS cluster status and credentials (issue 6; reference §6.1
//! `ClusterStatus`, `ClusterKubeconfig`; DECISIONS 15).
//!
//! Stage: provider I/O at the edges (`status` and `kubeconfig` call
//! `DescribeCluster` and resolve AWS credentials), pure in the middle: the
//! EKS bearer token ([`presigned_token`], as `aws eks get-token` and
//! aws-iam-authenticator make it) and the kubeconfig YAML
//! ([`kubeconfig_yaml`]). Nothing here dials the cluster endpoint or STS:
//! the token is a presigned URL that the cluster's authenticator, not
//! Kompox, sends to STS.
//!
//! Kompox does not provision EKS clusters (`existing: true` clusters only);
//! the driver's `cluster_provision` stays `NotSupported`.

use std::time::{Duration, SystemTime};

use aws_sdk_sts::config::{Credentials, ProvideCredentials, SharedCredentialsProvider};
use aws_sigv4::http_request::{
    SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::json;

use super::aws_error::sdk_error;
use crate::provider::driver::{ClusterStatus, DriverError};

/// Prefix of an EKS bearer token.
pub(super) const TOKEN_PREFIX: &str = "k8s-aws-v1.";
/// The header naming the cluster, signed into the token.
pub(super) const CLUSTER_ID_HEADER: &str = "x-k8s-aws-id";
/// `X-Amz-Expires` of the presigned URL, as `aws eks get-token` sets it.
/// The EKS authenticator accepts a token for 15 minutes after its
/// `X-Amz-Date` whatever this says (`aws eks get-token` reports an
/// expiration of 14 minutes); callers ask for a fresh kubeconfig rather
/// than keep one.
pub(super) const TOKEN_EXPIRES: Duration = Duration::from_secs(60);

/// What `DescribeCluster` says, reduced to what Kompox uses.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(super) struct ClusterView {
    pub name: String,
    pub arn: Option<String>,
    /// `CREATING`, `ACTIVE`, `DELETING`, `FAILED`, `UPDATING`, `PENDING`.
    pub status: String,
    pub endpoint: Option<String>,
    /// Base64 PEM of the cluster CA, as EKS returns it.
    pub ca_data: Option<String>,
    pub version: Option<String>,
}

/// The status of a cluster (`None` = it does not exist).
pub(super) fn cluster_status(view: Option<&ClusterView>) -> ClusterStatus {
    ClusterStatus {
        existing: view.is_some(),
        provisioned: Some(view.is_some_and(|v| v.status == "ACTIVE")),
        // Ingress is not looked at by the EKS driver yet.
        installed: None,
        ingress_global_ip: None,
        ingress_fqdn: None,
    }
}

/// The STS host an EKS token is signed for: the regional endpoint (which
/// aws-iam-authenticator accepts next to the global one).
pub(super) fn sts_host(region: &str) -> String {
    if region.starts_with("cn-") {
        format!("sts.{region}.amazonaws.com.cn")
    } else {
        format!("sts.{region}.amazonaws.com")
    }
}

/// AWS URI encoding of a query component (RFC 3986 unreserved kept).
fn uri_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The URL of a presigned STS `GetCallerIdentity` request for `cluster`:
/// SigV4 query signing, service `sts`, `GET` with an empty body, the
/// `x-k8s-aws-id: <cluster>` header signed, `X-Amz-Expires=60`.
pub(super) fn presigned_url(
    creds: &Credentials,
    cluster: &str,
    region: &str,
    now: SystemTime,
) -> Result<String, DriverError> {
    let base = format!(
        "https://{}/?Action=GetCallerIdentity&Version=2011-06-15",
        sts_host(region)
    );
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(TOKEN_EXPIRES);
    let identity = creds.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("sts")
        .time(now)
        .settings(settings)
        .build()
        .map_err(|e| DriverError::InvalidInput(format!("signing an EKS token: {e}")))?
        .into();
    let headers = [(CLUSTER_ID_HEADER, cluster)];
    let request = SignableRequest::new(
        "GET",
        base.as_str(),
        headers.iter().copied(),
        SignableBody::Bytes(&[]),
    )
    .map_err(|e| DriverError::InvalidInput(format!("signing an EKS token: {e}")))?;
    let (instructions, _signature) = sign(request, &params)
        .map_err(|e| DriverError::InvalidInput(format!("signing an EKS token: {e}")))?
        .into_parts();
    let mut url = base;
    for (name, value) in instructions.params() {
        url.push('&');
        url.push_str(&uri_encode(name));
        url.push('=');
        url.push_str(&uri_encode(value));
    }
    Ok(url)
}

/// An EKS bearer token: `k8s-aws-v1.` + base64url (no padding) of the
/// presigned URL.
pub(super) fn presigned_token(
    creds: &Credentials,
    cluster: &str,
    region: &str,
    now: SystemTime,
) -> Result<String, DriverError> {
    let url = presigned_url(creds, cluster, region, now)?;
    Ok(format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(url)))
}

/// A kubeconfig for one cluster with a static bearer token. Names are the
/// cluster ARN when known (as `aws eks update-kubeconfig` names them).
pub(super) fn kubeconfig_yaml(view: &ClusterView, token: &str) -> Result<String, DriverError> {
    let endpoint = view.endpoint.as_deref().unwrap_or_default();
    let ca = view.ca_data.as_deref().unwrap_or_default();
    if endpoint.is_empty() || ca.is_empty() {
        return Err(DriverError::Transient(format!(
            "EKS cluster `{}` is {} and has no endpoint or CA yet",
            view.name,
            if view.status.is_empty() {
                "in an unknown state"
            } else {
                &view.status
            }
        )));
    }
    // EKS returns the CA already base64-encoded; keep it as it is, but
    // refuse anything that is not base64 (a kubeconfig that kube cannot read
    // would fail later and further away).
    if STANDARD.decode(ca).is_err() {
        return Err(DriverError::Io(format!(
            "EKS cluster `{}`: certificateAuthority.data is not base64",
            view.name
        )));
    }
    let name = view.arn.clone().unwrap_or_else(|| view.name.clone());
    let doc = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{
            "name": name,
            "cluster": {
                "server": endpoint,
                "certificate-authority-data": ca,
            },
        }],
        "users": [{
            "name": name,
            "user": { "token": token },
        }],
        "contexts": [{
            "name": name,
            "context": { "cluster": name, "user": name },
        }],
        "current-context": name,
        "preferences": {},
    });
    Ok(crate::yaml::to_yaml_string(&doc))
}

async fn describe(
    eks: &aws_sdk_eks::Client,
    cluster: &str,
) -> Result<Option<ClusterView>, DriverError> {
    match eks.describe_cluster().name(cluster).send().await {
        Ok(out) => Ok(out.cluster().map(|c| ClusterView {
            name: c.name().unwrap_or(cluster).to_string(),
            arn: c.arn().map(str::to_string),
            status: c
                .status()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default(),
            endpoint: c.endpoint().map(str::to_string),
            ca_data: c
                .certificate_authority()
                .and_then(|ca| ca.data())
                .map(str::to_string),
            version: c.version().map(str::to_string),
        })),
        Err(e) => match sdk_error(&format!("describe EKS cluster `{cluster}`"), e) {
            DriverError::NotFound(_) => Ok(None),
            other => Err(other),
        },
    }
}

/// `ClusterStatus` from `DescribeCluster`: existing = it is there,
/// provisioned = it is `ACTIVE`; a missing cluster is
/// `existing: false, provisioned: false`.
pub(super) async fn status(
    eks: &aws_sdk_eks::Client,
    cluster: &str,
) -> Result<ClusterStatus, DriverError> {
    let view = describe(eks, cluster).await?;
    Ok(cluster_status(view.as_ref()))
}

/// A kubeconfig (bytes) for an existing cluster: its endpoint and CA, and a
/// bearer token signed with `credentials` (the driver's AWS credential
/// chain; signed locally, STS is not called). The token is good for about
/// 15 minutes (see [`TOKEN_EXPIRES`]): ask again rather than keep the file.
///
/// Takes the credentials provider rather than an STS client: the Rust SDK
/// has no presigning for STS, and its clients do not hand out their
/// credentials (`aws_sdk_sts::Config::credentials_provider` always answers
/// `None`), so the driver passes its `SdkConfig`'s provider.
pub(super) async fn kubeconfig(
    eks: &aws_sdk_eks::Client,
    credentials: Option<SharedCredentialsProvider>,
    cluster: &str,
    region: &str,
) -> Result<Vec<u8>, DriverError> {
    let view = describe(eks, cluster).await?.ok_or_else(|| {
        DriverError::NotFound(format!(
            "EKS cluster `{cluster}` does not exist in {region} (Kompox does not provision EKS clusters)"
        ))
    })?;
    let provider = credentials.ok_or_else(|| {
        DriverError::Permission("no AWS credentials are configured to sign an EKS token".into())
    })?;
    let creds = provider.provide_credentials().await.map_err(|e| {
        DriverError::Permission(format!(
            "AWS credentials for an EKS token: {}",
            aws_sdk_sts::error::DisplayErrorContext(&e)
        ))
    })?;
    let token = presigned_token(&creds, &view.name, region, SystemTime::now())?;
    Ok(kubeconfig_yaml(&view, &token)?.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hmac::{Hmac, Mac};
    use sha2::{Digest, Sha256};

    fn creds(token: Option<&str>) -> Credentials {
        Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            token.map(str::to_string),
            None,
            "test",
        )
    }

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn decode_query(url: &str) -> Vec<(String, String)> {
        let q = url.split_once('?').unwrap().1;
        q.split('&')
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap();
                (percent_decode(k), percent_decode(v))
            })
            .collect()
    }

    fn percent_decode(s: &str) -> String {
        let b = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'%' {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                i += 3;
            } else {
                out.push(b[i]);
                i += 1;
            }
        }
        String::from_utf8(out).unwrap()
    }

    fn hmac(key: &[u8], data: &str) -> Vec<u8> {
        let mut m = Hmac::<Sha256>::new_from_slice(key).unwrap();
        m.update(data.as_bytes());
        m.finalize().into_bytes().to_vec()
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    /// Recomputes the SigV4 query signature by the published algorithm,
    /// independently of aws-sigv4: what STS will check.
    fn expected_signature(url: &str, secret: &str, cluster: &str) -> String {
        let host = url
            .strip_prefix("https://")
            .unwrap()
            .split('/')
            .next()
            .unwrap();
        let mut q = decode_query(url);
        q.retain(|(k, _)| k != "X-Amz-Signature");
        let mut enc: Vec<(String, String)> = q
            .iter()
            .map(|(k, v)| (uri_encode(k), uri_encode(v)))
            .collect();
        enc.sort();
        let canonical_query = enc
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&");
        let get = |k: &str| q.iter().find(|(n, _)| n == k).unwrap().1.clone();
        let signed = get("X-Amz-SignedHeaders");
        assert_eq!(signed, "host;x-k8s-aws-id");
        let canonical = format!(
            "GET\n/\n{canonical_query}\nhost:{host}\nx-k8s-aws-id:{cluster}\n\n{signed}\n{}",
            hex(&Sha256::digest(b""))
        );
        let date = get("X-Amz-Date");
        let scope = get("X-Amz-Credential")
            .split_once('/')
            .unwrap()
            .1
            .to_string();
        let to_sign = format!(
            "AWS4-HMAC-SHA256\n{date}\n{scope}\n{}",
            hex(&Sha256::digest(canonical.as_bytes()))
        );
        let mut parts = scope.split('/');
        let (day, region, service) = (
            parts.next().unwrap(),
            parts.next().unwrap(),
            parts.next().unwrap(),
        );
        let k = hmac(format!("AWS4{secret}").as_bytes(), day);
        let k = hmac(&k, region);
        let k = hmac(&k, service);
        let k = hmac(&k, "aws4_request");
        hex(&hmac(&k, &to_sign))
    }

    #[test]
    fn token_is_a_presigned_get_caller_identity_url() {
        let now = at(1_700_000_000); // 2023-11-14T22:13:20Z
        let token = presigned_token(&creds(None), "prod", "eu-west-1", now).unwrap();
        let b64 = token
            .strip_prefix(TOKEN_PREFIX)
            .expect("k8s-aws-v1. prefix");
        assert!(
            !b64.contains('=') && !b64.contains('+') && !b64.contains('/'),
            "base64url, no padding"
        );
        let url = String::from_utf8(URL_SAFE_NO_PAD.decode(b64).unwrap()).unwrap();
        assert!(
            url.starts_with("https://sts.eu-west-1.amazonaws.com/?"),
            "{url}"
        );
        let q = decode_query(&url);
        let get = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("Action"), Some("GetCallerIdentity"));
        assert_eq!(get("Version"), Some("2011-06-15"));
        assert_eq!(get("X-Amz-Algorithm"), Some("AWS4-HMAC-SHA256"));
        assert_eq!(get("X-Amz-Expires"), Some("60"));
        assert_eq!(get("X-Amz-Date"), Some("20231114T221320Z"));
        assert_eq!(
            get("X-Amz-Credential"),
            Some("AKIDEXAMPLE/20231114/eu-west-1/sts/aws4_request")
        );
        assert_eq!(get("X-Amz-SignedHeaders"), Some("host;x-k8s-aws-id"));
        assert_eq!(get("X-Amz-Security-Token"), None);
        assert_eq!(
            get("X-Amz-Signature"),
            Some(
                expected_signature(&url, "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "prod")
                    .as_str()
            )
        );
        // Deterministic for a given time; the cluster name is signed.
        assert_eq!(
            presigned_token(&creds(None), "prod", "eu-west-1", now).unwrap(),
            token
        );
        assert_ne!(
            presigned_token(&creds(None), "dev", "eu-west-1", now).unwrap(),
            token
        );
    }

    #[test]
    fn session_credentials_carry_their_token() {
        let url = presigned_url(
            &creds(Some("FwoG/session+token=")),
            "prod",
            "cn-north-1",
            at(1_700_000_000),
        )
        .unwrap();
        assert!(
            url.starts_with("https://sts.cn-north-1.amazonaws.com.cn/?"),
            "{url}"
        );
        let q = decode_query(&url);
        assert!(
            q.contains(&(
                "X-Amz-Security-Token".to_string(),
                "FwoG/session+token=".to_string()
            )),
            "{q:?}"
        );
        assert_eq!(
            q.iter().find(|(k, _)| k == "X-Amz-Signature").unwrap().1,
            expected_signature(&url, "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "prod")
        );
    }

    fn view() -> ClusterView {
        ClusterView {
            name: "prod".into(),
            arn: Some("arn:aws:eks:eu-west-1:123456789012:cluster/prod".into()),
            status: "ACTIVE".into(),
            endpoint: Some("https://ABC.gr7.eu-west-1.eks.amazonaws.com".into()),
            ca_data: Some(STANDARD.encode("-----BEGIN CERTIFICATE-----\n")),
            version: Some("1.33".into()),
        }
    }

    #[test]
    fn kubeconfig_has_endpoint_ca_and_token() {
        let yaml = kubeconfig_yaml(&view(), "k8s-aws-v1.abc").unwrap();
        let kc = kube::config::Kubeconfig::from_yaml(&yaml).unwrap();
        let arn = view().arn.unwrap();
        assert_eq!(kc.current_context.as_deref(), Some(arn.as_str()));
        let cluster = kc.clusters[0].cluster.as_ref().unwrap();
        assert_eq!(cluster.server.as_deref(), view().endpoint.as_deref());
        assert_eq!(
            cluster.certificate_authority_data.as_deref(),
            view().ca_data.as_deref()
        );
        let user = kc.auth_infos[0].auth_info.as_ref().unwrap();
        assert!(user.token.is_some());
        let mut creating = view();
        creating.status = "CREATING".into();
        creating.endpoint = None;
        assert!(kubeconfig_yaml(&creating, "t").unwrap_err().retryable());
        let mut bad = view();
        bad.ca_data = Some("not base64!".into());
        assert!(matches!(
            kubeconfig_yaml(&bad, "t"),
            Err(DriverError::Io(_))
        ));
    }

    #[test]
    fn status_of_present_and_missing_clusters() {
        let s = cluster_status(Some(&view()));
        assert!(s.existing && s.provisioned == Some(true) && s.installed.is_none());
        let mut creating = view();
        creating.status = "CREATING".into();
        assert_eq!(cluster_status(Some(&creating)).provisioned, Some(false));
        let gone = cluster_status(None);
        assert!(!gone.existing && gone.provisioned == Some(false));
    }
}
