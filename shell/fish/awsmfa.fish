# awsmfa for fish — add to ~/.config/fish/config.fish:
#   awsmfa init fish | source
# Inside a mapped OpenTofu root, the commands in `wrap` become functions that run
# `awsmfa exec -- CMD` (keeping their completions); leaving the root removes them.
# The shell never holds a credential: only the profile name and a file path.

set -g __awsmfa_bin @AWSMFA@
set -g __awsmfa_state ''

function __awsmfa_hook --on-variable PWD --description 'awsmfa: wrappers for the current root'
    set -l out (env __AWSMFA_STATE="$__awsmfa_state" $__awsmfa_bin hook-env fish | string collect)
    or return 0
    test -n "$out"; and echo $out | source
end

# "PROFILE 42m" (or "expired", "·" for no session, "!" when the next wrapped
# command will ask for MFA). fish has no clock builtin, so this runs
# `awsmfa prompt`, which reads a small metadata file and nothing else.
function awsmfa_prompt_info --description 'awsmfa: prompt segment'
    set -q __awsmfa_profile; or return 0
    $__awsmfa_bin prompt
end

__awsmfa_hook
