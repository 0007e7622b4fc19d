#!/usr/bin/env bash
# tests/install/run.sh — `make install` and `make uninstall`, checked in a staging DESTDIR (no root).
#
# Usage:  B=<build dir> bash tests/install/run.sh        (make B=dir install-tests runs it)
#   B        build directory holding libfeox.a, libfeox.so and feox.so (default build)
#   SQLITE3  the shell to run (default /usr/bin/sqlite3 if present, else sqlite3 on PATH)
#   CC       compiler for the test program and for -print-multiarch, as the Makefile (default cc)
#
# For PREFIX=/usr/local (the default, whose feox.so goes to the multiarch system dir) and for
# PREFIX=/opt/feox (everything under the prefix), each in a fresh mktemp -d DESTDIR:
#   1. make install; exactly the expected files exist: feox.h, feox_storage.h, libfeox.a,
#      libfeox.so.X.Y.Z (soname libfeox.so.X), the symlinks libfeox.so.X -> libfeox.so.X.Y.Z and libfeox.so -> libfeox.so.X,
#      feox.pc and feox.so (exporting sqlite3_feox_init); nothing else.
#   2. The staged feox.pc, found with PKG_CONFIG_PATH=<stage><prefix>/lib/pkgconfig, names the real
#      prefix; a copy with prefix=<stage><prefix> builds tests/install/hello_feox.c with
#      `pkg-config --cflags --libs feox` (run with LD_LIBRARY_PATH) and with
#      `pkg-config --static --cflags --libs feox` against libfeox.a (no libfeox.so needed at run time).
#   3. sqlite3, started in another directory with only the staged SQLITE_EXT_DIR on
#      LD_LIBRARY_PATH, runs `.load feox` and loads exactly the staged feox.so.
#   4. make uninstall (same DESTDIR and PREFIX) leaves no file or symlink behind.
# For PREFIX=/usr/local it also checks that the chosen SQLITE_EXT_DIR is one of ld.so's trusted
# system directories, so that after a real `sudo make install` `.load feox` works from anywhere.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=${B:-build}
cc=${CC:-cc}
make_cmd=${MAKE:-make}
if [ -z "${SQLITE3:-}" ]; then
    if [ -x /usr/bin/sqlite3 ]; then SQLITE3=/usr/bin/sqlite3; else SQLITE3=sqlite3; fi
fi
# The sub-makes get only the variables passed below: an outer `make X=... install-tests` would
# otherwise hand its overrides down through MAKEFLAGS.
unset MAKEFLAGS MFLAGS MAKEOVERRIDES MAKELEVEL DESTDIR PREFIX LIBDIR INCLUDEDIR PKGCONFIGDIR \
    SQLITE_EXT_DIR PKG_CONFIG_SYSROOT_DIR
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

fail() {
    echo "install test FAILED: $*" >&2
    exit 1
}
run_make() {
    "$make_cmd" -C "$repo" --no-print-directory B="$build" "$@" >"$tmp/make.log" 2>&1 ||
        { cat "$tmp/make.log" >&2; fail "make $*"; }
}

version=$(sed -n 's/^VERSION := *//p' "$repo/Makefile")
soversion=$(sed -n 's/^SOVERSION := *//p' "$repo/Makefile")
header_version=$(sed -n 's/^#define FEOX_VERSION "\(.*\)"$/\1/p' "$repo/engine/feox.h")
[ -n "$version" ] && [ -n "$soversion" ] || fail "VERSION / SOVERSION not found in the Makefile"
[ "$version" = "$header_version" ] || fail "Makefile VERSION $version != feox.h FEOX_VERSION $header_version"
for f in libfeox.a libfeox.so feox.so; do
    [ -f "$repo/$build/$f" ] || fail "$build/$f is missing (run make B=$build all first)"
done
multiarch=$("$cc" -print-multiarch 2>/dev/null || true)
system_ext_dir=/usr/lib${multiarch:+/$multiarch}

# ld.so's trusted system directories, as the dynamic loader itself reports them for a .load.
system_search_path() {
    (cd "$tmp" && env -u LD_LIBRARY_PATH LD_DEBUG=libs "$SQLITE3" :memory: \
        '.load feox_install_test_no_such_extension' 2>&1 || true) |
        grep -m1 '(system search path)' | sed -e 's/.*search path=//' -e 's/[[:space:]]*(system search path).*//' |
        tr ':' '\n'
}

dynamic_needed() { # the DT_NEEDED entries of an ELF file
    readelf -d "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'
}

