#!/bin/sh
# The man page vitq.1 on stdout, made from the tool's own help so that the two never disagree:
#   sh tools/help2man.sh path/to/vitq > vitq.1
# `vitq --help` gives the synopsis, the notes and the schemes; `vitq COMMAND --help` each command's
# options. Plain sh, sed and awk (no help2man): `make install` runs it.
set -e
vitq=${1:?usage: tools/help2man.sh path/to/vitq}
version=$("$vitq" --version | sed 's/^vitq //')
full=$("$vitq" --help)

# roff: a backslash is \e, a line may not start with . or ', a minus sign is \-
escape() {
    sed -e 's/\\/\\e/g' -e "s/^\\([.']\\)/\\\\\\&\\1/" -e 's/-/\\-/g'
}

printf '.TH VITQ 1 "" "vitq %s" "User Commands"\n' "$version"
printf '.SH NAME\nvitq \\- %s\n' "$(echo "$full" | sed -n '1s/^vitq [^ ]* - //p' | escape)"

printf '.SH SYNOPSIS\n.nf\n'
echo "$full" | sed -n 's/^  \(vitq [a-z-]* .*\)/\1/p' | escape
printf '.fi\n'

printf '.SH DESCRIPTION\n'
echo "$full" | sed -n '/^MODEL is a/,$p' | escape

printf '.SH COMMANDS\n'
for command in $(echo "$full" | sed -n 's/^  vitq \([a-z-]*\) .*/\1/p'); do
    printf '.SS vitq %s\n.nf\n' "$command"
    # the command's help without its title line, the scheme list (below) and the notes (above)
    "$vitq" "$command" --help | awk 'NR == 1 { next } /^       (schemes|methods) / { skip = 1 } /^MODEL is a/ { exit }
        !skip { print }' | escape
    printf '.fi\n'
done

printf '.SH SCHEMES AND METHODS\n.nf\n'
echo "$full" | awk '/^       schemes / { on = 1 } /^MODEL is a/ { on = 0 } on { sub(/^       /, ""); print }' | escape
printf '.fi\n'

printf '.SH EXIT STATUS\n0: done; 1: a failure (the message names the file, tensor or option); 2: a usage error.\n'
printf '.SH SEE ALSO\ndocs/cli.md in the vitq sources, with every command and option.\n'
