"""Every change of a key file is a `keys` job (issue 16): what changed is on record, no secret.

init, rotate and rewrap run on a real destination (a local directory, and S3 on moto);
`jobs list`, `jobs show --format json` and `jobs log` then tell the key file's history:
action, generation, operator recipients added and removed (public age1... strings), what
happened to the passphrase. Neither the job store nor any output holds a passphrase, an
operator identity or a data key. Removing the last way to unwrap the keys is refused
(exit 3) with the key file left as it was, and the refusal is on record as a failed job.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from core.catalog.lock import acquire, release
from core.crypto import Passphrase, parse_keyfile, read_identity_file, unlock
from core.errors import DecryptionFailed
from core.keyring import KEYS_LOCK, KEYS_LOCK_TTL
from core.urls import parse_location
from tests.support.cli import pgvault, spawn
from tests.support.destinations import TestDestination
from tests.support.jobs import wait_for
from tests.support.pitr import make_source, new_target, restore, restored_server
from tests.support.postgres import chown_tree, wait_for_recovery_end

SERVER = "pg1"
PASSPHRASE = "old passphrase of the key jobs test 3c1d"
NEW_PASSPHRASE = "new passphrase of the key jobs test 9e42"


def _secret_file(directory: Path, name: str, text: str) -> str:
    path = directory / name
    path.write_text(text + "\n")
    path.chmod(0o600)
    return str(path)


def _operator(directory: Path, name: str) -> tuple[str, str, str]:
    """An age-keygen identity file: its path, its recipient, its AGE-SECRET-KEY- string."""
    path = directory / name
    subprocess.run(["age-keygen", "-o", str(path)], check=True, capture_output=True)
    path.chmod(0o600)
    lines = path.read_text().splitlines()
    secret = next(line for line in lines if line.startswith("AGE-SECRET-KEY-"))
    recipient = next(line for line in lines if "public key: " in line).split(": ", 1)[1]
    return str(path), recipient.strip(), secret


class Keys:
    """The keys and jobs commands on one destination, with a job store of this test's own."""

    def __init__(self, dest: TestDestination, state: Path) -> None:
        self.dest = dest
        self.env = {**dest.env, "PGVAULT_STATE_DIR": str(state)}
        self.outputs: list[str] = []

    def keys(self, *args: str) -> subprocess.CompletedProcess[str]:
        done = pgvault("keys", *args, *self.dest.cli_args, self.dest.url, SERVER, env=self.env)
        self.outputs += [done.stdout, done.stderr]
        return done

    def jobs(self, *args: str) -> Any:
        done = pgvault("jobs", *args, env=self.env)
        assert done.returncode == 0, done.stderr
        self.outputs += [done.stdout, done.stderr]
        return json.loads(done.stdout) if "json" in args else done.stdout

    def keyfile_bytes(self) -> bytes:
        with self.dest.store() as store:
            return store.get_bytes(f"{SERVER}/pgvault.keys")


