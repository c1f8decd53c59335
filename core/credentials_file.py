"""The credentials file a restore writes for restore_command (`wal-restore --credentials-file`).

postgresql.auto.conf is world-readable in many setups, copied into every later base backup
and shown by `SHOW restore_command`: no secret may go there. `pgvault restore` writes the
credentials it used into a JSON file of mode 0600 owned by the data directory's owner,
outside the data directory, and names it in restore_command:

    {"format": 1, "url": {QUERY_PARAMETER: value}, "environment": {VARIABLE: value}}

`url` holds the credentials the source URL carried in its query string (added back to the
URL); `environment` holds the variables read from pgvault's environment (set for that
wal-restore process only). A file another user can read or write, or that is not a plain
file of this user, is refused.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
from dataclasses import dataclass, field

from core.errors import InputError, PgvaultError
from core.secrets import register_secret
from core.urls import with_query

FORMAT = 1
#: values that locate or identify, not authenticate: not masked in messages
NOT_SECRET = {
    "AUTH",
    "AWS_ACCESS_KEY_ID",
    "AWS_CA_BUNDLE",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_REGION",
    "AZURE_STORAGE_ACCOUNT",
    "DAV_USER",
    # a proxy's password is registered where its URL is read (core.storage.proxies)
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "PGVAULT_DAV_USER",
    "REQUESTS_CA_BUNDLE",
    "SSL_CERT_FILE",
    "STORAGE_EMULATOR_HOST",
}


class CredentialsFileError(InputError):
    """The credentials file is missing, unsafe or malformed."""


@dataclass(frozen=True)
class StoredCredentials:
    url: dict[str, str] = field(default_factory=dict, repr=False)
    environment: dict[str, str] = field(default_factory=dict, repr=False)

    def is_empty(self) -> bool:
        return not self.url and not self.environment


def write_credentials(
    path: str, credentials: StoredCredentials, uid: int | None = None, gid: int | None = None
) -> None:
    """Write the file atomically, mode 0600, owned by uid:gid when given (as root)."""
    document = {
        "format": FORMAT,
        "url": credentials.url,
        "environment": credentials.environment,
    }
    raw = (json.dumps(document, indent=1, sort_keys=True) + "\n").encode()
    temp = f"{path}.{os.getpid()}.tmp"
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            if uid is not None and gid is not None:
                os.fchown(fd, uid, gid)
            os.fchmod(fd, 0o600)
            os.write(fd, raw)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise PgvaultError(f"cannot write the credentials file {path}: {exc.strerror}") from None


#: far above what `restore` writes (a few URL parameters and variables)
MAX_SIZE = 1024 * 1024


def load_credentials(path: str) -> StoredCredentials:
    """Read and check a credentials file; every value is registered as a secret."""
    try:
        # O_NONBLOCK: a FIFO is refused below, not waited on for a writer
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as exc:
        raise CredentialsFileError(
            f"cannot read the credentials file {path}: {exc.strerror}"
        ) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise CredentialsFileError(f"the credentials file {path} is not a regular file")
        if st.st_uid != os.geteuid():
            raise CredentialsFileError(
                f"the credentials file {path} belongs to uid {st.st_uid}, not to this user "
                f"(uid {os.geteuid()})"
            )
        if st.st_mode & 0o077:
            raise CredentialsFileError(
                f"the credentials file {path} is accessible to other users: chmod 600 it"
            )
        if st.st_size > MAX_SIZE:
            raise CredentialsFileError(
                f"the credentials file {path} is larger than 1 MiB: not one pgvault wrote"
            )
        raw = os.read(fd, MAX_SIZE + 1)
    finally:
        os.close(fd)
    try:
        document = json.loads(raw)
        if document.get("format") != FORMAT:
            raise ValueError("unknown format")
        url = {str(k): str(v) for k, v in document.get("url", {}).items()}
        environment = {str(k): str(v) for k, v in document.get("environment", {}).items()}
    except (ValueError, AttributeError, RecursionError) as exc:
        raise CredentialsFileError(f"the credentials file {path} is malformed ({exc})") from None
    for name, value in [*url.items(), *environment.items()]:
        if name not in NOT_SECRET:
            register_secret(value)
    return StoredCredentials(url, environment)


def apply_credentials_file(path: str, url: str) -> str:
    """Load the file, put its variables in this process's environment (and so in any
    child's, the WAL pusher's too) and return `url` with its URL parameters added."""
    stored = load_credentials(path)
    os.environ.update(stored.environment)
    return with_query(url, stored.url)
