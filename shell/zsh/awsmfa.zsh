# awsmfa for zsh — add to ~/.zshrc, after compinit:
#   eval "$(awsmfa init zsh)"
# Inside a mapped OpenTofu root, the commands in `wrap` become functions that run
# `awsmfa exec -- CMD`; leaving the root removes them. The shell never holds a
# credential: only the profile name and the path of a metadata file.

typeset -g __awsmfa_bin=@AWSMFA@
typeset -g __awsmfa_state=''
typeset -ga __awsmfa_wrapped=()
typeset -g awsmfa_prompt=''
zmodload zsh/datetime 2>/dev/null   # $EPOCHSECONDS, so the prompt needs no process

# On every directory change (and once now): ask awsmfa what changed. It prints
# nothing when nothing did, otherwise code that (re)defines or removes wrappers.
__awsmfa_hook() {
  local out
  out="$(__AWSMFA_STATE="$__awsmfa_state" "$__awsmfa_bin" hook-env zsh)" || return 0
  [[ -n $out ]] && eval "$out"
  __awsmfa_segment
}

# Called by hook-env's code before it defines the wrapper NAME: the user's own
# function of that name (a personal `tofu` wrapper) is kept as
# __awsmfa_saved_NAME while inside the root. awsmfa's own wrapper, left over
# after re-sourcing the rc file, is never saved.
__awsmfa_save() {
  (( ${+functions[$1]} && ! ${+functions[__awsmfa_saved_$1]} )) || return 0
  [[ $functions[$1] == *'"$__awsmfa_bin" exec -- '* ]] && return 0
  functions[__awsmfa_saved_$1]=$functions[$1]
}

# Removes the wrappers this shell recorded in __awsmfa_wrapped (never a list
# read back from awsmfa) and puts back what __awsmfa_save kept.
__awsmfa_leave() {
  local name
  for name in "${__awsmfa_wrapped[@]}"; do
    unset -f -- "$name" 2>/dev/null
    if (( ${+functions[__awsmfa_saved_$name]} )); then
      functions[$name]=$functions[__awsmfa_saved_$name]
      unset -f -- "__awsmfa_saved_$name"
    fi
  done
  __awsmfa_wrapped=()
  unset __awsmfa_profile __awsmfa_session_file __awsmfa_refresh
}

# Sets $awsmfa_prompt to "PROFILE 42m" (or "expired", "·" for no session, a
# trailing "!" when the next wrapped command will ask for MFA) using builtins only.
__awsmfa_segment() {
  awsmfa_prompt=''
  [[ -n ${__awsmfa_profile-} ]] || return 0
  local expiry rest ttl left mins
  # A plain file only: `read` would follow a link and wait forever on a FIFO.
  # At most 12 digits without a leading 0, so the arithmetic cannot overflow.
  if [[ -f ${__awsmfa_session_file-} && ! -L $__awsmfa_session_file ]] \
      && read -r expiry rest < "$__awsmfa_session_file" \
      && [[ $expiry == <-> && $expiry != 0* && ${#expiry} -le 12 ]]; then
    left=$(( expiry - EPOCHSECONDS ))
    if (( left <= 0 )); then
      ttl=expired
    else
      mins=$(( left / 60 ))
      if (( mins >= 60 )); then
        ttl="$(( mins / 60 ))h${(l:2::0:)$(( mins % 60 ))}m"
      else
        ttl="${mins}m"
      fi
      (( left < __awsmfa_refresh )) && ttl+='!'
    fi
  else
    ttl='·'
  fi
  awsmfa_prompt="$__awsmfa_profile $ttl"
}

# For prompts built by hand: PROMPT='$(awsmfa_prompt_info) %~ %# ' with
# PROMPT_SUBST, or better "${awsmfa_prompt}" which costs no subshell at all.
awsmfa_prompt_info() {
  __awsmfa_segment
  print -rn -- "$awsmfa_prompt"
}

autoload -Uz add-zsh-hook
add-zsh-hook chpwd __awsmfa_hook
add-zsh-hook precmd __awsmfa_segment
__awsmfa_hook
