#!/bin/sh
# Builds the external benchmark programs of bench/src/main.rs into target/peers/:
#
#   wsrt_bench   wsrt through its C ABI (include/wsrt.h, a private copy of libwsrt.so)
#   omp_bench    OpenMP tasks (gcc -fopenmp)
#   tbb_bench    oneTBB task_group (installs libtbb-dev with apt-get when missing and possible)
#
# A program that cannot be built is skipped: PROGRAM.skip holds the reason,
# which bench/src/main.rs shows in that column. Usage:
#
#   bench/peers/build.sh [LIBDIR [OUTDIR]]   (defaults: target/release, target/peers)
#
# CC and CXX choose the compilers (gcc, g++). Up-to-date programs are not rebuilt.
set -u

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
libdir=${1:-$root/target/release}
out=${2:-$root/target/peers}
CC=${CC:-gcc}
CXX=${CXX:-g++}
CFLAGS="-O2 -g -std=gnu11 -Wall -Wextra"
CXXFLAGS="-O2 -g -std=c++17 -Wall -Wextra"
mkdir -p "$out"

say() { echo "build.sh: $*" >&2; }

skip() { # NAME REASON
    rm -f "$out/$1"
    echo "$2" >"$out/$1.skip"
    say "skipping $1: $2"
}

# True if OUTPUT exists and is newer than every DEPENDENCY.
uptodate() {
    target=$1
    shift
    [ -f "$target" ] || return 1
    for dep in "$@"; do
        [ "$target" -nt "$dep" ] || return 1
    done
    return 0
}

# compile NAME COMMAND...: runs the compiler, records success or the reason.
compile() {
    name=$1
    shift
    if "$@" >"$out/$name.log" 2>&1; then
        rm -f "$out/$name.skip"
        say "built $out/$name"
    else
        why=$(grep -m1 -i error "$out/$name.log" || tail -n1 "$out/$name.log")
        skip "$name" "compile failed: ${why:-$1 failed without output} (log: $out/$name.log)"
    fi
}

# ---- wsrt (C ABI) ----
# A private copy of the library (replaced by rename, never overwritten in
# place) so that a concurrent `cargo build` cannot change it under a run.
# It is stored under its soname (what the program will ask the loader for)
# with libwsrt.so pointing to it for the link.
lib="$libdir/libwsrt.so"
if [ -f "$lib" ]; then
    soname=$(readelf -d "$lib" 2>/dev/null | sed -n 's/.*Library soname: \[\(.*\)\].*/\1/p')
    [ -n "$soname" ] || soname=libwsrt.so
    if ! cmp -s "$lib" "$out/$soname"; then
        cp "$lib" "$out/$soname.tmp" && mv -f "$out/$soname.tmp" "$out/$soname"
    fi
    [ "$soname" = libwsrt.so ] || ln -sf "$soname" "$out/libwsrt.so"
    if uptodate "$out/wsrt_bench" "$here/wsrt_bench.c" "$here/common.h" "$root/include/wsrt.h" "$out/$soname"; then
        rm -f "$out/wsrt_bench.skip"
    else
        compile wsrt_bench $CC $CFLAGS -I"$root/include" "$here/wsrt_bench.c" -o "$out/wsrt_bench" \
            -L"$out" -lwsrt -Wl,-rpath,'$ORIGIN' -lpthread
    fi
else
    skip wsrt_bench "no $lib (run: cargo build --release -p wsrt --lib)"
fi

# ---- OpenMP ----
if uptodate "$out/omp_bench" "$here/omp_bench.c" "$here/common.h"; then
    rm -f "$out/omp_bench.skip"
else
    compile omp_bench $CC $CFLAGS -fopenmp "$here/omp_bench.c" -o "$out/omp_bench"
fi

# ---- oneTBB ----
have_tbb() {
    echo '#include <oneapi/tbb/task_group.h>' | $CXX -x c++ -std=c++17 -E - >/dev/null 2>&1
}

if ! have_tbb; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        say "oneTBB headers missing: apt-get install -y libtbb-dev (log: $out/tbb-install.log)"
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y libtbb-dev >"$out/tbb-install.log" 2>&1 ||
            { apt-get update >>"$out/tbb-install.log" 2>&1 &&
                apt-get install -y libtbb-dev >>"$out/tbb-install.log" 2>&1; }
    fi
fi

if ! have_tbb; then
    if [ "$(id -u)" = 0 ]; then
        skip tbb_bench "libtbb-dev missing and apt-get install failed (see $out/tbb-install.log)"
    else
        skip tbb_bench "libtbb-dev missing (not root: cannot apt-get install it)"
    fi
elif uptodate "$out/tbb_bench" "$here/tbb_bench.cpp" "$here/common.h"; then
    rm -f "$out/tbb_bench.skip"
else
    compile tbb_bench $CXX $CXXFLAGS "$here/tbb_bench.cpp" -o "$out/tbb_bench" -ltbb -lpthread
fi

exit 0
