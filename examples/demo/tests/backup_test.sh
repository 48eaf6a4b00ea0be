#!/bin/sh
# What scripts/backup.sh does today, and must keep doing: copy a file to FILE.bak.
set -eu
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
echo data >"$dir/f"
sh "$(dirname "$0")/../scripts/backup.sh" "$dir/f" >/dev/null
cmp "$dir/f" "$dir/f.bak"