@pytest.mark.parametrize("provider", ["file", "s3"])
def test_every_key_change_is_a_job_that_records_what_changed_and_no_secret(
    make_dest: Callable[..., TestDestination], tmp_path: Path, provider: str
) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir(mode=0o700)
    state = tmp_path / "state"
    run = Keys(make_dest(provider), state)
    passfile = _secret_file(secrets, "pass", PASSPHRASE)
    newpass = _secret_file(secrets, "newpass", NEW_PASSPHRASE)
    first, first_recipient, first_secret = _operator(secrets, "first.key")
    second, second_recipient, second_secret = _operator(secrets, "second.key")

    steps = [
        ("init", "--encryption-passphrase-file", passfile, "--encrypt-to", first_recipient),
        ("rotate", "--encryption-passphrase-file", passfile),
        ("rewrap", "--identity-file", first, "--new-passphrase-file", newpass),
        ("rewrap", "--identity-file", first, "--encrypt-to", second_recipient),
        ("rewrap", "--identity-file", second, "--drop-passphrase"),
    ]
    for step in steps:
        done = run.keys(*step)
        assert done.returncode == 0, done.stderr
    # The output is what it was before key changes were jobs: the key file, as `keys show`.
    shown = run.keys("show")
    assert shown.returncode == 0 and done.stdout == shown.stdout
    assert "generation 2" in shown.stdout and second_recipient in shown.stdout

    # Losing the last way to unwrap the keys (the passphrase is gone, the last operator
    # would go) is refused: exit 3, one line, the key file untouched, the refusal on record.
    before = run.keyfile_bytes()
    refused = run.keys("rewrap", "--identity-file", second, "--no-recipients")
    assert refused.returncode == 3, refused.stderr
    assert "refused" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
    assert run.keyfile_bytes() == before

    listed = run.jobs("list", "--kind", "keys", "--format", "json")
    assert [j["state"] for j in sorted(listed, key=lambda j: j["id"])] == [
        *["succeeded"] * len(steps),
        "failed",
    ]
    jobs = [run.jobs("show", str(j["id"]), "--format", "json") for j in listed]
    jobs.sort(key=lambda j: j["id"])
    for job in jobs:
        assert job["kind"] == "keys" and job["server"] == SERVER
        assert job["destination"] == parse_location(run.dest.url).display()
    results = [job["result"] for job in jobs[:-1]]
    assert [(r["action"], r["generation"], r["passphrase_wrap"]) for r in results] == [
        ("init", 1, "set"),
        ("rotate", 2, "kept"),
        ("rewrap", 2, "changed"),
        ("rewrap", 2, "kept"),
        ("rewrap", 2, "removed"),
    ]
    assert [(r["recipients_added"], r["recipients_removed"]) for r in results] == [
        ([first_recipient], []),
        ([], []),
        ([], []),
        ([second_recipient], [first_recipient]),
        ([], []),
    ]
    assert "refused" in jobs[-1]["error"]
    for job, result in zip(jobs, results, strict=False):
        assert result["summary"] in run.jobs("log", str(job["id"]))
    assert "refused" in run.jobs("log", str(jobs[-1]["id"]))

    # No passphrase, operator identity or data key in any output or in the job store.
    keyfile = parse_keyfile(run.keyfile_bytes().decode(), SERVER)
    with pytest.raises(DecryptionFailed, match="locked"):
        unlock(keyfile, Passphrase(NEW_PASSPHRASE))  # the passphrase wrap was dropped
    data_keys = unlock(keyfile, None, read_identity_file(Path(second))).identities
    assert len(data_keys) == 2
    forbidden = [PASSPHRASE, NEW_PASSPHRASE, first_secret, second_secret]
    forbidden += [key.secret() for key in data_keys]
    files = [p for p in state.rglob("*") if p.is_file()]
    assert any(p.name.startswith("jobs.db") for p in files), files
    for secret in forbidden:
        for text in run.outputs:
            assert secret not in text
        for path in files:
            assert secret.encode() not in path.read_bytes(), path


def test_key_changes_at_once_take_turns_and_every_generation_stays(
    make_dest: Callable[..., TestDestination], tmp_path: Path
) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir(mode=0o700)
    run = Keys(make_dest("file"), tmp_path / "state")
    passfile = _secret_file(secrets, "pass", PASSPHRASE)
    assert run.keys("init", "--encryption-passphrase-file", passfile).returncode == 0

    # Each rotation reads the key file, runs a scrypt to open it, and writes it back: without
    # the key file's lock, the one that writes second drops the other's new generation, and
    # every object encrypted with it meanwhile can never be read again.
    rotate = ["rotate", "--encryption-passphrase-file", passfile]
    started = [
        spawn("keys", *rotate, *run.dest.cli_args, run.dest.url, SERVER, env=run.env)
        for _ in range(3)
    ]
    for process in started:
        _, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr

    keyfile = parse_keyfile(run.keyfile_bytes().decode(), SERVER)
    assert [g.number for g in keyfile.generations] == [1, 2, 3, 4]
    keys = unlock(keyfile, Passphrase(PASSPHRASE), ())
    assert len(keys.identities) == 4  # every generation still opens with the passphrase
    results = [
        run.jobs("show", str(j["id"]), "--format", "json")["result"]
        for j in run.jobs("list", "--kind", "keys", "--format", "json")
    ]
    assert sorted(r["generation"] for r in results if r["action"] == "rotate") == [2, 3, 4]


