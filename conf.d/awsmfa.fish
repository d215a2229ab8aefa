# awsmfa as a fish plugin (fisher installs conf.d/ and completions/ from this
# repository): the same as `awsmfa init fish | source` in config.fish (the cd
# hook, the wrappers, awsmfa_prompt_info, completion), in interactive shells.
if status is-interactive
    if command -q awsmfa
        awsmfa init fish | source
    else
        echo "awsmfa plugin: awsmfa is not on PATH, so its shell hook is not loaded; install awsmfa, or remove the plugin" >&2
    end
end