# search TEXT GREP-ARGS...: grep the text of a finished command. Never pipe a command into
# `grep -q` here: grep exits at its first match, the writer dies of SIGPIPE, and under pipefail
# the pipeline then fails although it matched.
search() {
    local text=$1
    shift
    grep "$@" <<<"$text" >/dev/null
}

check_install() { # prefix expected-ext-dir
    local prefix=$1 extdir=$2
    local stage root libdir pcdir out
    stage=$(mktemp -d "$tmp/stage.XXXXXX")
    root=$stage$prefix
    libdir=$root/lib
    echo "== make install DESTDIR=<tmp> PREFIX=$prefix (feox.so expected in $extdir)"
    run_make DESTDIR="$stage" PREFIX="$prefix" install

    # 1. exactly the expected files, with the right types, targets and contents
    printf '%s\n' "$prefix/include/feox.h" "$prefix/include/feox_storage.h" "$prefix/lib/libfeox.a" "$prefix/lib/libfeox.so" \
        "$prefix/lib/libfeox.so.$soversion" "$prefix/lib/libfeox.so.$version" \
        "$prefix/lib/pkgconfig/feox.pc" "$extdir/feox.so" | sort -u >"$tmp/expected"
    (cd "$stage" && find . ! -type d | sed 's|^\.||' | sort) >"$tmp/actual"
    diff -u "$tmp/expected" "$tmp/actual" >&2 || fail "installed files differ from the expected list"
    for f in "$root/include/feox.h" "$root/include/feox_storage.h" "$libdir/libfeox.a" "$libdir/libfeox.so.$version" \
        "$libdir/pkgconfig/feox.pc" "$stage$extdir/feox.so"; do
        [ -f "$f" ] && [ ! -L "$f" ] || fail "${f#"$stage"} is not a regular file"
    done
    [ "$(readlink "$libdir/libfeox.so.$soversion")" = "libfeox.so.$version" ] ||
        fail "libfeox.so.$soversion does not point to libfeox.so.$version"
    [ "$(readlink "$libdir/libfeox.so")" = "libfeox.so.$soversion" ] ||
        fail "libfeox.so does not point to libfeox.so.$soversion"
    cmp -s "$repo/engine/feox.h" "$root/include/feox.h" || fail "installed feox.h differs"
    cmp -s "$repo/engine/feox_storage.h" "$root/include/feox_storage.h" ||
        fail "installed feox_storage.h differs"
    cmp -s "$repo/$build/libfeox.a" "$libdir/libfeox.a" || fail "installed libfeox.a differs"
    cmp -s "$repo/$build/libfeox.so" "$libdir/libfeox.so.$version" || fail "installed libfeox.so differs"
    cmp -s "$repo/$build/feox.so" "$stage$extdir/feox.so" || fail "installed feox.so differs"
    [ "$(stat -c %a "$root/include/feox.h") $(stat -c %a "$libdir/pkgconfig/feox.pc")" = "644 644" ] ||
        fail "feox.h / feox.pc are not mode 644"
    search "$(readelf -d "$libdir/libfeox.so.$version")" "(SONAME).*\[libfeox.so.$soversion\]" ||
        fail "libfeox.so.$version has no soname libfeox.so.$soversion"
    search "$(nm -D --defined-only "$stage$extdir/feox.so")" -w sqlite3_feox_init ||
        fail "feox.so does not export sqlite3_feox_init"

    # 2. pkg-config: the staged file as installed, then a copy pointing into the staging dir
    out=$(PKG_CONFIG_PATH=$libdir/pkgconfig pkg-config --modversion feox) || fail "pkg-config cannot read feox.pc"
    [ "$out" = "$version" ] || fail "pkg-config --modversion feox gave '$out', not $version"
    for var in prefix:"$prefix" libdir:"$prefix/lib" includedir:"$prefix/include"; do
        out=$(PKG_CONFIG_PATH=$libdir/pkgconfig pkg-config --variable="${var%%:*}" feox)
        [ "$out" = "${var#*:}" ] || fail "feox.pc ${var%%:*} is '$out', not '${var#*:}'"
    done
    pcdir=$tmp/pc-$(basename "$stage")
    mkdir -p "$pcdir"
    sed "s|^prefix=.*|prefix=$root|" "$libdir/pkgconfig/feox.pc" >"$pcdir/feox.pc"
    local cflags libs static_libs
    cflags=$(PKG_CONFIG_PATH=$pcdir pkg-config --cflags feox | sed "s/[[:space:]]*$//")
    libs=$(PKG_CONFIG_PATH=$pcdir pkg-config --libs feox)
    static_libs=$(PKG_CONFIG_PATH=$pcdir pkg-config --static --libs feox)
    echo "   pkg-config --cflags --libs feox:   $cflags $libs"
    echo "   pkg-config --static --libs feox:   $static_libs"
    [ "$cflags" = "-I$root/include" ] || fail "--cflags should be just -I<stage>$prefix/include"
    case " $libs " in *" -L$libdir -lfeox "*) ;; *) fail "--libs lacks -L<stage>$prefix/lib -lfeox" ;; esac
    for l in -lck -lcjson -lxxhash -lpthread -lm; do
        case " $static_libs " in *" $l "*) ;; *) fail "pkg-config --static --libs feox lacks $l" ;; esac
    done

    # shared: needs libfeox.so.X at run time, found through LD_LIBRARY_PATH
    # shellcheck disable=SC2086
    "$cc" -std=c11 -Wall -Wextra -Werror "$repo/tests/install/hello_feox.c" $cflags $libs \
        -o "$tmp/hello_shared" || fail "building hello_feox against libfeox.so"
    search "$(dynamic_needed "$tmp/hello_shared")" -x "libfeox.so.$soversion" ||
        fail "hello_shared does not need libfeox.so.$soversion"
    search "$(LD_LIBRARY_PATH=$libdir ldd "$tmp/hello_shared")" -F "libfeox.so.$soversion => $libdir/libfeox.so.$soversion" ||
        fail "hello_shared does not resolve libfeox.so.$soversion to the staged library"
    out=$(LD_LIBRARY_PATH=$libdir "$tmp/hello_shared") || fail "hello_shared exited $?"
    echo "   shared: $out"

    # static: the same flags with --static, libfeox.a instead of libfeox.so
    static_libs=$(printf '%s\n' "$static_libs" | sed 's/\(^\| \)-lfeox\( \|$\)/\1-l:libfeox.a\2/')
    # shellcheck disable=SC2086
    "$cc" -std=c11 -Wall -Wextra -Werror "$repo/tests/install/hello_feox.c" $cflags $static_libs \
        -o "$tmp/hello_static" || fail "building hello_feox against libfeox.a with pkg-config --static"
    ! search "$(dynamic_needed "$tmp/hello_static")" libfeox || fail "hello_static still needs libfeox.so"
    out=$(env -u LD_LIBRARY_PATH "$tmp/hello_static") || fail "hello_static exited $?"
    echo "   static: $out"

    # 3. .load feox from another directory, the staged SQLITE_EXT_DIR on LD_LIBRARY_PATH
    mkdir -p "$tmp/elsewhere"
    out=$(cd "$tmp/elsewhere" && LD_LIBRARY_PATH=$stage$extdir LD_DEBUG=libs LD_DEBUG_OUTPUT=$tmp/lddebug \
        "$SQLITE3" -bail -cmd '.load feox' :memory: \
        "CREATE VIRTUAL TABLE kv USING feox; INSERT INTO kv(key, value) VALUES ('a', 'from sql');
         SELECT value FROM kv WHERE key = 'a';") || fail "sqlite3 could not .load feox"
    [ "$out" = "from sql" ] || fail ".load feox: got '$out'"
    search "$(cat "$tmp"/lddebug.*)" -F "calling init: $stage$extdir/feox.so" ||
        fail ".load feox did not load the staged $extdir/feox.so"
    rm -f "$tmp"/lddebug.*
    echo "   sqlite3 in another directory: .load feox -> $out"

    # 4. uninstall leaves nothing but (empty) directories
    run_make DESTDIR="$stage" PREFIX="$prefix" uninstall
    out=$(cd "$stage" && find . ! -type d)
    [ -z "$out" ] || fail "make uninstall left: $out"
    echo "   make uninstall: nothing left"
}

# The default prefix: feox.so goes where dlopen("feox.so") looks without any configuration.
system_search_path >"$tmp/syspath"
[ -s "$tmp/syspath" ] || fail "could not read ld.so's system search path (LD_DEBUG=libs)"
grep -qx "$system_ext_dir" "$tmp/syspath" ||
    fail "$system_ext_dir is not in ld.so's system search path: $(tr '\n' ' ' <"$tmp/syspath")"
echo "== default SQLITE_EXT_DIR $system_ext_dir is in ld.so's system search path"
check_install /usr/local "$system_ext_dir"
# Any other prefix keeps everything under it.
check_install /opt/feox /opt/feox/lib
echo "install tests passed"