def _finished(run: Keys, job_id: str) -> dict[str, Any]:
    def ended() -> dict[str, Any] | None:
        job: dict[str, Any] = run.jobs("show", job_id, "--format", "json")
        return job if job["state"] in ("succeeded", "failed", "cancelled") else None

    job = wait_for(ended, timeout=120, what=f"job {job_id} to end")
    assert job["state"] == "succeeded", job
    return job


def _detached(run: Keys, *args: str) -> str:
    started = run.keys(*args, "--detach")
    assert started.returncode == 0, started.stderr
    job_id = started.stdout.strip()
    assert job_id.isdigit() and started.stdout == f"{job_id}\n", started.stdout
    return job_id


def test_a_detached_key_change_hands_its_secrets_only_through_its_pipe(
    make_dest: Callable[..., TestDestination], pgvault_bin: str, tmp_path: Path
) -> None:
    """`keys rotate|rewrap --detach` (keys had no --detach: exit 3): the job id alone on
    stdout, the change made by the job's own process, `jobs show` telling what changed. The
    passphrase files and the identity file are read by the command and reach that process
    through its pipe: never its command line, its environment, the job store or its log.
    A backup from before the rotation and one from after restore with the new passphrase
    and PostgreSQL starts on each."""
    secrets = tmp_path / "secrets"
    secrets.mkdir(mode=0o700)
    dest = make_dest("file")
    run = Keys(dest, tmp_path / "state")
    passfile = _secret_file(secrets, "pass", PASSPHRASE)
    newpass = _secret_file(secrets, "newpass", NEW_PASSPHRASE)
    operator, recipient, operator_secret = _operator(secrets, "operator.key")
    root = dest.url.removeprefix("file://")
    source = make_source(dest, pgvault_bin, scale=1)
    try:
        init = run.keys("init", "--encryption-passphrase-file", passfile, "--encrypt-to", recipient)
        assert init.returncode == 0, init.stderr
        chown_tree(root)  # archive_command (postgres) reads the key file
        source.cluster.sql("insert into marks values (1, 'before the rotation')")
        old = source.backup()

        # The key file's lock held: the detached rotation waits for it in its own process,
        # which can then be looked at.
        with dest.store() as store:
            held = acquire(store, SERVER, "the test", KEYS_LOCK_TTL, KEYS_LOCK)
        rotated = _detached(run, "rotate", "--encryption-passphrase-file", passfile)
        # claimed by its process, which waits for the lock with the secrets in hand
        wait_for(lambda: run.jobs("show", rotated, "--format", "json")["state"] == "running")
        time.sleep(1)
        pid = run.jobs("show", rotated, "--format", "json")["pid"]
        seen = {f: Path(f"/proc/{pid}/{f}").read_bytes() for f in ("cmdline", "environ")}
        assert b"core.jobs.worker" in seen["cmdline"]
        assert run.jobs("show", rotated, "--format", "json")["state"] == "running"
        with dest.store() as store:
            release(store, SERVER, held, KEYS_LOCK)
        job = _finished(run, rotated)
        assert job["detached"] is True and job["kind"] == "keys"
        result = job["result"]
        assert (result["action"], result["generation"], result["passphrase_wrap"]) == (
            "rotate",
            2,
            "kept",
        )

        rewrapped = _detached(
            run, "rewrap", "--identity-file", operator, "--new-passphrase-file", newpass
        )
        result = _finished(run, rewrapped)["result"]
        assert (result["action"], result["passphrase_wrap"]) == ("rewrap", "changed")
        assert run.keys("show").stdout.count("generation") == 2
        chown_tree(root)
        source.cluster.sql("insert into marks values (2, 'after the rotation')")
        new = source.backup()

        for backup_id, marks in ((old, [1]), (new, [1, 2])):
            target = new_target()
            try:
                done = restore(dest, target, backup_id, "--encryption-passphrase-file", newpass)
                run.outputs += [done.stdout, done.stderr]
                with restored_server(target, source.cluster.bindir) as server:
                    wait_for_recovery_end(server)
                    assert server.one("select count(*) from pgbench_accounts") == 100_000
                    rows = server.sql("select id from marks order by id")
                    assert [r[0] for r in rows][: len(marks)] == marks
            finally:
                target.drop()
    finally:
        source.cluster.drop()

    files = [p for p in (tmp_path / "state").rglob("*") if p.is_file()]
    assert any(p.parent.name == "workers" for p in files), files  # the processes' own logs
    for secret in (PASSPHRASE, NEW_PASSPHRASE, operator_secret):
        for where, text in seen.items():
            assert secret.encode() not in text, where
        for text in run.outputs:
            assert secret not in text
        for path in files:
            assert secret.encode() not in path.read_bytes(), path


