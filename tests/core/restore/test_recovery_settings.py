"""restore_command and the recovery settings, quoted as PostgreSQL and the shell read them."""

from __future__ import annotations

import shlex
import subprocess

from core.restore.recovery import command_line, conf_value, recovery_settings, wal_restore_argv
from core.restore.targets import make_target
from core.storage import StoreConfig
from core.urls import parse_location


def test_restore_command_survives_the_shell_and_percent_expansion(tmp_path: object) -> None:
    odd = '/tmp/it\'s 100% "odd" $HOME `x`'
    argv = ["/usr/bin/printf", "%s|", odd, "%f", "%p"]
    line = command_line(argv)
    # What PostgreSQL runs: %% becomes %, %f and %p are replaced, then sh -c.
    expanded = line.replace("%f", "WALNAME").replace("%p", "pg_wal/RECOVERYXLOG")
    expanded = expanded.replace("%%", "%")
    out = subprocess.run(["sh", "-c", expanded], capture_output=True, text=True, check=True)
    assert out.stdout == f"{odd}|WALNAME|pg_wal/RECOVERYXLOG|"
    assert shlex.split(expanded)[2] == odd


def test_conf_values_are_escaped_as_alter_system_does() -> None:
    assert conf_value("it's") == "'it''s'"
    assert conf_value("a\\b") == "'a\\\\b'"


def test_the_command_holds_the_public_url_and_no_secret() -> None:
    location = parse_location(
        "s3://bucket/pfx?AWS_REGION=eu-west-3&AWS_ACCESS_KEY_ID=AKID&AWS_SECRET_ACCESS_KEY=sekrit"
    )
    config = StoreConfig(endpoint_url="http://127.0.0.1:9000", aws_profile="prod", read_timeout=30)
    argv = wal_restore_argv(
        "/opt/pgvault/bin/pgvault", location, "pg1", config, 4, "/x/spool", "/x/c.json", True
    )
    text = " ".join(argv)
    assert "sekrit" not in text and "AKID" not in text and "-P" not in argv
    assert argv[-4:] == ("s3://bucket/pfx?AWS_REGION=eu-west-3", "pg1", "%f", "%p")
    assert list(argv[argv.index("--credentials-file") :][:2]) == ["--credentials-file", "/x/c.json"]
    assert "--abort-on-error" in argv and list(argv[argv.index("-p") :][:2]) == ["-p", "4"]
    kept = wal_restore_argv("/p", location, "pg1", config, 0, None, None, False)
    assert "-P" in kept and "-p" not in kept and "--credentials-file" not in kept


def test_unused_targets_are_emptied_before_the_chosen_one() -> None:
    settings = recovery_settings(make_target(name="rp"), "cmd", "hold", None, 150000)
    names = [n for n, _ in settings]
    targets = [
        n
        for n in names
        if n.startswith("recovery_target")
        and n not in {"recovery_target_inclusive", "recovery_target_action"}
    ]
    assert targets[-1] == "recovery_target_name"
    assert dict(settings)["recovery_target_name"] == "rp"
    assert all(dict(settings)[n] == "" for n in targets[:-1])
    assert dict(settings)["recovery_target_action"] == "pause"
    assert ("archive_command", "false") in settings and ("archive_library", "") in settings
    pg14 = recovery_settings(make_target(), "cmd", "hold", "rm -f x", 140000)
    assert "archive_library" not in dict(pg14) and dict(pg14)["recovery_end_command"] == "rm -f x"
    assert "recovery_target_action" not in dict(pg14)
    assert dict(recovery_settings(make_target(), "cmd", "off", None))["archive_mode"] == "off"
    preserved = dict(recovery_settings(make_target(), "cmd", "preserve", None))
    assert "archive_mode" not in preserved and "archive_command" not in preserved
    exclusive = dict(recovery_settings(make_target(lsn="0/1", exclusive=True), "c", "hold", None))
    assert exclusive["recovery_target_inclusive"] == "off"
