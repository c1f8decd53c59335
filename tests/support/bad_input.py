"""Generated bad invocations of every batch command, each with the exit code the seeds give.

A `World` is a local catalog (a DONE backup of `pg1`, and a server `broken` whose
`backup.info` and `pgvault.json` are garbage) plus a state directory. `bad_input_cases`
crosses every command's positionals with malformed URLs, server names and flags (exit 3);
`operation_cases` are well-formed requests that fail (exit 1) or list around a corrupt
file (exit 0); `unreachable_cases` aim at 127.0.0.1 ports where nothing listens (exit 2).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from core.catalog.backup_info import DONE, BackupInfo, serialize
from core.catalog.layout import PGVAULT_MANIFEST, ServerLayout
from core.protection.template import default_policy_template
from core.storage import open_store
from core.urls import parse_location
from tests.support.emulators import AZURITE_ACCOUNT, S3_ENV, azurite_connection_string

SERVER = "pg1"
BROKEN = "broken"
BACKUP_ID = "20260105T101500"
BACKUP_NAME = "nightly"
GARBAGE_INFO_ID = "20260101T000000"
GARBAGE_JSON_ID = "20260102T000000"
ABSENT_ID = "20991231T235959"
WAL = "000000010000000000000001"
TOO_BIG = str(2**64)
#: SQLite's INTEGER ends at 2^63-1; the issue's job ids above it
JOB_ID_ABOVE = str(2**63)


@dataclass(frozen=True)
class Case:
    """One invocation (after `pgvault --batch`) and the exit code it must end with."""

    argv: tuple[str, ...]
    code: int
    why: str
    #: what the one-line error must name (a flag), when it must
    says: str | None = None

    @property
    def id(self) -> str:
        text = f"{self.why}:{' '.join(self.argv)}"
        return text.encode("unicode_escape").decode()[:120]


@dataclass(frozen=True)
class World:
    """Where the invocations point: a catalog, a WAL file, scratch and state directories."""

    root: Path

    @property
    def url(self) -> str:
        return f"file://{self.root / 'catalog'}"

    @property
    def wal_path(self) -> str:
        return str(self.root / "pg_wal" / WAL)

    @property
    def state_dir(self) -> str:
        return str(self.root / "state")

    @property
    def policy_path(self) -> str:
        """The default policy template, for the policy editing helpers."""
        return str(self.root / "policy.json")

    def scratch(self, name: str) -> str:
        """A path under the world that does not exist (a restore target, a WAL destination)."""
        return str(self.root / "scratch" / name)


def make_world(root: Path) -> World:
    world = World(root)
    (root / "pg_wal").mkdir(parents=True)
    (root / "scratch").mkdir()
    Path(world.wal_path).write_bytes(b"\0" * 16 * 1024 * 1024)
    Path(world.policy_path).write_text(json.dumps(default_policy_template()))
    with open_store(parse_location(world.url)) as store:
        good = ServerLayout(SERVER)
        info = BackupInfo(
            backup_id=BACKUP_ID,
            status=DONE,
            backup_name=BACKUP_NAME,
            begin_wal=WAL,
            end_wal=WAL,
            timeline=1,
            xlog_segment_size=16 * 1024 * 1024,
        )
        store.put_bytes(good.backup_info(BACKUP_ID), serialize(info))
        store.put_bytes(good.backup_file(BACKUP_ID, "data.tar"), b"\0" * 1024)
        broken = ServerLayout(BROKEN)
        store.put_bytes(broken.backup_info(GARBAGE_INFO_ID), b"\x00\xff garbage\nstatus\n=\n")
        store.put_bytes(
            broken.backup_info(GARBAGE_JSON_ID),
            serialize(BackupInfo(backup_id=GARBAGE_JSON_ID, status=DONE, timeline=1)),
        )
        store.put_bytes(broken.backup_file(GARBAGE_JSON_ID, PGVAULT_MANIFEST), b"{not json")
    return world


# ---- what is malformed ------------------------------------------------------------------------

BAD_URLS = (
    "s3://[abc/x",
    "notaurl",
    "s3://",
    "s3:///prefix",
    "ftp://host/x",
    "file://relative/dir",
    "file:///tmp/x?AUTH=1",
    "s3://bucket:99999/p",
    "s3://bucket/p?AUTH=bogus",
    "s3://bucket/p?AWS_ACCESS_KEY_ID=only-the-id",
    "s3://bucket/p?AWS_ENDPOINT=notaurl",
    "s3://bucket/p?UNKNOWN=1",
    "gs://bucket/p?AUTH=specified&CREDENTIALS=!!!",
    "gs://bucket/p?AUTH=specified",
    "azure://",
    "azure://c/p?AZURE_ENDPOINT=ftp://x",
    # names the store refuses: Azure's HTTP 400 and google-cloud-storage's ValueError
    "azure://UPPER/p",
    "https://acct.blob.core.windows.net/a--b/p",
    "gs://-ab/p",
    "https://",
    "/var/backups",
    "s3://bucket/p with space",
    "",
)
BAD_SERVERS = (
    "",
    "a/b",
    "..",
    ".",
    " lead",
    "trail ",
    "x" * 256,
    "é" * 128,  # 256 bytes of UTF-8
    "a\nb",
    "a\rb",
    "tab\tname",
    "nul\x7fdel",
    "line\u2028sep",
    "bad\udcffbyte",  # a byte that is not UTF-8, as Python hands it over
)
BAD_SIZES = ("1e400KB", "infKB", "-infKB", "nanKB", "0", "-1", "1.5", "KB", "1XB", "²MB", "x")
BAD_COUNTS = ("-1", "abc", "1e3", "²", "", "1.0", TOO_BIG, "99999999999999999999999")
BAD_POSITIVE = ("0", *BAD_COUNTS)
BAD_NAMES = (
    "latest",
    "last",
    "oldest",
    "first",
    "last-failed",
    "auto",
    "20260101T000000",
    "20260101T000000L",  # a logical backup's ID
    "a\nb",
    "x" * 256,
    "\x1b[31mred",
    " ",
)
BAD_TAGS = (
    ("a\nb,c",),
    ("k,v\nw",),
    ("aws:x,y",),
    (",v",),
    ("novalue",),
    ("k" * 129 + ",v",),
    ("k," + "v" * 257,),
    ("k,v", "k,w"),
    tuple(f"k{i},v" for i in range(11)),
    ("ké,v",),
    ("k,\x00",),
)
BAD_TARGETS = (
    ("--target-tli", "²"),
    ("--target-tli", "0"),
    ("--target-tli", "-1"),
    ("--target-tli", str(2**32)),
    ("--target-tli", "0x"),
    ("--target-tli", "newest"),
    ("--target-time", "0001-01-01"),
    ("--target-time", "last tuesday"),
    ("--target-time", "2026-13-01"),
    ("--target-lsn", "zz"),
    ("--target-lsn", "1/2/3"),
    ("--target-lsn", "FFFFFFFFF/0"),
    ("--target-xid", "-5"),
    ("--target-xid", "abc"),
    ("--target-xid", "²"),
    ("--target-xid", "1"),
    ("--target-xid", TOO_BIG),
    ("--target-name", ""),
    ("--target-name", "a\nb"),
    ("--target-name", "x" * 64),
    ("--target-exclusive",),
    ("--target-action", "promote"),
    ("--target-action", "explode"),
    ("--target-time", "2026-01-01", "--target-xid", "100"),
)
BAD_POLICIES = (
    "REDUNDANCY",
    "REDUNDANCY -1",
    "REDUNDANCY two",
    "REDUNDANCY ²",
    "RECOVERY WINDOW OF 99999999999999999 DAYS",
    "RECOVERY WINDOW OF 999999999999 MONTHS",
    "RECOVERY WINDOW OF 2 YEARS",
    "RECOVERY WINDOW OF -3 DAYS",
    "RECOVERY WINDOW 3 DAYS",
    "",
    "KEEP EVERYTHING",
)
BAD_TIMES = ("0001-01-01", "yesterday", "2026-02-30", "")
BAD_JOB_IDS = ("0", "-1", "abc", "²", JOB_ID_ABOVE, "99999999999999999999", "", "1.5")
#: flags of another provider for each kind of URL (a file:// destination takes none)
FOREIGN_FLAGS = (
    ("file", ("--endpoint-url", "http://127.0.0.1:9")),
    ("file", ("-P", "default")),
    ("file", ("--read-timeout", "5")),
    ("file", ("--addressing-style", "path")),
    ("file", ("--azure-credential", "default")),
    ("s3", ("--azure-credential", "managed-identity")),
    ("azure", ("--endpoint-url", "http://127.0.0.1:9")),
    ("azure", ("--aws-profile", "default")),
    ("gs", ("--addressing-style", "virtual")),
    ("gs", ("--azure-credential", "azure-cli")),
)
WRITE_FOREIGN_FLAGS = (
    ("file", ("-e", "AES256")),
    ("s3", ("--encryption-scope", "scope")),
    ("s3", ("--kms-key-name", "projects/p/keys/k")),
    ("azure", ("--sse-kms-key-id", "k", "-e", "aws:kms")),
    ("gs", ("-e", "AES256")),
)
LONG_NAMES = {"-P": "--aws-profile", "-e": "--encryption"}
URL_OF_KIND = {
    "s3": "s3://bucket/prefix",
    "azure": "azure://container/prefix",
    "gs": "gs://bucket/prefix",
}

Positionals = Callable[[str, str], tuple[str, ...]]


def positionals(world: World) -> dict[str, Positionals]:
    """Every command that takes a destination: its argv with a given URL and server name."""
    return {
        "backup": lambda url, server: ("backup", url, server),
        "restore": lambda url, server: ("restore", url, server, "latest", world.scratch("r")),
        "wal-archive": lambda url, server: ("wal-archive", url, server, world.wal_path),
        "wal-restore": lambda url, server: (
            "wal-restore",
            url,
            server,
            WAL,
            world.scratch("w"),
        ),
        "backup-list": lambda url, server: ("backup-list", url, server),
        "backup-show": lambda url, server: ("backup-show", url, server, BACKUP_ID),
        "backup-delete": lambda url, server: ("backup-delete", url, server, "-b", BACKUP_ID),
        "backup-keep": lambda url, server: ("backup-keep", url, server, BACKUP_ID, "--status"),
        "verify": lambda url, server: ("verify", url, server, BACKUP_ID),
        "backup-rehydrate": lambda url, server: ("backup-rehydrate", url, server, BACKUP_ID),
        "check-wal-archive": lambda url, server: ("check-wal-archive", url, server),
        "keys": lambda url, server: ("keys", "show", url, server),
        "copy": lambda url, server: (
            "copy",
            url,
            server,
            BACKUP_ID,
            "--to",
            f"file://{world.scratch('copy-to')}",
        ),
    }


WRITERS = ("backup", "wal-archive")


def _destination_cases(world: World) -> Iterator[Case]:
    for command, argv in positionals(world).items():
        for url in BAD_URLS:
            yield Case(argv(url, SERVER), 3, "url")
        for server in BAD_SERVERS:
            yield Case(argv(world.url, server), 3, "server name")
        foreign = FOREIGN_FLAGS + (WRITE_FOREIGN_FLAGS if command in WRITERS else ())
        for kind, flags in foreign:
            url = world.url if kind == "file" else URL_OF_KIND[kind]
            named = LONG_NAMES.get(flags[0], flags[0])
            yield Case(
                (*argv(url, SERVER)[:1], *flags, *argv(url, SERVER)[1:]), 3, "foreign", named
            )
        base = argv(world.url, SERVER)
        for flags in (
            ("--cloud-provider", "dropbox"),
            ("--cloud-provider", "aws-s3"),
            ("--bogus-flag",),
            ("--read-timeout", "0"),
            ("--endpoint-url", "notaurl"),
            ("--sse-customer-key", "/k"),
        ):
            yield Case((base[0], *flags, *base[1:]), 3, "flag")
        yield Case(base[:2], 3, "missing positionals")


def _flag_value_cases(world: World) -> Iterator[Case]:
    """Each flag that takes a number or a size, with every malformed value."""
    argv = positionals(world)
    azure = "azure://container/prefix"
    flags: list[tuple[tuple[str, ...], str, tuple[str, ...]]] = [
        (argv["backup"](world.url, SERVER), "-J", BAD_POSITIVE),
        (argv["backup"](world.url, SERVER), "-S", BAD_SIZES),
        (argv["backup"](world.url, SERVER), "--max-bandwidth", BAD_SIZES),
        (argv["backup"](world.url, SERVER), "--min-chunk-size", BAD_SIZES),
        (argv["backup"](world.url, SERVER), "--keepalive-interval", BAD_COUNTS),
        (argv["restore"](world.url, SERVER), "-J", BAD_POSITIVE),
        (argv["restore"](world.url, SERVER), "--max-bandwidth", BAD_SIZES),
        (argv["restore"](world.url, SERVER), "--wal-prefetch", BAD_COUNTS),
        (argv["verify"](world.url, SERVER), "-J", BAD_POSITIVE),
        (argv["verify"](world.url, SERVER), "--timeout", BAD_POSITIVE),
        (argv["wal-restore"](world.url, SERVER), "--parallel", BAD_COUNTS),
        (argv["backup-delete"](world.url, SERVER), "-m", BAD_COUNTS),
        (argv["backup-delete"](world.url, SERVER), "--batch-size", BAD_POSITIVE),
        (argv["check-wal-archive"](world.url, SERVER), "--timeline", BAD_POSITIVE),
        (argv["wal-archive"](world.url, SERVER), "--max-bandwidth", BAD_SIZES),
        (argv["wal-archive"](azure, SERVER), "--max-block-size", BAD_SIZES),
        (argv["wal-archive"](azure, SERVER), "--max-single-put-size", BAD_SIZES),
        (argv["wal-archive"](azure, SERVER), "--max-concurrency", BAD_POSITIVE),
        (argv["wal-archive"](world.url, SERVER), "--compression-level", ("bogus", TOO_BIG)),
        (argv["backup"](world.url, SERVER), "--read-timeout", BAD_POSITIVE),
    ]
    for base, flag, values in flags:
        for value in values:
            yield Case((base[0], f"{flag}={value}", *base[1:]), 3, flag)


def _command_cases(world: World) -> Iterator[Case]:
    argv = positionals(world)
    backup = argv["backup"](world.url, SERVER)
    for name in BAD_NAMES:
        yield Case((backup[0], "-n", name, *backup[1:]), 3, "backup name")
        yield Case((backup[0], "-t", "-n", name, *backup[1:]), 3, "backup name with -t")
    for tags in BAD_TAGS:
        for command in WRITERS:
            base = argv[command](world.url, SERVER)
            yield Case((base[0], *base[1:], "--tags", *tags), 3, "tags")
            yield Case((base[0], "-t", *base[1:], "--tags", *tags), 3, "tags with -t")
        yield Case((backup[0], *(f"--tag={t}" for t in tags), *backup[1:]), 3, "tag")
    # an empty database name names none (it took the physical path)
    yield Case((*backup, "--database", ""), 3, "empty database", "--database")
    for flag in ("--database", "--new-db-name", "--into-db"):
        yield Case(("restore", world.url, SERVER, f"{BACKUP_ID}L", flag, ""), 3, "empty db", flag)
    restore = argv["restore"](world.url, SERVER)
    for target in BAD_TARGETS:
        yield Case((*restore, *target), 3, "target")
    yield Case((*restore, "--tablespace", "nocolon"), 3, "tablespace")
    yield Case((*restore, "--tablespace", ":/x"), 3, "tablespace")
    # a directory argument under a regular file (the WAL file): named, not NotADirectoryError
    under_file = f"{world.wal_path}/below"
    head = restore[:-1]
    yield Case((*head, under_file), 3, "recovery dir under a file", f"{WAL} is not a directory")
    yield Case(
        (*restore, "--tablespace", f"ts:{under_file}"),
        3,
        "tablespace under a file",
        f"{WAL} is not a directory",
    )
    yield Case(
        (*restore, "--wal-restore-dir", under_file),
        3,
        "WAL dir under a file",
        f"{WAL} is not a directory",
    )
    # restore_command is one line of postgresql.auto.conf: a line break in the directory it
    # names (RECOVERY_DIR.pgvault by default) broke it, and restore exited 0
    control = "the control character"
    yield Case((*head, world.scratch("new\nline")), 3, "line break in the WAL dir", control)
    yield Case((*restore, "--wal-restore-dir", world.scratch("cr\rx")), 3, "CR in WAL dir", control)
    delete = ("backup-delete", world.url, SERVER)
    for policy in BAD_POLICIES:
        yield Case((*delete, "-r", policy), 3, "policy")
        yield Case((*delete, "-t", "-r", policy), 3, "policy with -t")
    for when in BAD_TIMES:
        yield Case((*delete, "-r", "RECOVERY WINDOW OF 1 DAYS", "--as-of", when), 3, "as-of")
    yield Case((*delete, "-r", "REDUNDANCY 1", "--as-of", "2026-01-01"), 3, "as-of")
    yield Case((*delete, "-r", "REDUNDANCY 1", "-b", BACKUP_ID), 3, "both")
    yield Case((*delete, "-r", "REDUNDANCY 1", "--force"), 3, "force")
    yield Case((*delete, "-b", BACKUP_ID, "--check-object-lock"), 3, "object lock")
    wal = argv["wal-archive"](world.url, SERVER)
    for flag in ("-J=2", "--async-timeout=5", "--pusher-idle=5", "--spool-dir=/tmp"):
        yield Case((wal[0], flag, *wal[1:]), 3, "fast path flag without --async")
    yield Case((*wal[:3], world.scratch("000000010000000000000002")), 3, "missing WAL file")
    # S3 Object Lock: refused on a local directory before anything is written
    yield Case((wal[0], "--immutability-days=2", *wal[1:]), 3, "immutability off S3")
    fast = ("wal-archive", "--async", f"--spool-dir={world.scratch('spool')}")
    for server in BAD_SERVERS:  # archive_command's fast path: checked before any pusher
        yield Case((*fast, world.url, server, world.wal_path), 3, "--async server name")
    for url in BAD_URLS[:6]:
        yield Case((*fast, url, SERVER, world.wal_path), 3, "--async url")
    for wal_name in ("../../etc/passwd", "garbage", "00000001000000000000000G", ""):
        yield Case(("wal-restore", world.url, SERVER, wal_name, world.scratch("w")), 3, "wal")
    keep = ("backup-keep", world.url, SERVER, BACKUP_ID)
    yield Case((*keep, "--target", "forever"), 3, "keep target")
    yield Case((*keep, "--status", "--release"), 3, "keep two actions")
    yield Case(("keys", "explode", world.url, SERVER), 3, "keys verb")
    for action, flags in (
        ("show", ("--encrypt-to", "age1qqqq")),
        ("show", ("--identity-file", "/id")),
        ("show", ("--encryption-passphrase-file", "/p")),
        ("init", ("--drop-passphrase",)),
        ("init", ("--identity-file", "/id")),
        ("rotate", ("--new-passphrase-file", "/p")),
        ("rotate", ("--no-recipients",)),
        ("rotate", ("--encrypt-to", "age1qqqq")),
        ("show", ("--detach",)),  # show is no job
    ):
        yield Case(("keys", action, world.url, SERVER, *flags), 3, "keys flag", flags[0])
    yield Case(("verify", world.url, SERVER, BACKUP_ID, "--pg-bindir", "/x"), 3, "drill only")
    yield Case(("check-wal-archive", world.url, SERVER, "--gaps", "--timeline", "2"), 3, "gaps")
    yield Case(
        ("check-wal-archive", world.url, SERVER, "--repair", "--timeline", "2"),
        3,
        "repair",
        "--repair and --timeline",  # the flag typed, not --gaps which it implies
    )
    yield from _wal_and_tier_cases(world)


def _wal_and_tier_cases(world: World) -> Iterator[Case]:
    """check-wal-archive --repair, backup-rehydrate and restore --rehydrate."""
    check = ("check-wal-archive", world.url, SERVER)
    for flags, says in (
        (("--repair",), "--pgdata DIR"),  # no source of segments
        (("--repair", "--pgdata", "/nonexistent-pgdata"), "/nonexistent-pgdata"),
        (("--repair", "--pgdata", "/tmp", "--host", "/run/pg"), "not both"),
        (("--repair", "--port", "notaport"), "notaport"),
        (("--repair", "-t", "--pgdata", "/tmp"), "-t"),
        (("--gaps", "--pgdata", "/tmp"), "--pgdata"),
        (("--host", "/run/pg"), "--host"),
    ):
        yield Case((*check, *flags), 3, "repair", says)
    rehydrate = ("backup-rehydrate", world.url, SERVER, BACKUP_ID)
    for poll in ("0", "-1", "nan", "inf", "soon", ""):
        yield Case((*rehydrate, "--poll", poll), 3, "poll interval")
        restore = ("restore", "--rehydrate", "--rehydrate-poll", poll, world.url, SERVER)
        yield Case((*restore, BACKUP_ID, world.scratch("rp")), 3, "rehydrate poll")
    yield Case(("backup-rehydrate", world.url, SERVER, "auto"), 3, "rehydrate auto")
    restore = ("restore", "--rehydrate", world.url, SERVER, BACKUP_ID)
    yield Case((*restore, world.scratch("rd"), "--detach"), 3, "rehydrate detached")
    yield Case((*restore, "--database", "db1"), 3, "rehydrate logical", "--rehydrate")
    long_name = ("restore", world.url, SERVER, "latest", "--new-db-name", "ü" * 32)
    yield Case(long_name, 3, "database name over 63 bytes", "64 bytes")


BAD_REFERENCES = ("", " ", "a\nb", "\udcff", "tab\there")


def _reference_cases(world: World) -> Iterator[Case]:
    """BACKUP, where a command names one: empty or not line-safe is bad input, not 'absent'."""
    url = world.url
    for ref in BAD_REFERENCES:
        yield Case(("backup-show", url, SERVER, ref), 3, "backup reference")
        yield Case(("backup-delete", url, SERVER, "-b", ref), 3, "backup reference")
        yield Case(("backup-keep", url, SERVER, ref, "--status"), 3, "backup reference")
        yield Case(("verify", url, SERVER, ref), 3, "backup reference")
        yield Case(("backup-rehydrate", url, SERVER, ref), 3, "backup reference")
        yield Case(("restore", url, SERVER, ref, world.scratch("r")), 3, "backup reference")
        yield Case(("backup", url, SERVER, "--incremental-from", ref), 3, "backup reference")
        to = ("--to", f"file://{world.scratch('copy-to')}")
        yield Case(("copy", url, SERVER, ref, *to), 3, "backup reference")


def _job_cases() -> Iterator[Case]:
    for verb in ("show", "watch", "pause", "resume", "cancel", "log"):
        for job_id in BAD_JOB_IDS:
            yield Case(("jobs", verb, job_id), 3, "job id")
        yield Case(("jobs", verb, "424242"), 3, "unknown job id")
    for flags in (
        ("--state", "exploded"),
        ("--since", "0001-01-01"),
        ("--since", "someday"),
        ("--since", "-5h"),
        ("--bogus",),
        ("--kind", "nosuchkind"),
        # an empty value (an unset shell variable) listed every job
        ("--state", ""),
        ("--state", ","),
        ("--kind", ""),
        ("--server", " "),
    ):
        yield Case(("jobs", "list", *flags), 3, "jobs list")
    yield Case(("jobs", "explode"), 3, "jobs verb")


def _protection_cases(world: World) -> Iterator[Case]:
    yield Case(("demo", "explode"), 3, "demo verb")
    yield Case(("vault", "create"), 3, "vault")
    yield Case(("vault", "show", "no-such-vault"), 3, "vault")
    yield Case(("policy", "show", "--vault", "v"), 3, "policy")
    yield Case(
        ("policy", "simulate", "--policy", "/nonexistent", "--from", "x", "--days", "1"),
        3,
        "policy",
    )
    yield Case(("backup-instance", "list", "--vault", "a\nb"), 3, "instance")
    initialize = ("backup-instance", "initialize", "--datasource", "host=x", "--policy", "p")
    for server in ("a\nb", "x" * 300, ""):
        yield Case((*initialize, "--server-name", server), 3, "instance server name")
    for name in ("a\nb", "x" * 300, "../up"):
        yield Case(("vault", "create", name, "--destination", "file:///v"), 3, "vault name")
    for url in BAD_URLS[:4]:
        yield Case(("vault", "create", "v", "--destination", url), 3, "vault destination")
    yield Case(("vault", "update", "v"), 3, "vault update: nothing to change")
    yield Case(("vault", "update", "v", "--notify", "json://h/x", "--no-notify"), 3, "vault update")
    yield Case(("vault", "update", "v", "--notify", "nosuch://u:pw-b4d1@h"), 3, "notify URL")
    yield Case(("vault", "update", "v", "--notify"), 3, "vault update --notify")
    # a URL holding a password, and a reference that cannot be read: refused before the vault
    yield Case(("vault", "update", "v", "--notify", "json://u:pw-b4d1@h/x"), 3, "notify secret")
    yield Case(("vault", "update", "v", "--notify", "env:PGV_UNSET_9"), 3, "notify reference")
    yield Case(("vault", "update", "v", "--wal-lag-threshold", "soon"), 3, "WAL lag threshold")
    yield Case(("backup-instance", "update", "--vault", "v", "--name", "i"), 3, "instance update")
    yield Case(("agent", "--interval", "0"), 3, "agent")
    yield Case(("agent", "--interval", TOO_BIG), 3, "agent")
    yield Case(("agent", "--now", "yesterday"), 3, "agent")
    yield Case(("status", "--now", "yesterday"), 3, "status")
    yield from _policy_helper_cases(world)


def _policy_helper_cases(world: World) -> Iterator[Case]:
    """What `policy create` would refuse, refused by the helper that takes it, named."""
    trigger = ("policy", "trigger", "set", "--policy", world.policy_path)
    weekly = "R/2026-12-06T22:00:00+00:00/P1W"
    for flags, says in (
        (("--schedule", "R/2026-12-06T25:00:00+00:00/P1W"), "--schedule"),
        (("--schedule", "PT15M"), "--schedule"),
        (("--schedule", weekly, "--time-zone", "Europe/Nowhere"), "--time-zone"),
    ):
        yield Case((*trigger, *flags), 3, "policy trigger set", says)
    yield Case(
        ("policy", "trigger", "create-schedule", "--interval-type", "Daily", "--interval-count",
         "1", "--schedule-days", "2026-12-06T25:00:00"),
        3, "policy trigger create-schedule", "--schedule-days",
    )  # fmt: skip
    lifecycle = ("policy", "retention-rule", "create-lifecycle", "--source-datastore", "VaultStore")
    for value in ("-1", "0"):
        # one message per bound, the true one, whichever side of it the value is
        says = f"'{value}' must be at least 1"
        yield Case(("agent", "--interval", value), 3, "count below 1", says)
        yield Case(
            ("policy", "simulate", "--policy", world.policy_path, "--from", "2026-01-01",
             "--days", value),
            3, "count below 1", says,
        )  # fmt: skip
        yield Case(
            (*lifecycle, "--retention-duration-type", "Months", "--retention-duration-count",
             value),
            3, "count below 1", says,
        )  # fmt: skip
    yield Case(
        (*lifecycle, "--retention-duration-type", "Months", "--retention-duration-count", "6",
         "--target-datastore", "ArchiveStore", "--copy-option", "CustomCopyOption"),
        3, "custom copy without its duration", "--copy-after-duration",
    )  # fmt: skip
    yield Case(("status", "--vault"), 3, "status")
    yield Case(("no-such-command",), 3, "command")
    yield Case((), 3, "no command")


def bad_input_cases(world: World) -> list[Case]:
    """Several hundred invocations that must each exit 3 with one line, never a traceback."""
    return [
        *_destination_cases(world),
        *_flag_value_cases(world),
        *_command_cases(world),
        *_reference_cases(world),
        *_job_cases(),
        *_protection_cases(world),
    ]


def operation_cases(world: World) -> list[Case]:
    """Well-formed invocations on a good and a corrupt catalog: exit 1 when the operation
    fails, 0 for a listing that skips (and names) what it cannot read."""
    url = world.url
    return [
        Case(("backup-list", url, BROKEN), 0, "garbage backup.info listed around"),
        Case(("backup-list", url, BROKEN, "--format", "json"), 0, "garbage backup.info"),
        Case(("backup-show", url, SERVER, ABSENT_ID), 1, "absent backup"),
        Case(("backup-show", url, SERVER, "no-such-name"), 1, "absent name"),
        Case(("restore", url, SERVER, ABSENT_ID, world.scratch("r1")), 1, "absent backup"),
        Case(("verify", url, SERVER, ABSENT_ID), 1, "absent backup"),
        Case(("backup-rehydrate", url, SERVER, ABSENT_ID), 1, "absent backup"),
        Case(
            ("copy", url, SERVER, ABSENT_ID, "--to", f"file://{world.scratch('c1')}"),
            1,
            "absent backup",
        ),
        Case(("backup-keep", url, SERVER, ABSENT_ID, "--status"), 1, "absent backup"),
        Case(("backup-delete", url, SERVER, "-b", ABSENT_ID), 1, "absent backup"),
        Case(
            ("wal-restore", url, SERVER, "000000010000000000000099", world.scratch("w1")),
            1,
            "absent WAL",
        ),
        Case(
            ("backup", "-h", world.scratch("no-socket"), "-p", "1", url, SERVER), 1, "no PostgreSQL"
        ),
        Case(("backup-show", url, BROKEN, GARBAGE_INFO_ID), 1, "garbage backup.info"),
        Case(
            ("restore", url, BROKEN, GARBAGE_INFO_ID, world.scratch("r2")), 1, "garbage backup.info"
        ),
        Case(("verify", url, BROKEN, GARBAGE_JSON_ID), 1, "garbage pgvault.json"),
        Case(
            ("restore", url, BROKEN, GARBAGE_JSON_ID, world.scratch("r3")),
            1,
            "garbage pgvault.json",
        ),
        Case(("check-wal-archive", url, SERVER, "--gaps"), 1, "WAL missing"),
    ]


def unreachable_env(port: int) -> dict[str, str]:
    """Credentials that would do, for endpoints where nothing listens (nothing reaches AWS)."""
    endpoint = f"http://127.0.0.1:{port}"
    return {
        **S3_ENV,
        "AZURE_STORAGE_CONNECTION_STRING": azurite_connection_string(endpoint),
        "STORAGE_EMULATOR_HOST": endpoint,
        "AWS_EC2_METADATA_DISABLED": "true",
    }


def unreachable_cases(world: World, port: int) -> list[Case]:
    """Every command that reaches a store, at each provider, where nothing listens: exit 2."""
    endpoint = f"http://127.0.0.1:{port}"
    urls = {
        "s3": ("s3://bucket/prefix", ("--endpoint-url", endpoint)),
        "azure": (
            f"{endpoint}/{AZURITE_ACCOUNT}/container/prefix",
            ("--cloud-provider", "azure-blob-storage"),
        ),
        "gs": ("gs://bucket/prefix", ()),
    }
    cases = []
    kinds = list(urls.values())
    for index, (command, argv) in enumerate(positionals(world).items()):
        if command not in ("keys", "wal-restore", "wal-archive"):  # -t: one try, no retries
            for url, flags in kinds:
                base = argv(url, SERVER)
                cases.append(Case((base[0], "-t", *flags, *base[1:]), 2, "unreachable -t"))
        if command != "backup":  # backup connects to PostgreSQL first
            # the store retries before it gives up: one provider per command, in turn
            url, flags = kinds[index % len(kinds)]
            base = argv(url, SERVER)
            cases.append(Case((base[0], *flags, *base[1:]), 2, "unreachable"))
    return cases


def environment(world: World) -> dict[str, str]:
    """The environment every invocation runs in: no real cloud credentials, local time UTC."""
    return {"HOME": str(world.root), "TZ": "UTC", **unreachable_env(9)} | {
        k: v for k, v in os.environ.items() if k.startswith("PG") and k != "PGVAULT_STATE_DIR"
    }