def test_the_single_key_changes_rotate_the_passphrase_and_add_and_remove_recipients(
    make_dest: Callable[..., TestDestination], tmp_path: Path
) -> None:
    """The issue's own commands: each is one rewrap, recorded as a `keys` job; adding a
    recipient that already unwraps or removing one that does not is refused (exit 3)."""
    secrets = tmp_path / "secrets"
    secrets.mkdir(mode=0o700)
    run = Keys(make_dest("file"), tmp_path / "state")
    passfile = _secret_file(secrets, "pass", PASSPHRASE)
    newpass = _secret_file(secrets, "newpass", NEW_PASSPHRASE)
    first, first_recipient, _ = _operator(secrets, "first.key")
    _, second_recipient, _ = _operator(secrets, "second.key")
    assert run.keys("init", "--encryption-passphrase-file", passfile).returncode == 0

    steps = [
        (
            "add-recipient",
            "--encryption-passphrase-file",
            passfile,
            "--encrypt-to",
            first_recipient,
        ),
        ("add-recipient", "--identity-file", first, "--encrypt-to", second_recipient),
        ("rotate-passphrase", "--identity-file", first, "--new-passphrase-file", newpass),
        (
            "remove-recipient",
            "--encryption-passphrase-file",
            newpass,
            "--recipient",
            first_recipient,
        ),
    ]
    for step in steps:
        done = run.keys(*step)
        assert done.returncode == 0, done.stderr
    keyfile = parse_keyfile(run.keyfile_bytes().decode(), SERVER)
    assert unlock(keyfile, Passphrase(NEW_PASSPHRASE)).identities
    with pytest.raises(DecryptionFailed):
        unlock(keyfile, Passphrase(PASSPHRASE))
    with pytest.raises(DecryptionFailed):
        unlock(keyfile, None, read_identity_file(Path(first)))
    assert second_recipient in run.keys("show").stdout

    before = run.keyfile_bytes()
    for refused, reason in [
        (
            (
                "add-recipient",
                "--encryption-passphrase-file",
                newpass,
                "--encrypt-to",
                second_recipient,
            ),
            "can already unwrap",
        ),
        (
            (
                "remove-recipient",
                "--encryption-passphrase-file",
                newpass,
                "--recipient",
                first_recipient,
            ),
            "is not a recipient",
        ),
        (("rotate-passphrase", "--encryption-passphrase-file", newpass), "needs a new passphrase"),
        (("add-recipient", "--encryption-passphrase-file", newpass), "needs a recipient to add"),
        (
            (
                "remove-recipient",
                "--encryption-passphrase-file",
                newpass,
                "--encrypt-to",
                second_recipient,
            ),
            "--encrypt-to",
        ),
    ]:
        done = run.keys(*refused)
        assert done.returncode == 3, (refused, done.stderr)
        assert reason in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert run.keyfile_bytes() == before

    listed = run.jobs("list", "--kind", "keys", "--format", "json")
    results = [
        run.jobs("show", str(j["id"]), "--format", "json").get("result")
        for j in sorted(listed, key=lambda j: j["id"])
    ]
    assert [
        (r["action"], r["passphrase_wrap"], r["recipients_added"], r["recipients_removed"])
        for r in results[1:5]
    ] == [
        ("add-recipient", "kept", [first_recipient], []),
        ("add-recipient", "kept", [second_recipient], []),
        ("rotate-passphrase", "changed", [], []),
        ("remove-recipient", "kept", [], [first_recipient]),
    ]
