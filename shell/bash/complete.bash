# Profile names, subcommands and flags, from awsmfa itself at each <TAB>.
__awsmfa_complete() {
  local IFS=$'\n' words=("${COMP_WORDS[@]}")
  words[COMP_CWORD]=$2
  mapfile -t COMPREPLY < <(
    _CLAP_IFS=$'\n' _CLAP_COMPLETE_INDEX=$COMP_CWORD _AWSMFA_COMPLETE=bash \
      @AWSMFA@ -- "${words[@]}" 2>/dev/null
  )
}
complete -o bashdefault -o default -F __awsmfa_complete awsmfa
