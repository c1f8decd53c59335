"""globals.sql without what the target already has: roles and tablespaces by name, quoted
or not; everything else (memberships, settings of new roles) kept."""

from __future__ import annotations

from core.logical.restore_all import without_existing

GLOBALS = '''--
-- Roles
--

CREATE ROLE app;
ALTER ROLE app WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB LOGIN;
CREATE ROLE "Größe ""x""";
ALTER ROLE "Größe ""x""" WITH NOSUPERUSER NOLOGIN;
CREATE ROLE postgres;
ALTER ROLE postgres WITH SUPERUSER INHERIT CREATEROLE CREATEDB LOGIN REPLICATION BYPASSRLS;
ALTER ROLE app SET search_path TO 'sales';
GRANT app TO "Größe ""x""" GRANTED BY postgres;
CREATE TABLESPACE fast OWNER postgres LOCATION '/srv/fast';
CREATE TABLESPACE "slow disk" OWNER app LOCATION '/srv/slow';
'''


def test_existing_roles_and_tablespaces_are_left_out_and_named() -> None:
    sql, skipped = without_existing(GLOBALS, {"postgres", 'Größe "x"'}, {"slow disk"})
    assert skipped == ['role Größe "x"', "role postgres", "tablespace slow disk"]
    assert "ROLE postgres" not in sql and "Größe" in sql  # the GRANT stays
    assert 'CREATE ROLE "Größe' not in sql and 'ALTER ROLE "Größe' not in sql
    assert "CREATE ROLE app;" in sql and "ALTER ROLE app SET search_path" in sql
    assert "CREATE TABLESPACE fast" in sql and "slow disk" not in sql


def test_nothing_exists_nothing_is_left_out() -> None:
    assert without_existing(GLOBALS, set(), set()) == (GLOBALS, [])
