//! AWS SDK errors as [`DriverError`]s. Pure classification
//! ([`classify`]) plus the glue from the SDK's error type.
//!
//! The variant says whether retrying helps: throttling, 5xx, timeouts and
//! connection failures are `Transient`; credentials and policies are
//! `Permission`; `*.NotFound` codes are `NotFound`; malformed requests are
//! `InvalidInput`; state clashes (a volume in use, a reused client token)
//! are `Conflict`. Messages name the operation and the resource and carry
//! the service's code and message, never a credential (the SDK's errors
//! hold none; request signatures are not part of them).

use aws_config::retry::ErrorKind;
use aws_sdk_ec2::config::http::HttpResponse;
use aws_sdk_ec2::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use crate::provider::driver::DriverError;

/// Error codes AWS uses for throttling (EC2 and EKS), as the SDK's retry
/// classifier knows them, plus EC2's capacity codes that AWS asks to retry.
const TRANSIENT_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "RequestThrottled",
    "BandwidthLimitExceeded",
    "EC2ThrottledException",
    "SlowDown",
    "PriorRequestNotComplete",
    "RequestTimeout",
    "RequestTimeoutException",
    "InternalError",
    "InternalFailure",
    "ServerException",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "Unavailable",
    "InsufficientVolumeCapacity",
    "SnapshotCreationPerVolumeRateExceeded",
];

const PERMISSION_CODES: &[&str] = &[
    "UnauthorizedOperation",
    "AuthFailure",
    "AccessDenied",
    "AccessDeniedException",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "ExpiredTokenException",
    "OptInRequired",
    "Blocked",
    "NotAuthorizedException",
];

const CONFLICT_CODES: &[&str] = &[
    "VolumeInUse",
    "IncorrectState",
    "IncorrectInstanceState",
    "InvalidVolume.ZoneMismatch",
    "InvalidSnapshot.InUse",
    "IdempotentParameterMismatch",
    "ResourceInUseException",
    "ResourceLimitExceeded",
    "VolumeLimitExceeded",
    "SnapshotLimitExceeded",
    "MaxIOPSLimitExceeded",
];

/// The [`DriverError`] variant for a service error `code` with HTTP
/// `status`; `message` is the full text for the user.
pub(super) fn classify(code: Option<&str>, status: Option<u16>, message: String) -> DriverError {
    let code = code.unwrap_or_default();
    if TRANSIENT_CODES.contains(&code) {
        return DriverError::Transient(message);
    }
    if PERMISSION_CODES.contains(&code) {
        return DriverError::Permission(message);
    }
    if CONFLICT_CODES.contains(&code) {
        return DriverError::Conflict(message);
    }
    if code.ends_with(".NotFound")
        || code == "ResourceNotFoundException"
        || code == "NotFoundException"
    {
        return DriverError::NotFound(message);
    }
    if code.starts_with("InvalidParameter")
        || code.starts_with("MissingParameter")
        || code.ends_with(".Malformed")
        || code == "InvalidRequest"
        || code == "InvalidRequestException"
        || code == "InvalidParameterException"
        || code == "ValidationError"
        || code == "ValidationException"
        || code == "UnknownVolumeType"
        || code.starts_with("InvalidZone")
        || code.starts_with("InvalidKMSKey")
    {
        return DriverError::InvalidInput(message);
    }
    match status {
        Some(429) | Some(500..=599) => DriverError::Transient(message),
        Some(401) | Some(403) => DriverError::Permission(message),
        Some(404) => DriverError::NotFound(message),
        Some(409) => DriverError::Conflict(message),
        Some(400..=499) if code.starts_with("Invalid") => DriverError::InvalidInput(message),
        _ => DriverError::Io(message),
    }
}

/// An SDK error of the call `what` (e.g. `create EBS volume for disk
/// data/d1`) as a [`DriverError`].
pub(super) fn sdk_error<E>(what: &str, err: SdkError<E, HttpResponse>) -> DriverError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match &err {
        SdkError::ServiceError(_) => {
            let status = err.raw_response().map(|r| r.status().as_u16());
            let code = err.code().map(str::to_string);
            let text = match (err.code(), err.message()) {
                (Some(c), Some(m)) => format!("{c}: {m}"),
                (Some(c), None) => c.to_string(),
                (None, Some(m)) => m.to_string(),
                (None, None) => format!("HTTP {}", status.unwrap_or_default()),
            };
            classify(code.as_deref(), status, format!("{what}: {text}"))
        }
        SdkError::TimeoutError(_) | SdkError::ResponseError(_) => DriverError::Transient(format!(
            "{what}: {} (the request may have been received)",
            DisplayErrorContext(&err)
        )),
        // A connection closed before the answer ("other", kind transient)
        // is a lost response: the request may have been acted upon.
        SdkError::DispatchFailure(f)
            if f.is_io()
                || f.is_timeout()
                || matches!(
                    f.as_other(),
                    Some(ErrorKind::TransientError | ErrorKind::ThrottlingError)
                ) =>
        {
            DriverError::Transient(format!("{what}: {}", DisplayErrorContext(&err)))
        }
        SdkError::DispatchFailure(f) if f.is_user() => {
            DriverError::InvalidInput(format!("{what}: {}", DisplayErrorContext(&err)))
        }
        SdkError::ConstructionFailure(_) => {
            // Most often: no credentials or no region could be resolved.
            DriverError::Permission(format!(
                "{what}: the request could not be built: {} (check the AWS credentials and AWS_REGION)",
                DisplayErrorContext(&err)
            ))
        }
        _ => DriverError::Io(format!("{what}: {}", DisplayErrorContext(&err))),
    }
}

/// The service error code of an SDK error, if it is one.
pub(super) fn code_of<E>(err: &SdkError<E, HttpResponse>) -> Option<&str>
where
    E: ProvideErrorMetadata,
{
    match err {
        SdkError::ServiceError(_) => err.code(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(code: &str, status: u16) -> DriverError {
        classify(Some(code), Some(status), "m".into())
    }

    #[test]
    fn throttling_and_server_errors_are_transient() {
        for (code, status) in [
            ("RequestLimitExceeded", 503),
            ("Throttling", 400),
            ("ThrottlingException", 429),
            ("InternalError", 500),
            ("Whatever", 429),
            ("Whatever", 503),
            ("InsufficientVolumeCapacity", 400),
        ] {
            assert!(c(code, status).retryable(), "{code} {status}");
        }
    }

    #[test]
    fn codes_map_to_what_retrying_cannot_fix() {
        assert!(matches!(
            c("UnauthorizedOperation", 403),
            DriverError::Permission(_)
        ));
        assert!(matches!(c("AuthFailure", 401), DriverError::Permission(_)));
        assert!(matches!(
            c("InvalidVolume.NotFound", 400),
            DriverError::NotFound(_)
        ));
        assert!(matches!(
            c("InvalidSnapshot.NotFound", 400),
            DriverError::NotFound(_)
        ));
        assert!(matches!(
            c("InvalidParameterValue", 400),
            DriverError::InvalidInput(_)
        ));
        assert!(matches!(
            c("InvalidParameterCombination", 400),
            DriverError::InvalidInput(_)
        ));
        assert!(matches!(c("VolumeInUse", 400), DriverError::Conflict(_)));
        assert!(matches!(
            c("IdempotentParameterMismatch", 400),
            DriverError::Conflict(_)
        ));
        assert!(matches!(c("Odd", 400), DriverError::Io(_)));
        assert!(matches!(
            classify(None, None, "m".into()),
            DriverError::Io(_)
        ));
    }
}
