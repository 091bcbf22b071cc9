"""The boto3 client of a system, and the classification of everything it raises.

boto3 is imported here, lazily (when a system is built), so a missing SDK fails only the
systems that need it. Error messages name the operation and the S3 error code, never a key:
keys often hold personal data (``customers/800123/...``, ``exports/bob@x.org.csv``).
"""

from __future__ import annotations

import logging
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from erasure import AuthError, BlockedError, PermanentError, TransientError, current_call

from .settings import S3Settings

__all__ = ["client_error_code", "make_client", "s3_errors"]

_TRANSIENT_CODES = frozenset({
    "SlowDown", "InternalError", "ServiceUnavailable", "RequestTimeout", "Throttling",
    "ThrottlingException", "RequestLimitExceeded", "TooManyRequestsException",
    "RequestTimeTooSkewed", "OperationAborted", "500", "502", "503", "504",
})
_AUTH_CODES = frozenset({
    "AccessDenied", "AllAccessDisabled", "InvalidAccessKeyId", "SignatureDoesNotMatch",
    "ExpiredToken", "InvalidToken", "AccountProblem", "403",
})


#: Loggers whose DEBUG lines carry request URLs (object keys), headers (user metadata) and
#: bodies (tag values): personal data. Kept at WARNING unless someone set their level.
_CHATTY = ("botocore", "boto3", "s3transfer", "urllib3")


def quiet_sdk_logs() -> None:
    """Keep the SDK's debug logging, which prints keys and metadata, off by default."""
    for name in _CHATTY:
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.WARNING)


def make_client(settings: S3Settings) -> Any:
    """A boto3 S3 client: standard retry mode with few attempts, bounded timeouts."""
    import boto3
    from botocore.config import Config

    quiet_sdk_logs()

    def secret(value: Any) -> str | None:
        return value.get_secret_value() if value is not None else None

    session = boto3.session.Session(
        aws_access_key_id=secret(settings.access_key_id),
        aws_secret_access_key=secret(settings.secret_access_key),
        aws_session_token=secret(settings.session_token),
        region_name=settings.region,
    )
    config = Config(
        retries={"mode": "standard", "max_attempts": settings.sdk_max_attempts},
        connect_timeout=settings.connect_timeout,
        read_timeout=settings.read_timeout,
        # Path-style addressing for custom endpoints (MinIO, moto): bucket names need no DNS.
        s3={"addressing_style": "path"} if settings.endpoint_url else None,
    )
    client = session.client("s3", endpoint_url=settings.endpoint_url, config=config)
    client.meta.events.register("before-send.s3", _within_call_deadline)
    if settings.page_size < 1000:
        _page_size(client, settings.page_size)
    return client


#: listing operations and the parameter that sizes their pages
_LISTINGS = {"ListObjectVersions": "MaxKeys", "ListObjectsV2": "MaxKeys",
             "ListMultipartUploads": "MaxUploads", "ListParts": "MaxParts"}


def _page_size(client: Any, size: int) -> None:
    """Every listing of ``client`` asks for pages of at most ``size`` (a size given in the
    call stays): one place for every paginator the connector runs."""
    for operation, param in _LISTINGS.items():
        def smaller(params: dict[str, Any], _param: str = param, **_: Any) -> None:
            params[_param] = min(int(params.get(_param) or size), size)
        client.meta.events.register(f"provide-client-params.s3.{operation}", smaller)


def _within_call_deadline(**_: Any) -> None:
    """No HTTP attempt, botocore's own retries included, starts after the host's call
    deadline: the call gives up (transient) instead of running past it."""
    try:
        deadline = current_call().deadline
    except RuntimeError:  # not inside a host's call (check, discover), or another thread
        return
    if time.monotonic() >= deadline:
        raise TransientError("s3: the call's deadline passed")


def client_error_code(exc: BaseException) -> str:
    """The S3 error code of a botocore ClientError (``""`` for anything else)."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return ""
    code = str(response.get("Error", {}).get("Code", ""))
    if not code:
        code = str(response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
    return code


def _status(exc: BaseException) -> int:
    response = getattr(exc, "response", None) or {}
    return int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)


@contextmanager
def s3_errors(what: str) -> Iterator[None]:
    """Turn botocore's exceptions into the host's: transient, auth or permanent."""
    from botocore import exceptions as bx

    try:
        yield
    except bx.ClientError as exc:
        code, status = client_error_code(exc), _status(exc)
        retry_after = _retry_after(exc)
        if code in _TRANSIENT_CODES or status >= 500 or status == 429:
            raise TransientError(f"s3 {what}: {code or status}",
                                 retry_after=retry_after) from None
        if code in _AUTH_CODES:
            raise AuthError(f"s3 {what}: {code} (check the credentials' permissions)",
                            system_wide=True) from None
        raise PermanentError(f"s3 {what}: {code or status}") from None
    except (bx.HTTPClientError, bx.ResponseStreamingError, OSError) as exc:
        # every connection failure (refused, reset, timed out, cut mid-body): it comes back
        raise TransientError(f"s3 {what}: {type(exc).__name__}") from None
    except zlib.error:
        # An object the reader cannot decode fails every search that reads it, whoever
        # the subjects: an operator removes or excludes it.
        raise BlockedError(f"s3 {what}: an object that cannot be decoded (corrupt gzip)",
                           system_wide=True) from None
    except (bx.NoCredentialsError, bx.PartialCredentialsError) as exc:
        raise AuthError(f"s3 {what}: {type(exc).__name__}", system_wide=True) from None
    except bx.BotoCoreError as exc:
        raise BlockedError(f"s3 {what}: {type(exc).__name__} (unclassified)") from None


def _retry_after(exc: BaseException) -> float | None:
    response = getattr(exc, "response", None) or {}
    headers = response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
    try:
        return float(headers["retry-after"])
    except (KeyError, TypeError, ValueError):
        return None
