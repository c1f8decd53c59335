"""An SDK's configuration from the environment, broken, is bad input named in one line.

Each of these escaped as exit 4 ("unexpected error: ConfigParseError", "ValueError:
Invalid endpoint", "IsADirectoryError", "InvalidSchema"), or named the wrong profile
("AWS profile None not found" for AWS_PROFILE). Nothing listens anywhere: each is refused
before a request leaves, or by the HTTP library before it connects.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.cli import pgvault
from tests.support.emulators import S3_ENV

#: {tmp} is the test's directory (a directory, and where aws-config is malformed)
CASES = {
    "aws-config": ("s3", {"AWS_CONFIG_FILE": "{tmp}/aws-config"}, "Unable to parse config file"),
    "aws-profile": ("s3", {"AWS_PROFILE": "nosuch"}, "AWS profile 'nosuch' not found"),
    "aws-endpoint": ("s3", {"AWS_ENDPOINT_URL": "not a url"}, "Invalid endpoint: not a url"),
    "gcs-credentials": (
        "gs",
        {"GOOGLE_APPLICATION_CREDENTIALS": "{tmp}", "STORAGE_EMULATOR_HOST": ""},
        "cannot read the Google credentials file {tmp}: Is a directory",
    ),
    "gcs-emulator": ("gs", {"STORAGE_EMULATOR_HOST": "::::"}, "STORAGE_EMULATOR_HOST is not"),
}


@pytest.mark.parametrize("case", CASES)
def test_a_broken_sdk_environment_is_bad_input(case: str, tmp_path: Path) -> None:
    scheme, env, says = CASES[case]
    (tmp_path / "aws-config").write_text("[default\nregion=\n")
    env = {k: v.format(tmp=tmp_path) for k, v in env.items()}
    base = {
        **S3_ENV,
        "AWS_EC2_METADATA_DISABLED": "true",
        "PGVAULT_STATE_DIR": str(tmp_path / "state"),
        "HOME": str(tmp_path),
    }
    done = pgvault("backup-list", f"{scheme}://pgbackups/prefix", "pg1", env={**base, **env})
    lines = done.stderr.strip().splitlines()
    assert "Traceback" not in done.stderr and "unexpected" not in done.stderr, done.stderr
    assert done.returncode == 3, done.stderr
    assert len(lines) == 1 and says.format(tmp=tmp_path) in lines[0], done.stderr
