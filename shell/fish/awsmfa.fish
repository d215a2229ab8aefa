# awsmfa for fish — add to ~/.config/fish/config.fish:
#   awsmfa init fish | source
# Inside a mapped OpenTofu root, the commands in `wrap` become functions that run
# `awsmfa exec -- CMD` (keeping their completions); leaving the root removes them.
# The shell never holds a credential: only the profile name and a file path.

set -g __awsmfa_bin @AWSMFA@
set -g __awsmfa_state ''

# Called by hook-env's code once __awsmfa_wrapped lists the commands to wrap:
# each becomes a function running `awsmfa exec -- NAME`. A user's own function
# of that name is kept as __awsmfa_saved_NAME while inside the root (awsmfa's
# own wrapper, left over after re-sourcing, never is).
function __awsmfa_enter
    for name in $__awsmfa_wrapped
        if functions -q -- $name; and not functions -q -- __awsmfa_saved_$name
            and not functions -- $name | string match -q '*$__awsmfa_bin exec -- *'
            functions -c -- $name __awsmfa_saved_$name
        end
        function $name --wraps $name --inherit-variable name --description "awsmfa: $name under $__awsmfa_profile"
            $__awsmfa_bin exec -- $name $argv
        end
    end
end

# Removes the wrappers this shell recorded in __awsmfa_wrapped (never a list
# read back from awsmfa) and puts back what __awsmfa_enter kept.
function __awsmfa_leave
    for name in $__awsmfa_wrapped
        functions -e -- $name
        if functions -q -- __awsmfa_saved_$name
            functions -c -- __awsmfa_saved_$name $name
            functions -e -- __awsmfa_saved_$name
        end
    end
    set -e __awsmfa_wrapped __awsmfa_profile __awsmfa_session_file __awsmfa_refresh
end

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
