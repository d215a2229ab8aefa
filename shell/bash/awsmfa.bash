# awsmfa for bash — add to ~/.bashrc:
#   eval "$(awsmfa init bash)"
# Inside a mapped OpenTofu root, the commands in `wrap` become functions that run
# `awsmfa exec -- CMD`; leaving the root removes them. The shell never holds a
# credential: only the profile name and the path of a metadata file.

__awsmfa_bin=@AWSMFA@
__awsmfa_state=''
__awsmfa_wrapped=()
__awsmfa_pwd=''
__awsmfa_refresh=900 # set per root by hook-env, from refresh_before
awsmfa_prompt=''

# Runs before every prompt, but calls awsmfa only when the directory changed.
# It keeps $? for whatever runs after it (starship, direnv, the prompt itself).
__awsmfa_hook() {
  local status=$? out
  if [[ $PWD != "$__awsmfa_pwd" ]]; then
    __awsmfa_pwd=$PWD
    if out=$(__AWSMFA_STATE="$__awsmfa_state" "$__awsmfa_bin" hook-env bash) && [[ -n $out ]]; then
      eval "$out"
    fi
  fi
  __awsmfa_segment
  return "$status"
}

# Called by hook-env's code before it defines the wrapper NAME: the user's own
# function of that name (a personal `tofu` wrapper) is kept as
# __awsmfa_saved_NAME while inside the root. awsmfa's own wrapper, left over
# after re-sourcing the rc file, is never saved.
__awsmfa_save() {
  local def
  declare -F -- "$1" >/dev/null || return 0
  declare -F -- "__awsmfa_saved_$1" >/dev/null && return 0
  def=$(declare -f -- "$1")
  # The literal text of awsmfa's own wrapper body, not an expansion.
  # shellcheck disable=SC2016
  [[ $def == *'"$__awsmfa_bin" exec -- '* ]] && return 0
  # bash can copy a function only by re-reading its text: the user's own code.
  eval "function __awsmfa_saved_$def"
}

# Removes the wrappers this shell recorded in __awsmfa_wrapped (never a list
# read back from awsmfa) and puts back what __awsmfa_save kept.
__awsmfa_leave() {
  local name def
  for name in "${__awsmfa_wrapped[@]}"; do
    unset -f -- "$name"
    if declare -F -- "__awsmfa_saved_$name" >/dev/null; then
      def=$(declare -f -- "__awsmfa_saved_$name")
      eval "function ${def#__awsmfa_saved_}"
      unset -f -- "__awsmfa_saved_$name"
    fi
  done
  __awsmfa_wrapped=()
  unset __awsmfa_profile __awsmfa_session_file
}

# Sets $awsmfa_prompt to "PROFILE 42m" (or "expired", "·" for no session, a
# trailing "!" when the next wrapped command will ask for MFA) using builtins only.
__awsmfa_segment() {
  awsmfa_prompt=''
  [[ -n ${__awsmfa_profile-} ]] || return 0
  local expiry rest ttl left mins now pad
  # A plain file only: `read` would follow a link and wait forever on a FIFO.
  # No leading 0 (bash reads it as octal) and at most 12 digits (no overflow).
  if [[ -f ${__awsmfa_session_file-} && ! -L $__awsmfa_session_file ]] \
    && read -r expiry rest <"$__awsmfa_session_file" \
    && [[ $expiry =~ ^[1-9][0-9]{0,11}$ ]]; then
    if [[ -n ${EPOCHSECONDS-} ]]; then
      now=$EPOCHSECONDS
    else
      printf -v now '%(%s)T' -1 # bash < 5
    fi
    left=$((expiry - now))
    if ((left <= 0)); then
      ttl=expired
    else
      mins=$((left / 60))
      if ((mins >= 60)); then
        printf -v pad '%02d' $((mins % 60))
        ttl="$((mins / 60))h${pad}m"
      else
        ttl="${mins}m"
      fi
      ((left < __awsmfa_refresh)) && ttl+='!'
    fi
  else
    ttl='·'
  fi
  awsmfa_prompt="$__awsmfa_profile $ttl"
}

# For prompts built by hand: PS1='$(awsmfa_prompt_info) \w \$ ', or better
# PS1='${awsmfa_prompt} \w \$ ', which costs no subshell at all.
awsmfa_prompt_info() {
  __awsmfa_segment
  printf '%s' "$awsmfa_prompt"
}

# Prepend to PROMPT_COMMAND in whichever form it has (string, or array in bash
# 5.1+), never replacing what starship, direnv or the user put there.
if [[ "$(declare -p PROMPT_COMMAND 2>/dev/null)" == "declare -a"* ]]; then
  if [[ " ${PROMPT_COMMAND[*]} " != *" __awsmfa_hook "* ]]; then
    PROMPT_COMMAND=(__awsmfa_hook "${PROMPT_COMMAND[@]}")
  fi
else
  # This branch is the string form; shellcheck cannot tell the two apart.
  # shellcheck disable=SC2178,SC2128
  case ";${PROMPT_COMMAND-};" in
    *";__awsmfa_hook;"*) ;;
    *) PROMPT_COMMAND="__awsmfa_hook${PROMPT_COMMAND:+;$PROMPT_COMMAND}" ;;
  esac
fi
