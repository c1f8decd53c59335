"""What makes PostgreSQL recover a restored directory: restore_command, targets, signal file.

restore_command runs `pgvault --batch wal-restore --abort-on-error` against the same source,
server and connection options the restore used. `--abort-on-error` because during archive
recovery PostgreSQL takes any exit code from 1 to 125 for "no more WAL": a network failure
or a damaged segment would otherwise end recovery early (and, without a target, promote
there); with it such failures stop the server, and starting it again resumes recovery.

Credentials never go into postgresql.auto.conf. In `file` mode (the default) the restore
copies what it used itself into a 0600 credentials file owned by the data directory's
owner (core.credentials_file) and restore_command names that file: the URL's query-string
credentials, credential variables of pgvault's environment (AWS keys, Azure connection
string, SAS token or key), static AWS keys resolved from a profile, a Google service-account
key file. What the server can obtain by itself (an instance role, a managed identity,
--azure-credential) is not copied. In `environment` mode nothing is written: the server's
own environment (a systemd drop-in, the postgres user's ~/.aws) must provide credentials.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from core.credentials_file import StoredCredentials
from core.restore.targets import RecoveryTarget
from core.storage import StoreConfig
from core.urls import Location, Provider, credential_params, public_url

log = logging.getLogger("pgvault.restore")

CREDENTIAL_MODES = ("file", "environment")
PG15 = 150000  # archive_library appeared in PostgreSQL 15
#: hold: archive_command = 'false' (nothing archived, nothing lost: the WAL waits in pg_wal
#: until an operator sets archive_command, as barman's recover does); preserve: the
#: backup's settings; off: archive_mode = off
ARCHIVE_MODES = ("hold", "preserve", "off")
CREDENTIALS_FILE = "credentials.json"
SPOOL_DIR = "wal-spool"
#: AWS credential sources that are keys pgvault can copy (not roles the server can assume)
_STATIC_AWS = {"env", "shared-credentials-file", "config-file", "explicit", "boto-config"}
_PASS_THROUGH = {
    Provider.S3: ("AWS_DEFAULT_REGION", "AWS_REGION", "AWS_CA_BUNDLE", "AWS_ENDPOINT_URL"),
    Provider.AZURE: ("AZURE_STORAGE_ACCOUNT",),
    Provider.GCS: ("STORAGE_EMULATOR_HOST",),
    Provider.FILE: (),
    Provider.WEBDAV: (
        *("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "PGVAULT_DAV_USER"),
        # restore_command reaches the server as this restore did (core.storage.proxies)
        *("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy"),
    ),
}
_AZURE_VARIABLES = (
    "AZURE_STORAGE_CONNECTION_STRING",
    "AZURE_STORAGE_SAS_TOKEN",
    "AZURE_STORAGE_KEY",
)


@dataclass(frozen=True)
class WalAccess:
    """How restore_command reaches the WAL archive: its arguments and what it needs."""

    argv: tuple[str, ...]
    credentials: StoredCredentials
    notes: tuple[str, ...] = field(default=())


def _aws_environment(
    config: StoreConfig, location: Location
) -> tuple[dict[str, str], bool, list[str]]:
    """Static AWS keys as pgvault resolves them (env or profile); drop -P when copied."""
    import boto3.session
    import botocore.exceptions

    try:
        session = boto3.session.Session(profile_name=config.aws_profile)
        resolved = session.get_credentials()
    except botocore.exceptions.BotoCoreError as exc:
        return {}, False, [f"AWS credentials could not be resolved here ({exc})"]
    if resolved is None:
        return {}, False, ["no AWS credentials here: the server's environment must provide them"]
    method = getattr(resolved, "method", "")
    if method not in _STATIC_AWS:
        return (
            {},
            False,
            [
                f"AWS credentials come from {method}: restore_command obtains its own the "
                "same way (they are not copied)"
            ],
        )
    frozen = resolved.get_frozen_credentials()
    environment = {
        "AWS_ACCESS_KEY_ID": str(frozen.access_key),
        "AWS_SECRET_ACCESS_KEY": str(frozen.secret_key),
    }
    if frozen.token:
        environment["AWS_SESSION_TOKEN"] = frozen.token
    if session.region_name and not location.region:
        environment["AWS_DEFAULT_REGION"] = session.region_name
    return environment, bool(config.aws_profile), []


def _gcs_key() -> tuple[dict[str, str], list[str]]:
    path = os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
    if not path:
        return {}, []
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
        kind = json.loads(text).get("type")
    except (OSError, ValueError, AttributeError) as exc:
        return {}, [f"GOOGLE_APPLICATION_CREDENTIALS ({path}) could not be read: {exc}"]
    if kind != "service_account":
        return {}, [
            f"GOOGLE_APPLICATION_CREDENTIALS holds {kind} credentials, which are not copied: "
            "the server's environment must provide them"
        ]
    encoded = base64.b64encode(text.encode()).decode()
    return {"AUTH": "specified", "CREDENTIALS": encoded}, []


def capture_credentials(
    location: Location, config: StoreConfig, mode: str
) -> tuple[StoredCredentials, bool, list[str]]:
    """What restore_command needs that the server may lack; and whether -P is dropped."""
    url = credential_params(location)
    notes: list[str] = []
    if mode == "environment":
        if url:
            notes.append(
                "the URL's credentials are not passed to restore_command "
                "(--wal-credentials-via environment): the server's environment must provide them"
            )
        return StoredCredentials(), False, notes
    environment: dict[str, str] = {}
    drop_profile = False
    provider = location.provider
    if provider is Provider.S3 and not url:
        environment, drop_profile, notes = _aws_environment(config, location)
    elif provider is Provider.AZURE and not url and not config.azure_credential:
        for name in _AZURE_VARIABLES:
            if os.environ.get(name):
                environment[name] = os.environ[name]
                break
        else:
            notes.append("no Azure key in the environment: the server must authenticate itself")
    elif provider is Provider.GCS and not url:
        url, notes = _gcs_key()
    elif (
        provider is Provider.WEBDAV
        and "DAV_PASSWORD" not in url
        and os.environ.get("PGVAULT_DAV_PASSWORD")
    ):  # a user in the URL, its password in pgvault's environment
        environment["PGVAULT_DAV_PASSWORD"] = os.environ["PGVAULT_DAV_PASSWORD"]
    for name in _PASS_THROUGH[provider]:
        value = os.environ.get(name)
        if value and name not in environment:
            environment[name] = value
    return StoredCredentials(url=url, environment=environment), drop_profile, notes


def wal_restore_argv(  # noqa: PLR0913, PLR0917 - restore_command's inputs, in its argv's order
    pgvault: str,
    location: Location,
    server: str,
    config: StoreConfig,
    prefetch: int,
    spool_dir: str | None,
    credentials_file: str | None,
    drop_profile: bool,
) -> tuple[str, ...]:
    """The restore_command's arguments ('%f' and '%p' last)."""
    argv = [pgvault, "--batch", "wal-restore", "--abort-on-error"]
    if prefetch > 1 and spool_dir:
        argv += ["-p", str(prefetch), "--spool-dir", spool_dir]
    if credentials_file:
        argv += ["--credentials-file", credentials_file]
    if location.provider not in (Provider.FILE, Provider.WEBDAV):  # dav:// says it all
        argv += ["--cloud-provider", location.provider.value]
    if config.endpoint_url:
        argv += ["--endpoint-url", config.endpoint_url]
    if config.aws_profile and not drop_profile:
        argv += ["-P", config.aws_profile]
    if config.read_timeout:
        argv += ["--read-timeout", str(config.read_timeout)]
    if config.addressing_style:
        argv += ["--addressing-style", config.addressing_style]
    if config.azure_credential:
        argv += ["--azure-credential", config.azure_credential]
    argv += [public_url(location), server, "%f", "%p"]
    return tuple(argv)


