#!/bin/sh
# Copies a file next to itself with a .bak suffix.
backup() {
    # TODO: exit with an error message when the file does not exist
    cp "$1" "$1.bak"
}

backup "$@"
echo "args: $#"
