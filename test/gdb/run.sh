#!/usr/bin/env bash
# Tests gort's gdb extension: runs gdb in batch mode on gdb_target with
# check.py (which see). Exit 77 (skip) when gdb, its Python or ptrace is
# missing.
# Usage: run.sh <gdb_target> <check.py> auto|source [gort_gdb.py]
set -uo pipefail
target=$1 check=$2 mode=$3 script=${4:-}

skip() { echo "SKIP: $*"; exit 77; }
command -v gdb >/dev/null 2>&1 || skip "gdb not found (apt-get install gdb)"
gdb -batch -nx -ex 'python print("gort-py-ok")' 2>/dev/null | grep -q gort-py-ok ||
  skip "this gdb has no Python"
probe=$(gdb -batch -nx -ex run --args /bin/true 2>&1)
case "$probe" in
  *"exited normally"*) ;;
  *) skip "gdb cannot run a program here (ptrace not permitted?): $probe" ;;
esac

unset DEBUGINFOD_URLS
export GORT_GDB_MODE=$mode GORT_GDB_SCRIPT=$script
exec gdb -batch -nx \
  -iex 'set debuginfod enabled off' \
  -iex "add-auto-load-safe-path $target" \
  -x "$check" --args "$target"
