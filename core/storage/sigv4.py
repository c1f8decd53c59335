"""AWS Signature Version 4 for S3, and when pgvault can sign requests itself.

core.storage.s3_http talks to S3 with the standard library; it signs here. It is used only
where its answer is certain to be boto3's: plain keys (in the URL or the environment), a
known region, and an endpoint whose addressing style needs no guessing. Everything else
(profiles, roles, SSO, instance metadata, proxies, FIPS or dual-stack endpoints) goes
through boto3, whose provider chain owns those rules.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import re
import time
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit

from core.storage.clients import env_secret
from core.storage.config import StoreConfig
from core.urls import Location

UNSIGNED = "UNSIGNED-PAYLOAD"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
#: environment variables whose meaning only boto3's configuration chain knows
BOTO_ONLY_ENV = (
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_USE_FIPS_ENDPOINT",
    "AWS_USE_DUALSTACK_ENDPOINT",
    "AWS_S3_US_EAST_1_REGIONAL_ENDPOINT",
    "HTTPS_PROXY",
    "HTTP_PROXY",
    "https_proxy",
    "http_proxy",
)
_VIRTUAL_BUCKET = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")


@dataclass(frozen=True)
class Keys:
    """Static credentials; never printed."""

    access_key: str
    secret_key: str = field(repr=False)
    token: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Endpoint:
    """Where requests for one bucket go: scheme, host[:port], the path before the key."""

    scheme: str
    host: str
    base_path: str  # "" (virtual host) or "/bucket" (path style)
    region: str

    def path(self, key: str) -> str:
        """An object's request path (also the canonical URI: S3 encodes it once)."""
        return f"{self.base_path}/{quote(key, safe='/-_.~')}"

    def bucket_path(self) -> str:
        """The bucket's own path (HEAD of the bucket, listings)."""
        return self.base_path or "/"


def _keys(location: Location) -> Keys | None:
    creds = location.credentials
    if creds.aws_access_key_id and creds.aws_secret_access_key:
        return Keys(creds.aws_access_key_id, creds.aws_secret_access_key, creds.aws_session_token)
    access, secret = os.environ.get("AWS_ACCESS_KEY_ID"), env_secret("AWS_SECRET_ACCESS_KEY")
    if access and secret:
        return Keys(access, secret, env_secret("AWS_SESSION_TOKEN"))
    return None


def _region(location: Location) -> str | None:
    region = location.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region:
        return region
    config_file = os.environ.get("AWS_CONFIG_FILE") or os.path.expanduser("~/.aws/config")
    # A config file may name the region; only boto3 reads it the way boto3 does.
    return None if os.path.exists(config_file) else "us-east-1"


def _endpoint(location: Location, config: StoreConfig, region: str) -> Endpoint | None:
    bucket = location.bucket
    url = config.endpoint_url or location.endpoint
    style = config.addressing_style
    if url is None:
        if style == "path" or not _VIRTUAL_BUCKET.match(bucket):
            return None
        return aws_endpoint(bucket, region)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query:
        return None
    base = parts.path.rstrip("/")
    if style == "path" or (style is None and _is_ip(parts.hostname)):
        return Endpoint(parts.scheme, parts.netloc, f"{base}/{quote(bucket)}", region)
    if style == "virtual" and _VIRTUAL_BUCKET.match(bucket):
        return Endpoint(parts.scheme, f"{bucket}.{parts.netloc}", base, region)
    return None  # a host name in auto style: boto3's rules decide


def aws_endpoint(bucket: str, region: str) -> Endpoint:
    """AWS's own endpoint for a bucket in a region (virtual-hosted)."""
    host = "s3.amazonaws.com" if region == "us-east-1" else f"s3.{region}.amazonaws.com"
    return Endpoint("https", f"{bucket}.{host}", "", region)


def moved(endpoint: Endpoint, bucket: str, answer_region: str | None) -> Endpoint | None:
    """AWS's endpoint in the region a bucket answered from, when it is another one (boto3
    follows these redirects too); None for other stores or the same region."""
    if not answer_region or answer_region == endpoint.region:
        return None
    if not endpoint.host.endswith(".amazonaws.com"):
        return None
    return aws_endpoint(bucket, answer_region)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def plain_access(location: Location, config: StoreConfig) -> tuple[Keys, Endpoint] | None:
    """Keys and endpoint when pgvault signs exactly as boto3 would; None: use boto3."""
    if config.aws_profile or any(os.environ.get(name) for name in BOTO_ONLY_ENV):
        return None
    keys = _keys(location)
    region = _region(location)
    if keys is None or region is None:
        return None
    endpoint = _endpoint(location, config, region)
    return None if endpoint is None else (keys, endpoint)


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def _canonical_query(query: dict[str, str]) -> str:
    return "&".join(
        f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(query.items())
    )


def sign(
    keys: Keys,
    endpoint: Endpoint,
    request: tuple[str, str, dict[str, str]],
    headers: dict[str, str],
    payload_hash: str,
    stamp: str | None = None,
) -> dict[str, str]:
    """The headers of a request (method, path, query) signed with SigV4 for S3 (stamp: the
    request's time as YYYYMMDDTHHMMSSZ, now when None)."""
    method, path, query = request
    stamp = stamp or time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    signed = {k.lower(): " ".join(v.split()) for k, v in headers.items()}
    signed.update(
        {"host": endpoint.host, "x-amz-date": stamp, "x-amz-content-sha256": payload_hash}
    )
    if keys.token:
        signed["x-amz-security-token"] = keys.token
    names = sorted(signed)
    canonical = "\n".join(
        [
            method,
            path,
            _canonical_query(query),
            "".join(f"{name}:{signed[name]}\n" for name in names),
            ";".join(names),
            payload_hash,
        ]
    )
    scope = f"{stamp[:8]}/{endpoint.region}/s3/aws4_request"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = _hmac(("AWS4" + keys.secret_key).encode(), stamp[:8])
    for part in (endpoint.region, "s3", "aws4_request"):
        key = _hmac(key, part)
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    signed["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={keys.access_key}/{scope}, "
        f"SignedHeaders={';'.join(names)}, Signature={signature}"
    )
    return signed


def query_string(query: dict[str, str]) -> str:
    return _canonical_query(query)
