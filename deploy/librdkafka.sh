#!/usr/bin/env bash
# Builds librdkafka 2.3.0 from source into a prefix the project's CMake
# prefers over Debian's package (deploy/packages.txt's librdkafka-dev, 2.0.2,
# stays installed: it brings the build dependencies: OpenSSL, zlib, zstd,
# lz4, SASL).
#
# Why not Debian's 2.0.2: once a consumer's prefetch queue reaches
# queued.min.messages or queued.max.messages.kbytes, 2.0.2 stops fetching for
# a fixed 1 s (a partition's next fetch is decided on a 1 s tick). notify,
# whose prefetch must stay small for its RSS goal, lost most of its goodput to
# that (docs/PERFORMANCE.md). 2.1.0 made the wait `fetch.queue.backoff.ms`;
# the services set it low when the library has it.
#
# The source is librdkafka's own tree as bundled in the rdkafka-sys crate on
# crates.io (a registry reachable where GitHub is not), pinned by checksum.
#
#   librdkafka.sh build [PREFIX]   fetch, check, build and install into PREFIX
#                                  (default: <repo>/var/librdkafka); a no-op
#                                  when PREFIX already holds this version
#   librdkafka.sh prefix           print the default prefix
#
# Environment: OF_RDKAFKA_SRC_URL (another copy of the same crate file),
# JOBS (parallel make jobs, default: the number of CPUs).
set -euo pipefail

version=2.3.0
crate=rdkafka-sys-4.8.0+$version
sha256=ced38182dc436b3d9df0c77976f37a67134df26b050df1f0006688e46fc4c8be
url="${OF_RDKAFKA_SRC_URL:-https://static.crates.io/crates/rdkafka-sys/$crate.crate}"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
default_prefix="$root/var/librdkafka"

die() { echo "librdkafka.sh: $*" >&2; exit 1; }

cmd_build() {
    local prefix="${1:-$default_prefix}" stamp
    stamp="$prefix/.orderflow-librdkafka-$version"
    if [[ -f "$stamp" && -e "$prefix/lib/librdkafka.so.1" ]]; then
        return 0
    fi
    command -v curl >/dev/null || die "curl not found (run deploy/install-deps.sh)"
    command -v make >/dev/null || die "make not found (run deploy/install-deps.sh)"
    work="$(mktemp -d "${TMPDIR:-/tmp}/orderflow-librdkafka.XXXXXX")"
    trap 'rm -rf "${work:-}"' EXIT
    echo "librdkafka.sh: fetching librdkafka $version ($url)" >&2
    curl -fsSL --retry 3 -o "$work/src.crate" "$url" || die "download failed: $url"
    echo "$sha256  $work/src.crate" | sha256sum -c --quiet - \
        || die "checksum mismatch for $url (expected $sha256)"
    tar -xzf "$work/src.crate" -C "$work" || die "cannot unpack $url"
    local src="$work/$crate/librdkafka"
    [[ -x "$src/configure" ]] || die "no librdkafka tree in $url"
    echo "librdkafka.sh: building librdkafka $version into $prefix" >&2
    (
        cd "$src"
        ./configure --prefix="$prefix" >"$work/configure.log" 2>&1 \
            || { tail -n 30 "$work/configure.log" >&2; exit 1; }
        make -j"${JOBS:-$(nproc)}" libs >"$work/make.log" 2>&1 \
            || { tail -n 30 "$work/make.log" >&2; exit 1; }
        make install-subdirs >"$work/install.log" 2>&1 \
            || { tail -n 30 "$work/install.log" >&2; exit 1; }
    ) || die "building librdkafka $version failed"
    # Only the C library is used: drop the C++ one and the static archives.
    rm -f "$prefix"/lib/librdkafka++* "$prefix"/lib/*.a \
          "$prefix"/lib/pkgconfig/rdkafka++*.pc "$prefix"/lib/pkgconfig/rdkafka-static.pc
    rm -rf "$prefix/include/librdkafka/rdkafkacpp.h" "$prefix/share"
    touch "$stamp"
    echo "librdkafka.sh: librdkafka $version installed in $prefix" >&2
}

case "${1:-}" in
    build) shift; cmd_build "$@" ;;
    prefix) echo "$default_prefix" ;;
    *) die "usage: librdkafka.sh build [PREFIX] | prefix" ;;
esac
