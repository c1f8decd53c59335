"""Destination URLs: provider, bucket or container, prefix and credentials, parsed once.

Accepted forms (barman-cloud's, CockroachDB's query parameters, and a local directory):
  s3://bucket/prefix[?AWS_ACCESS_KEY_ID=..&AWS_SECRET_ACCESS_KEY=..&AWS_REGION=..&AWS_ENDPOINT=..]
  https://ACCOUNT.blob.core.windows.net/CONTAINER/prefix
  http://127.0.0.1:10000/ACCOUNT/CONTAINER/prefix          (an emulator such as Azurite)
  azure://CONTAINER/prefix[?AZURE_ACCOUNT_NAME=..&AZURE_ACCOUNT_KEY=..]
  gs://bucket/prefix[?AUTH=specified&CREDENTIALS=<base64 service-account JSON>]
  https://storage.googleapis.com/bucket/prefix
  file:///absolute/path
  dav://[USER[:PASSWORD]@]HOST[:PORT]/COLLECTION/prefix    (WebDAV over http; davs:// over https;
                                or http(s)://... with --cloud-provider webdav)
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field, replace
from enum import StrEnum
from urllib.parse import SplitResult, parse_qsl, quote, unquote, urlencode, urlsplit

from core.errors import InputError
from core.secrets import register_secret, without_query


class Provider(StrEnum):
    """Storage providers; the values are barman-cloud's --cloud-provider names."""

    S3 = "aws-s3"
    AZURE = "azure-blob-storage"
    GCS = "google-cloud-storage"
    FILE = "local-directory"
    WEBDAV = "webdav"


#: barman-cloud's three, and webdav: an http(s):// URL is otherwise an Azure emulator's
CLOUD_PROVIDER_CHOICES = (
    Provider.S3.value,
    Provider.AZURE.value,
    Provider.GCS.value,
    Provider.WEBDAV.value,
)
#: an Azure emulator URL names /ACCOUNT/CONTAINER before the prefix
EMULATOR_PATH_SEGMENTS = 2

_S3_PARAMS = {
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_ENDPOINT",
    "AUTH",
}
_AZURE_PARAMS = {"AZURE_ACCOUNT_NAME", "AZURE_ACCOUNT_KEY", "AZURE_SAS_TOKEN", "AZURE_ENDPOINT"}
_GCS_PARAMS = {"AUTH", "CREDENTIALS"}
_DAV_PARAMS = {"DAV_USER", "DAV_PASSWORD"}
_SECRET_PARAMS = {
    "DAV_PASSWORD",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AZURE_ACCOUNT_KEY",
    "AZURE_SAS_TOKEN",
    "CREDENTIALS",
}


@dataclass(frozen=True)
class Credentials:
    """Credentials carried in the URL's query string; never printed (repr hides them)."""

    aws_access_key_id: str | None = None
    aws_secret_access_key: str | None = field(default=None, repr=False)
    aws_session_token: str | None = field(default=None, repr=False)
    azure_account_key: str | None = field(default=None, repr=False)
    azure_sas_token: str | None = field(default=None, repr=False)
    gcs_service_account_json: str | None = field(default=None, repr=False)
    dav_user: str | None = None
    dav_password: str | None = field(default=None, repr=False)

    def is_empty(self) -> bool:
        return not any(
            (
                self.aws_access_key_id,
                self.aws_secret_access_key,
                self.aws_session_token,
                self.azure_account_key,
                self.azure_sas_token,
                self.gcs_service_account_json,
                self.dav_user,
                self.dav_password,
            )
        )

    def register(self) -> None:
        """Make this process mask every secret here (a child handed a parsed location)."""
        for value in (
            self.aws_secret_access_key,
            self.aws_session_token,
            self.azure_account_key,
            self.azure_sas_token,
            self.gcs_service_account_json,
            self.dav_password,
        ):
            register_secret(value)


