"""The backup job kind: what it stores about a request, and how a failed one resumes."""

from __future__ import annotations

from core.backup import BackupRequest
from core.backup.job import BACKUP
from core.jobs import JobState, load_kind
from core.jobs.kinds import decode_request, encode_request
from core.jobs.model import Job
from core.jobs.results import JobDetails
from core.postgres.connection import ConnectionParams
from core.secrets import without_password
from core.urls import parse_location


def test_passwords_leave_conninfo_strings_and_uris() -> None:
    assert without_password("host=db password=s3cr3t user=me") == "host=db user=me"
    assert without_password("host=db password='a b c' port=5") == "host=db port=5"
    assert without_password("postgresql://me:s3cr3t@db/app") == "postgresql://me@db/app"
    assert without_password("postgresql://db/app?password=s3cr3t&sslmode=off") == (
        "postgresql://db/app?sslmode=off"
    )
    assert without_password("postgres") == "postgres"


def test_the_stored_request_has_no_credentials_and_resumes_the_same_backup() -> None:
    request = BackupRequest(
        location=parse_location(
            "s3://bucket/pfx?AWS_ACCESS_KEY_ID=id&AWS_SECRET_ACCESS_KEY=sekritsekrit"
        ),
        server="pg-main",
        connection=ConnectionParams(dbname="host=db password=pw-pw-pw"),
        compression="lz4",
    )
    assert load_kind("backup") is BACKUP
    options = BACKUP.options(request)
    assert "sekritsekrit" not in str(options) and "pw-pw-pw" not in str(options)
    stored = BACKUP.decode(options)
    assert stored.location.credentials.is_empty() and stored.compression == "lz4"
    # The full request (credentials included) goes to a worker through a pipe, intact.
    assert decode_request(BACKUP, encode_request(BACKUP, request)) == request
    info = BACKUP.describe(request)
    assert (info.server, info.destination) == ("pg-main", "s3://bucket/pfx")
    failed = Job(
        id=3, kind="backup", state=JobState.FAILED, details=JobDetails(backup_id="20260101T000000")
    )
    assert BACKUP.resume is not None
    assert BACKUP.resume(stored, failed).resume == "20260101T000000"
    early = Job(id=4, kind="backup", state=JobState.FAILED)  # died before it had an ID
    assert BACKUP.resume(stored, early).resume is None


def test_the_stored_keys_request_keeps_what_changes_and_no_secret() -> None:
    from core.crypto import Passphrase, generate_identity
    from core.keyjob import KEYS
    from core.keyring import KeysRequest

    operator = generate_identity()
    request = KeysRequest(
        action="rewrap",
        location=parse_location(
            "s3://bucket/pfx?AWS_ACCESS_KEY_ID=id&AWS_SECRET_ACCESS_KEY=sekritsekrit"
        ),
        server="pg-main",
        recipients=(str(operator.recipient()),),
        passphrase=Passphrase("the old passphrase 1a"),
        new_passphrase=Passphrase("the new passphrase 2b"),
        identities=(operator,),
    )
    assert load_kind("keys") is KEYS
    options = str(KEYS.options(request))
    for secret in ("sekritsekrit", "the old passphrase", "the new passphrase", operator.secret()):
        assert secret not in options and secret not in repr(request)
    stored = KEYS.decode(KEYS.options(request))
    assert stored.recipients == request.recipients and stored.action == "rewrap"
    assert (stored.passphrase, stored.new_passphrase, stored.identities) == (None, None, ())
    info = KEYS.describe(request)
    assert (info.server, info.destination) == ("pg-main", "s3://bucket/pfx")
    assert info.description == "keys rewrap of pg-main in s3://bucket/pfx"
    assert KEYS.resume is None  # a key change is one write: run it again


def test_a_keys_request_reaches_a_detached_process_whole() -> None:
    """What a detached `keys` job's process reads from its pipe: every secret (the
    identities' raw bytes too, which JSON cannot hold as such) comes back equal."""
    from core.crypto import Passphrase, generate_identity
    from core.keyjob import KEYS
    from core.keyring import KeysRequest

    operators = (generate_identity(), generate_identity())
    request = KeysRequest(
        action="rewrap",
        location=parse_location(
            "s3://bucket/pfx?AWS_ACCESS_KEY_ID=id&AWS_SECRET_ACCESS_KEY=sekritsekrit"
        ),
        server="pg-main",
        passphrase=Passphrase("the old passphrase 3c", log_n=12),
        new_passphrase=Passphrase("the new passphrase 4d"),
        identities=operators,
    )
    piped = decode_request(KEYS, encode_request(KEYS, request))
    assert piped == request
    assert [i.secret() for i in piped.identities] == [i.secret() for i in operators]
