#!/usr/bin/env bash
# Drop-in use of gort, each way docs/install.md describes, tried from a
# scratch directory the way a user would:
#
#   copy       copy include/gort into a project; g++ / clang++ -I<dir>
#   meson      a project with gort in subprojects/ (no wrap file)
#   pkgconfig  meson install, then pkg-config --cflags --libs gort
#   cmake      meson install, then find_package(gort) + gort::gort
#   strict     a TU using every public header under -Wall -Wextra
#              -Wpedantic -Werror, C++20 and C++23 (C++2b)
#
# Usage: run.sh <gort source dir> <part> [compiler]
#   compiler: for copy and strict, g++ or clang++ (default g++).
# Exit 0: passed; 77: skipped (a tool is missing; meson reads it as SKIP);
# anything else: failed. test/meson.build registers each part as a test of
# the 'dropin' suite.
set -euo pipefail

src=$(cd "${1:?usage: run.sh <gort source dir> <part> [compiler]}" && pwd)
part=${2:?usage: run.sh <gort source dir> <part> [compiler]}
compiler=${3:-g++}
here="$src/test/dropin"

skip() { echo "SKIP: $*"; exit 77; }
need() { for t in "$@"; do command -v "$t" >/dev/null 2>&1 || skip "$t not found"; done; }
run() { echo "+ $*"; "$@"; }

work=$(mktemp -d "${TMPDIR:-/tmp}/gort-dropin-$part.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"

# The program must print "dropin ok 55" and exit 0.
check_app() {
  local out
  out=$("$@")
  echo "$out"
  case "$out" in "dropin ok 55"*) ;; *) echo "FAIL: unexpected output from $*"; exit 1 ;; esac
}

# meson install of gort into $work/prefix (headers, gort.pc, CMake package).
# Configure only: nothing needs compiling, so --no-rebuild.
install_gort() {
  need meson
  run meson setup --prefix="$work/prefix" -Dtests=false -Dbench=disabled \
    "$work/gort-build" "$src" >"$work/setup.log" 2>&1 || { cat "$work/setup.log"; exit 1; }
  run meson install -C "$work/gort-build" --no-rebuild --quiet
}

case "$part" in
  copy)
    need "$compiler"
    mkdir -p app/third_party
    run cp -r "$src/include/gort" app/third_party/
    cp "$here/main.cpp" app/
    run "$compiler" -std=c++20 -Iapp/third_party app/main.cpp -o app/app -luring -pthread
    check_app ./app/app
    ;;

  meson)
    need meson ninja
    cp -rL "$here/meson_subproject" proj
    mkdir proj/subprojects
    run ln -s "$src" proj/subprojects/gort
    run meson setup proj/build proj >setup.log 2>&1 || { cat setup.log; exit 1; }
    # Only the consumer's targets (not gort's demo).
    run meson compile -C proj/build -j 2 app_var app_dep
    check_app ./proj/build/app_var
    check_app ./proj/build/app_dep
    ;;

  pkgconfig)
    need pkg-config c++
    install_gort
    pc_dir=$(dirname "$(find "$work/prefix" -name gort.pc | head -n1)")
    export PKG_CONFIG_PATH="$pc_dir"
    run pkg-config --modversion gort
    flags=$(pkg-config --cflags --libs gort)
    echo "pkg-config --cflags --libs gort: $flags"
    # shellcheck disable=SC2086  # the flags are words
    run c++ "$here/main.cpp" -o app $flags
    check_app ./app
    ;;

  cmake)
    need cmake c++
    install_gort
    # The package is relocatable: move the prefix before using it.
    run mv "$work/prefix" "$work/moved-prefix"
    cp -rL "$here/cmake_consumer" proj
    run cmake -S proj -B proj/build -DCMAKE_PREFIX_PATH="$work/moved-prefix" \
      >cmake.log 2>&1 || { cat cmake.log; exit 1; }
    run cmake --build proj/build
    check_app ./proj/build/app
    # A version this gort does not satisfy must be refused.
    mkdir badver
    printf 'cmake_minimum_required(VERSION 3.16)\nproject(v CXX)\nfind_package(gort 9.0 REQUIRED)\n' \
      >badver/CMakeLists.txt
    if cmake -S badver -B badver/build -DCMAKE_PREFIX_PATH="$work/moved-prefix" >badver.log 2>&1; then
      echo "FAIL: find_package(gort 9.0) succeeded"; cat badver.log; exit 1
    fi
    echo "find_package(gort 9.0) refused, as it should be"
    ;;

  strict)
    need "$compiler"
    for std in c++20 c++2b; do
      run "$compiler" -std=$std -O2 -Wall -Wextra -Wpedantic -Werror -I"$src/include" \
        "$here/strict.cpp" -o "strict-$std" -luring -pthread
      run "./strict-$std"
    done
    ;;

  *)
    echo "run.sh: unknown part '$part' (copy, meson, pkgconfig, cmake, strict)" >&2
    exit 2
    ;;
esac
echo "PASS: dropin $part $([[ $part == copy || $part == strict ]] && echo "$compiler")"