@dataclass(frozen=True)
class Location:
    """Where a catalog lives: one bucket/container/directory and a key prefix inside it."""

    provider: Provider
    bucket: str
    prefix: str
    account: str | None = None
    endpoint: str | None = None
    region: str | None = None
    credentials: Credentials = field(default_factory=Credentials, repr=False)
    # Explicit authentication mode from the URL (CockroachDB's AUTH parameter).
    auth: str | None = None

    def display(self) -> str:
        """The URL without credentials: safe for logs, job records and the console."""
        tail = f"/{self.prefix}" if self.prefix else ""
        if self.provider is Provider.S3:
            return f"s3://{self.bucket}{tail}"
        if self.provider is Provider.GCS:
            return f"gs://{self.bucket}{tail}"
        if self.provider is Provider.FILE:
            return f"file://{self.bucket}{tail}"
        if self.provider is Provider.WEBDAV:  # a URL path: escaped, so that it reads back
            path = quote(f"{self.bucket}{tail}", safe="/")
            return f"{_dav_scheme(self.endpoint)}://{_host(self.endpoint)}/{path}"
        if self.endpoint and not self.endpoint.endswith(".blob.core.windows.net"):
            return f"{self.endpoint.rstrip('/')}/{self.bucket}{tail}"
        return f"https://{self.account}.blob.core.windows.net/{self.bucket}{tail}"

    def without_credentials(self) -> Location:
        """This location as a record keeps it: where, never how to authenticate. A WebDAV
        user name stays: it is no secret, and a job resumed from its record finds only the
        password in the environment (PGVAULT_DAV_PASSWORD), as the first run may have."""
        return replace(self, credentials=Credentials(dav_user=self.credentials.dav_user))

    def child(self, *parts: str) -> str:
        """A key under this location's prefix."""
        return "/".join(p.strip("/") for p in (self.prefix, *parts) if p.strip("/"))


def parse_location(url: str, cloud_provider: str | None = None) -> Location:
    """Parse a destination URL; cloud_provider is --cloud-provider when given."""
    if not url or any(c.isspace() for c in url):
        raise InputError(f"invalid destination URL {url!r}")
    if url.startswith("/"):
        raise InputError(f"a local directory destination is written file://{url}")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - a port out of range or not a number raises here, not later
    except ValueError:  # 's3://[abc/x': an unclosed IPv6 bracket
        raise InputError(f"invalid destination URL {without_query(url)!r}") from None
    query = _query(parts.query)
    explicit = Provider(cloud_provider) if cloud_provider else None
    location = _by_scheme(parts, query, explicit, url)
    if explicit is not None and explicit is not location.provider:
        if location.provider is Provider.FILE:
            raise InputError("--cloud-provider does not apply to a file:// destination")
        raise InputError(
            f"--cloud-provider {explicit.value} does not match the URL {without_query(url)!r} "
            f"(a {location.provider.value} URL)"
        )
    return location


def parse_endpoint(url: str | None, what: str = "--endpoint-url") -> str | None:
    """An endpoint URL as the SDKs take it: http(s)://host[:port][/path]; None stays None."""
    if url is None:
        return None
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - a bad port raises here
    except ValueError:
        parts = None
    if parts is None or parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise InputError(f"{what} must be an http:// or https:// URL with a host, got {url!r}")
    return url


#: schemes whose authority is a bucket, container or nothing: an '@' there is a credential
_NO_USERINFO = frozenset({"s3", "gs", "gcs", "azure", "azure-blob", "azure-storage", "file"})


def _by_scheme(
    parts: SplitResult, query: dict[str, str], explicit: Provider | None, url: str
) -> Location:
    scheme = parts.scheme.lower()
    if "@" in parts.netloc and scheme in _NO_USERINFO:
        # Never echoed: the user part may be KEY:SECRET (it became the bucket's name, in
        # the job's record and the error text).
        shown = _without_userinfo(without_query(url))
        raise InputError(
            f"{scheme}:// URLs take no USER:PASSWORD@ part ({shown!r}): give credentials in "
            "the environment or the URL's query string"
        )
    if scheme == "s3":
        return _s3(parts.netloc, parts.path, query)
    if scheme in ("gs", "gcs"):
        return _gcs(parts.netloc, parts.path, query)
    if scheme in ("azure", "azure-blob", "azure-storage"):
        return _azure_short(parts.netloc, parts.path, query)
    if scheme == "file":
        return _file(parts.netloc, parts.path, query)
    if scheme in ("http", "https"):
        return _http(parts, query, explicit, url)
    if scheme in ("dav", "davs"):
        return _dav(parts, query, url)
    raise InputError(
        f"unsupported URL scheme {scheme!r} in {without_query(url)!r} (use s3://, gs://, "
        "azure://, https://ACCOUNT.blob.core.windows.net/, dav://, davs:// or file://)"
    )


