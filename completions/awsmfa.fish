# awsmfa's fish completion, which fish loads at the first <TAB> after `awsmfa`:
# installed by fisher from this repository, or by the Debian package as
# /usr/share/fish/vendor_completions.d/awsmfa.fish. It needs no `awsmfa init`:
# it registers what awsmfa prints (the code `init` uses), which asks awsmfa for
# profile names, subcommands and flags at each <TAB>. Where `init` registered
# it already, it adds nothing.
if command -q awsmfa; and not complete --command awsmfa | string length -q
    _AWSMFA_COMPLETE=fish awsmfa -- | source
end
