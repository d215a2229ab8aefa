# awsmfa as a zsh plugin, loaded by this name by oh-my-zsh, zinit and antidote:
# the same as `eval "$(awsmfa init zsh)"` in ~/.zshrc (the cd hook, the
# wrappers, $awsmfa_prompt, completion once compinit has run). Where compinit
# runs after the plugins, completion comes from `_awsmfa` beside this file.
if (( $+commands[awsmfa] )); then
  eval "$(awsmfa init zsh)"
else
  print -ru2 -- "awsmfa plugin: awsmfa is not on PATH, so its shell hook is not loaded; install awsmfa, or remove the plugin"
fi