def _http(
    parts: SplitResult, query: dict[str, str], explicit: Provider | None, url: str
) -> Location:
    """https://storage.googleapis.com/..., an Azure account endpoint, an emulator, or a
    WebDAV server (--cloud-provider webdav)."""
    host = (parts.hostname or "").lower()
    if explicit is Provider.WEBDAV:
        return _dav(parts, query, url)
    if explicit is None and (parts.username is not None or set(query) & _DAV_PARAMS):
        # Basic-auth credentials say WebDAV; as Azure (barman-cloud's reading) they would be
        # dropped and the account asked for credentials the operator never meant to give.
        raise InputError(
            f"{without_query(_without_userinfo(url))!r} carries WebDAV credentials, but an "
            "http(s):// URL is an Azure account's unless told otherwise: add --cloud-provider "
            "webdav, or write it dav:// (davs:// for https)"
        )
    if host == "storage.googleapis.com":
        bucket, prefix = _split_path(parts.path, url)
        return _gcs(bucket, "/" + prefix, query)
    if (
        host.endswith(".blob.core.windows.net")
        or explicit is Provider.AZURE
        or (explicit is None and host)
    ):
        return _azure_http(parts.scheme.lower(), parts.netloc, parts.path, query, url)
    raise InputError(f"invalid destination URL {without_query(url)!r}")


def _dav(parts: SplitResult, query: dict[str, str], url: str) -> Location:
    """WebDAV: dav:// (or http:// with --cloud-provider webdav) is http, davs:// https;
    basic-auth credentials in the userinfo or DAV_USER/DAV_PASSWORD in the query string."""
    _unknown(query, _DAV_PARAMS, "dav://")
    if not parts.hostname:
        raise InputError(f"no host in {without_query(_without_userinfo(url))!r}")
    bucket, prefix = _split_path(parts.path, _without_userinfo(url))
    user = unquote(parts.username) if parts.username else query.get("DAV_USER")
    password = unquote(parts.password) if parts.password else query.get("DAV_PASSWORD")
    register_secret(password)
    host = parts.netloc.rsplit("@", 1)[-1]
    scheme = "https" if parts.scheme.lower() in ("davs", "https") else "http"
    return Location(
        provider=Provider.WEBDAV,
        bucket=unquote(bucket),
        prefix=unquote(prefix),
        endpoint=f"{scheme}://{host}",
        credentials=Credentials(dav_user=user or None, dav_password=password or None),
    )


def _without_userinfo(url: str) -> str:
    """The URL without USER:PASSWORD@ (for messages)."""
    scheme, sep, rest = url.partition("://")
    authority, slash, path = rest.partition("/")
    return f"{scheme}{sep}{authority.rsplit('@', 1)[-1]}{slash}{path}"


def _dav_scheme(endpoint: str | None) -> str:
    return "davs" if (endpoint or "").startswith("https:") else "dav"


def _host(endpoint: str | None) -> str:
    return (endpoint or "").split("://", 1)[-1].rstrip("/")


def _query(raw: str) -> dict[str, str]:
    params: dict[str, str] = {}
    for key, value in parse_qsl(raw, keep_blank_values=True):
        if key in _SECRET_PARAMS:
            register_secret(value)
        params[key] = value
    return params


def _split_path(path: str, url: str) -> tuple[str, str]:
    segments = [s for s in path.split("/") if s]
    if not segments:
        raise InputError(f"no bucket or container in {without_query(url)!r}")
    return segments[0], "/".join(segments[1:])


def _unknown(query: dict[str, str], allowed: set[str], scheme: str) -> None:
    unknown = sorted(set(query) - allowed)
    if unknown:
        raise InputError(f"unknown {scheme} URL parameter(s): {', '.join(unknown)}")


def _check_bucket(bucket: str, url_hint: str) -> str:
    if not bucket:
        raise InputError(f"no bucket or container in {url_hint!r}")
    return bucket


#: Azure's rule for a container's name (its HTTP 400 INVALID_RESOURCE_NAME or
#: OUT_OF_RANGE_INPUT says no more), and its three reserved containers
_AZURE_CONTAINER = re.compile(r"\$root|\$web|\$logs|[a-z0-9](?:-?[a-z0-9]){2,62}")
_AZURE_CONTAINER_MAX = 63


def _check_container(location: Location) -> Location:
    if len(location.bucket) > _AZURE_CONTAINER_MAX or not _AZURE_CONTAINER.fullmatch(
        location.bucket
    ):
        raise InputError(
            f"{location.bucket!r} is not an Azure container name: 3 to 63 lowercase letters, "
            "digits and single hyphens, starting and ending with a letter or digit"
        )
    return location