def command_line(argv: Sequence[str]) -> str:
    """A shell command line for restore_command: quoted, '%' doubled except in %f and %p."""
    words = []
    for word in argv:
        if word in ("%f", "%p"):
            words.append(word)
        else:
            words.append(shlex.quote(word).replace("%", "%%"))
    return " ".join(words)


def conf_value(value: str) -> str:
    """A quoted postgresql.conf value, escaped as ALTER SYSTEM writes it."""
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def recovery_settings(
    target: RecoveryTarget,
    restore_command: str,
    archive_mode: str,
    recovery_end_command: str | None,
    server_version: int | None = None,
) -> list[tuple[str, str]]:
    """The settings appended to postgresql.auto.conf (later lines win over the backup's).

    Every target setting is written so that one the source server carried cannot combine
    with ours ("multiple recovery targets specified"): the unused ones empty and first,
    because PostgreSQL refuses a target assigned while another is set, empty or not.
    """
    settings = [("restore_command", restore_command)]
    chosen = {
        "recovery_target": "immediate" if target.immediate else "",
        "recovery_target_time": target.time or "",
        "recovery_target_lsn": target.lsn or "",
        "recovery_target_xid": target.xid or "",
        "recovery_target_name": target.name or "",
    }
    settings += [(name, value) for name, value in chosen.items() if not value]
    settings += [(name, value) for name, value in chosen.items() if value]
    settings.append(("recovery_target_inclusive", "off" if target.exclusive else "on"))
    action = target.effective_action
    if action:
        settings.append(("recovery_target_action", action))
    if target.timeline:
        settings.append(("recovery_target_timeline", target.timeline))
    if recovery_end_command:
        settings.append(("recovery_end_command", recovery_end_command))
    if archive_mode == "off":
        settings.append(("archive_mode", "off"))
    elif archive_mode == "hold":
        # A restored copy that archived into the backup's archive would add its timeline
        # to the history every later restore of the source follows.
        if (server_version or 0) >= PG15:
            settings.append(("archive_library", ""))
        settings.append(("archive_command", "false"))
    return settings


