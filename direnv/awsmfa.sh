# awsmfa for direnv. Install: `awsmfa direnv > ~/.config/direnv/lib/awsmfa.sh`
# (or copy this file there). Then in an .envrc:
#
#   use awsmfa            # the profile mapped to this directory's root
#   use awsmfa tf-proxmox # or a profile by name
#
# It puts a directory of shims for the `wrap` commands (terragrunt, tofu, …) on
# PATH, so those commands run under `awsmfa exec` from an interactive shell, a
# Makefile or an IDE alike. It exports only the profile name, as
# AWSMFA_DIRENV_PROFILE (not AWSMFA_PROFILE, which marks a process that already
# runs inside `awsmfa exec`). No credential ever passes through direnv.

use_awsmfa() {
  local bin=${AWSMFA_BIN:-awsmfa} out profile shims state
  # Writes the shims if needed and prints two lines: the profile, then the
  # shims directory. Both are checked before anything reaches PATH or the
  # environment: the profile against awsmfa's name rule, the directory
  # against the one path it can be.
  out=$("$bin" shims "$@") || return 1
  profile=${out%%$'\n'*}
  shims=${out#*$'\n'}
  state=${XDG_STATE_HOME:-}
  [[ $state == /* ]] || state=$HOME/.local/state
  if [[ $out != "$profile"$'\n'"$shims" || ! $profile =~ ^[A-Za-z0-9_.@+=,-]+$ ]]; then
    log_error "awsmfa: unexpected output from \`awsmfa shims\`; not changing PATH"
    return 1
  fi
  if [[ $shims != "$state/awsmfa/shims" || $shims != /* || $shims == *:* ]]; then
    log_error "awsmfa: shims directory is not $state/awsmfa/shims; not changing PATH"
    return 1
  fi
  PATH_add "$shims"
  export AWSMFA_DIRENV_PROFILE=$profile
  watch_file "${AWS_CONFIG_FILE:-$HOME/.aws/config}" \
    "${AWSMFA_CONFIG:-${XDG_CONFIG_HOME:-$HOME/.config}/awsmfa/config.toml}"
}