def _s3(netloc: str, path: str, query: dict[str, str]) -> Location:
    _unknown(query, _S3_PARAMS, "s3://")
    bucket = _check_bucket(netloc, f"s3://{netloc}{path}")
    auth = query.get("AUTH")
    if auth not in (None, "implicit", "specified"):
        raise InputError("AUTH must be 'implicit' or 'specified' for s3:// URLs")
    creds = Credentials(
        aws_access_key_id=query.get("AWS_ACCESS_KEY_ID"),
        aws_secret_access_key=query.get("AWS_SECRET_ACCESS_KEY"),
        aws_session_token=query.get("AWS_SESSION_TOKEN"),
    )
    if auth == "specified" and not (creds.aws_access_key_id and creds.aws_secret_access_key):
        raise InputError("AUTH=specified needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
    if bool(creds.aws_access_key_id) != bool(creds.aws_secret_access_key):
        raise InputError("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be given together")
    return Location(
        provider=Provider.S3,
        bucket=bucket,
        prefix=path.strip("/"),
        endpoint=parse_endpoint(query.get("AWS_ENDPOINT") or None, "AWS_ENDPOINT"),
        region=query.get("AWS_REGION") or None,
        credentials=creds,
        auth=auth,
    )


def _gcs(netloc: str, path: str, query: dict[str, str]) -> Location:
    _unknown(query, _GCS_PARAMS, "gs://")
    bucket = _check_bucket(netloc, f"gs://{netloc}{path}")
    auth = query.get("AUTH")
    if auth not in (None, "implicit", "default", "specified"):
        raise InputError("AUTH must be 'implicit', 'default' or 'specified' for gs:// URLs")
    service_account = None
    if "CREDENTIALS" in query:
        try:
            service_account = base64.b64decode(query["CREDENTIALS"], validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise InputError("CREDENTIALS must be a base64-encoded service-account key") from None
        register_secret(service_account)
    if auth == "specified" and service_account is None:
        raise InputError("AUTH=specified needs the CREDENTIALS parameter")
    return Location(
        provider=Provider.GCS,
        bucket=bucket,
        prefix=path.strip("/"),
        credentials=Credentials(gcs_service_account_json=service_account),
        auth=auth,
    )


def _azure_short(netloc: str, path: str, query: dict[str, str]) -> Location:
    _unknown(query, _AZURE_PARAMS, "azure://")
    container = _check_bucket(netloc, f"azure://{netloc}{path}")
    account = query.get("AZURE_ACCOUNT_NAME") or None
    endpoint = parse_endpoint(query.get("AZURE_ENDPOINT") or None, "AZURE_ENDPOINT")
    return _check_container(
        Location(
            provider=Provider.AZURE,
            bucket=container,
            prefix=path.strip("/"),
            account=account,
            endpoint=endpoint,
            credentials=Credentials(
                azure_account_key=query.get("AZURE_ACCOUNT_KEY"),
                azure_sas_token=query.get("AZURE_SAS_TOKEN"),
            ),
        )
    )


def _azure_http(scheme: str, netloc: str, path: str, query: dict[str, str], url: str) -> Location:
    _unknown(query, _AZURE_PARAMS, "Azure")
    host = netloc.rsplit("@", 1)[-1]
    creds = Credentials(
        azure_account_key=query.get("AZURE_ACCOUNT_KEY"),
        azure_sas_token=query.get("AZURE_SAS_TOKEN"),
    )
    if host.lower().endswith(".blob.core.windows.net"):
        account = host.split(".", 1)[0]
        container, prefix = _split_path(path, url)
        endpoint = f"{scheme}://{host}"
    else:
        # Emulator form: the account is the first path segment (barman-cloud's rule).
        segments = [s for s in path.split("/") if s]
        if len(segments) < EMULATOR_PATH_SEGMENTS:
            raise InputError(
                f"an Azure emulator URL is http://HOST:PORT/ACCOUNT/CONTAINER/prefix, "
                f"got {without_query(url)!r}"
            )
        account, container, prefix = segments[0], segments[1], "/".join(segments[2:])
        endpoint = f"{scheme}://{host}/{account}"
    return _check_container(
        Location(
            provider=Provider.AZURE,
            bucket=container,
            prefix=prefix,
            account=account,
            endpoint=endpoint,
            credentials=creds,
        )
    )


def _file(netloc: str, path: str, query: dict[str, str]) -> Location:
    if query:
        raise InputError("file:// URLs take no parameters")
    if netloc not in ("", "localhost"):
        raise InputError(f"file:// URLs name a local path, not a host ({netloc!r})")
    if not path.startswith("/") or path == "/":
        raise InputError("a file:// URL needs an absolute directory path, e.g. file:///var/backups")
    return Location(provider=Provider.FILE, bucket=path.rstrip("/"), prefix="")


#: query parameters that carry credentials (moved out of any URL pgvault writes down)
CREDENTIAL_PARAMS = (
    "DAV_USER",
    "DAV_PASSWORD",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AZURE_ACCOUNT_KEY",
    "AZURE_SAS_TOKEN",
    "CREDENTIALS",
)


def public_url(location: Location) -> str:
    """A URL that parse_location reads back as `location` without its credentials.

    Unlike display(), it keeps what is not secret and changes where the objects are: an
    S3 region and endpoint given in the query string, an azure:// account or endpoint.
    """
    tail = f"/{location.prefix}" if location.prefix else ""
    if location.provider in (Provider.FILE, Provider.WEBDAV):
        return location.display()
    if location.provider is Provider.S3:
        base, query = f"s3://{location.bucket}{tail}", _s3_public_query(location)
    elif location.provider is Provider.GCS:
        base = f"gs://{location.bucket}{tail}"
        query = [("AUTH", location.auth)] if location.auth in ("implicit", "default") else []
    else:
        base, query = _azure_public(location, tail)
    if not query:
        return base
    return f"{base}?{urlencode(query, quote_via=quote, safe='/:')}"


def _s3_public_query(location: Location) -> list[tuple[str, str]]:
    query = []
    if location.region:
        query.append(("AWS_REGION", location.region))
    if location.endpoint:
        query.append(("AWS_ENDPOINT", location.endpoint))
    if location.auth == "implicit":
        query.append(("AUTH", "implicit"))
    return query


def _azure_public(location: Location, tail: str) -> tuple[str, list[tuple[str, str]]]:
    endpoint = (location.endpoint or "").rstrip("/")
    account = location.account
    if account and endpoint.lower() == f"https://{account}.blob.core.windows.net".lower():
        return f"{endpoint}/{location.bucket}{tail}", []
    if account and endpoint and urlsplit(endpoint).path.strip("/") == account:
        return f"{endpoint}/{location.bucket}{tail}", []  # an emulator: /ACCOUNT/CONTAINER
    query = []
    if account:
        query.append(("AZURE_ACCOUNT_NAME", account))
    if endpoint:
        query.append(("AZURE_ENDPOINT", endpoint))
    return f"azure://{location.bucket}{tail}", query


def credential_params(location: Location) -> dict[str, str]:
    """The URL query parameters that carry this location's credentials (secret)."""
    creds = location.credentials
    params: dict[str, str] = {}
    if location.provider is Provider.S3:
        for key, value in (
            ("AWS_ACCESS_KEY_ID", creds.aws_access_key_id),
            ("AWS_SECRET_ACCESS_KEY", creds.aws_secret_access_key),
            ("AWS_SESSION_TOKEN", creds.aws_session_token),
        ):
            if value:
                params[key] = value
        if params and location.auth == "specified":
            params["AUTH"] = "specified"
    elif location.provider is Provider.AZURE:
        if creds.azure_account_key:
            params["AZURE_ACCOUNT_KEY"] = creds.azure_account_key
        if creds.azure_sas_token:
            params["AZURE_SAS_TOKEN"] = creds.azure_sas_token
    elif location.provider is Provider.WEBDAV:
        params.update(
            {
                k: v
                for k, v in (("DAV_USER", creds.dav_user), ("DAV_PASSWORD", creds.dav_password))
                if v
            }
        )
    elif location.provider is Provider.GCS and creds.gcs_service_account_json:
        encoded = base64.b64encode(creds.gcs_service_account_json.encode()).decode()
        params["CREDENTIALS"] = encoded
        if location.auth == "specified":
            params["AUTH"] = "specified"
    return params


def with_query(url: str, params: dict[str, str]) -> str:
    """`url` with more query parameters (credentials read back from a credentials file)."""
    if not params:
        return url
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}{urlencode(list(params.items()), quote_via=quote, safe='')}"