SETTINGS_HEADER = "# Recovery settings written by pgvault restore of backup"


def settings_text(settings: list[tuple[str, str]], backup_id: str, server: str) -> str:
    when = datetime.now().astimezone().isoformat(timespec="seconds")
    lines = [
        "",
        f"{SETTINGS_HEADER} {backup_id} (server {server})",
        f"# on {when}. PostgreSQL reads the last value of each setting: these win.",
    ]
    lines += [f"{name} = {conf_value(value)}" for name, value in settings]
    return "\n".join(lines) + "\n"


def without_earlier_settings(text: str, names: set[str]) -> str:
    """postgresql.auto.conf without what an earlier pgvault restore appended and this one
    writes again (a backup of a restored copy carries that block): the block's header and
    those settings go, any other setting of it stays as it was."""
    kept: list[str] = []
    inside = False
    for line in text.splitlines(keepends=True):
        if line.startswith(SETTINGS_HEADER):
            inside = True
            if kept and not kept[-1].strip():
                kept.pop()  # the blank line settings_text puts before its header
            continue
        if inside and line.startswith("# on "):
            continue
        name = line.split("=", 1)[0].strip()
        if inside and "=" in line and not line.lstrip().startswith("#"):
            if name in names:
                continue
        else:
            inside = False
        kept.append(line)
    return "".join(kept)


#: settings of postgresql.conf naming a file or directory (include_if_exists may be absent)
CONF_PATHS = ("hba_file", "ident_file", "include", "include_dir")


def conf_setting(line: str) -> tuple[str, str] | None:
    """(name, value) of one postgresql.conf line that names a place; None for any other."""
    text = line.split("#", 1)[0].strip()
    name, sep, value = text.partition("=")
    if not sep:
        try:
            name, value = text.split(None, 1)
        except ValueError:  # a lone word (or nothing): not a setting
            return None
    name, value = name.strip().lower(), value.strip().strip("'")
    return (name, value) if name in ("data_directory", "external_pid_file", *CONF_PATHS) else None


def _conf_settings(path: str) -> dict[str, str]:
    """The last value of each setting of a postgresql.conf that names a place ({} unread)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            lines = fh.readlines()
    except OSError:
        return {}
    return dict(found for found in map(conf_setting, lines) if found)


def foreign_setting(pgdata: str, name: str, value: str) -> bool:
    """Whether a setting conf_setting found sends a server on `pgdata` to the source's places
    or to a file or directory that is not there (PostgreSQL would then refuse to start)."""
    if name == "data_directory":
        return os.path.realpath(value) != os.path.realpath(pgdata)
    if name == "external_pid_file":
        return bool(value)
    return bool(value) and not os.path.exists(os.path.join(pgdata, value))


def config_warnings(pgdata: str) -> list[str]:
    """Settings of the restored postgresql.conf that point outside the restored directory
    (a pg_ctlcluster cluster's, copied from /etc/postgresql, names the source's places)."""
    found = _conf_settings(os.path.join(pgdata, "postgresql.conf"))
    warnings = []
    directory = found.get("data_directory")
    if directory and os.path.realpath(directory) != os.path.realpath(pgdata):
        warnings.append(
            f"the restored postgresql.conf sets data_directory = '{directory}': PostgreSQL "
            f"started on {pgdata} would use that directory instead; start it with "
            f"-c data_directory={pgdata} or edit the setting"
        )
    pid_file = found.get("external_pid_file")
    if pid_file:
        warnings.append(
            f"the restored postgresql.conf sets external_pid_file = '{pid_file}': a server "
            f"started on {pgdata} would write the source's PID file there; start it with "
            "-c external_pid_file='' or edit the setting"
        )
    for key in CONF_PATHS:
        setting = found.get(key)
        # A relative one is read from the directory of the configuration file: the restored one.
        place = os.path.join(pgdata, setting) if setting else ""
        if setting and not os.path.exists(place):
            warnings.append(
                f"the restored postgresql.conf sets {key} = '{setting}', but {place} does not "
                "exist here: PostgreSQL will not start until it does or the setting is edited"
            )
    return warnings
