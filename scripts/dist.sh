#!/usr/bin/env bash
# Makes the release: the plugin library and `flb-cloudwatch-check`, built with Cargo's `dist`
# profile (release + fat LTO) and linked by Zig against glibc 2.17 so that they load on every
# FireLens image (AWS for Fluent Bit 3.x is Amazon Linux 2023 with glibc 2.34, the
# end-of-life 2.x Amazon Linux 2 with glibc 2.26; the upstream images are newer), checked and
# stripped, in
#
#   dist/flb-out-cloudwatch-<version>-<arch>-linux-gnu/
#     libflb_out_cloudwatch.so  flb-cloudwatch-check  plugins.conf  INSTALL.md  SHA256SUMS
#
# and the same directory as a .tar.gz beside it. INSTALL.md is the README's Install section.
#
#   scripts/dist.sh                  # x86_64 (amd64)
#   scripts/dist.sh --arch aarch64   # arm64 (Graviton, Fargate ARM64): natively on arm64, or
#                                    # cross-linked by Zig elsewhere (with rustup's aarch64
#                                    # standard library, which it adds when missing)
#   scripts/dist.sh --tools-only     # install the tools and stop (the Dockerfile's tool layer)
#   scripts/dist.sh --dev-lib        # only the library, dev profile (debug assertions), linked
#                                    # the same way, in target/<triple>/debug/: CI's check that
#                                    # a panic is still caught in a Zig-linked library
#
# The tools are installed once, pinned, into target/dist-tools/: Zig from PyPI (`ziglang`) in
# a Python venv, cargo-zigbuild from crates.io. Needs Rust stable, python3 with venv and pip,
# binutils (objdump, readelf, strip) and coreutils. The result is refused (exit 1) when a
# file needs a glibc symbol version newer than 2.17 or a library other than glibc's, or
# when the library does not export the five FLBPlugin* functions.
set -euo pipefail
cd "$(dirname "$0")/.."

ZIG_VERSION=0.15.2            # PyPI ziglang
CARGO_ZIGBUILD_VERSION=0.24.1 # crates.io cargo-zigbuild
GLIBC=2.17

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
arch=x86_64
tools_only=
dev_lib=
while [ $# -gt 0 ]; do
  case "$1" in
    --arch) arch=${2:?--arch needs x86_64 or aarch64}; shift 2 ;;
    --arch=*) arch=${1#--arch=}; shift ;;
    --tools-only) tools_only=1; shift ;;
    --dev-lib) dev_lib=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "dist.sh: unknown argument '$1' (accepted: --arch x86_64|aarch64, --tools-only, --dev-lib, --help)" >&2; exit 2 ;;
  esac
done
case "$arch" in
  x86_64|amd64) arch=x86_64 ;;
  aarch64|arm64) arch=aarch64 ;;
  *) echo "dist.sh: --arch '$arch' is not supported (accepted: x86_64, aarch64)" >&2; exit 2 ;;
esac
triple=$arch-unknown-linux-gnu

# --- tools, pinned and cached under target/ ---------------------------------------------
target=${CARGO_TARGET_DIR:-target}
tools=$(mkdir -p "$target" && cd "$target" && pwd)/dist-tools
venv=$tools/zig
if [ "$("$venv/bin/python3" -m ziglang version 2>/dev/null)" != "$ZIG_VERSION" ]; then
  echo "dist.sh: installing Zig $ZIG_VERSION (PyPI ziglang) into $venv" >&2
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "ziglang==$ZIG_VERSION"
fi
if [ "$("$tools/bin/cargo-zigbuild" --version 2>/dev/null)" != "cargo-zigbuild $CARGO_ZIGBUILD_VERSION" ]; then
  echo "dist.sh: installing cargo-zigbuild $CARGO_ZIGBUILD_VERSION into $tools" >&2
  cargo install --quiet --locked --force --version "$CARGO_ZIGBUILD_VERSION" \
    --root "$tools" cargo-zigbuild
fi
[ -z "$tools_only" ] || exit 0
export PATH=$tools/bin:$PATH
export CARGO_ZIGBUILD_PYTHON_PATH=$venv/bin/python3 # `python3 -m ziglang` is the Zig used
export ZIG_GLOBAL_CACHE_DIR=$tools/zig-cache CARGO_ZIGBUILD_CACHE_DIR=$tools/zigbuild-cache
if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx "$triple"; then
  rustup target add "$triple"
fi

# --- build ------------------------------------------------------------------------------
if [ -n "$dev_lib" ]; then
  cargo zigbuild --locked --target "$triple.$GLIBC" --lib -p flb-out-cloudwatch
  echo "made $target/$triple/debug/libflb_out_cloudwatch.so (dev profile, glibc >= $GLIBC, $arch)"
  exit 0
fi
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
name=flb-out-cloudwatch-$version-$arch-linux-gnu
out=dist/$name
start=$SECONDS
cargo zigbuild --profile dist --locked --target "$triple.$GLIBC" \
  -p flb-out-cloudwatch -p flb-cloudwatch-check
built=$target/$triple/dist

rm -rf "$out" "$out.tar.gz"
mkdir -p "$out"
cp "$built/libflb_out_cloudwatch.so" "$built/flb-cloudwatch-check" "$out/"
# Symbols are already gone (profile.release strip); this drops what the linker kept besides.
# The host's strip reads only its own architecture; elsewhere the profile's strip stands.
if strip --strip-unneeded "$out/libflb_out_cloudwatch.so" "$out/flb-cloudwatch-check" 2>/dev/null; then
  :
else
  echo "dist.sh: host strip cannot read $arch files: kept as linked (already stripped by cargo)" >&2
fi
cp examples/plugins.conf "$out/"
# The README's Install section, up to the next second-level heading.
awk '/^## /{on = ($0 == "## Install")} on' README.md > "$out/INSTALL.md"
[ -s "$out/INSTALL.md" ] || { echo "dist.sh: README.md has no '## Install' section" >&2; exit 1; }

# --- checks -----------------------------------------------------------------------------
fail=0
for f in "$out/libflb_out_cloudwatch.so" "$out/flb-cloudwatch-check"; do
  syms=$(objdump -T "$f")
  too_new=()
  for v in $(grep -o 'GLIBC_[0-9][0-9.]*' <<<"$syms" | sed 's/^GLIBC_//' | sort -u -V); do
    [ "$(printf '%s\n' "$GLIBC" "$v" | sort -V | tail -1)" = "$GLIBC" ] || too_new+=("$v")
  done
  if [ ${#too_new[@]} -gt 0 ]; then
    echo "dist.sh: $f needs glibc newer than $GLIBC:" >&2
    for v in "${too_new[@]}"; do
      grep -E "GLIBC_${v//./\\.}([^0-9.]|$)" <<<"$syms" | awk '{print "  " $NF " " $(NF-1)}' >&2
    done
    fail=1
  fi
  newest=$(grep -o 'GLIBC_[0-9][0-9.]*' <<<"$syms" | sort -u -V | tail -1)
  needed=$(readelf -d "$f" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
  others=$(grep -Ev '^(libc\.so\.6|libm\.so\.6|libdl\.so\.2|libpthread\.so\.0|librt\.so\.1|libutil\.so\.1|libgcc_s\.so\.1|ld-linux-(x86-64|aarch64)\.so\.[12])$' <<<"$needed" || true)
  if [ -n "$others" ]; then
    echo "dist.sh: $f needs libraries beyond glibc's: $others" >&2
    fail=1
  fi
  echo "checked $f: newest symbol version ${newest:-none}, needs $(echo $needed)" >&2
done
for sym in FLBPluginRegister FLBPluginInit FLBPluginFlushCtx FLBPluginExitCtx FLBPluginUnregister; do
  objdump -T "$out/libflb_out_cloudwatch.so" | awk -v s="$sym" '$NF == s && $0 !~ /\*UND\*/ { found = 1 } END { exit !found }' \
    || { echo "dist.sh: missing export: $sym" >&2; fail=1; }
done
[ "$fail" = 0 ] || { echo "dist.sh: $out does not pass its checks" >&2; exit 1; }

(cd "$out" && sha256sum libflb_out_cloudwatch.so flb-cloudwatch-check plugins.conf INSTALL.md > SHA256SUMS)
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C dist -czf "$out.tar.gz" "$name"

echo "made $out (glibc >= $GLIBC, $arch) in $((SECONDS - start)) s:"
(cd "$out" && ls -l --time-style=+ libflb_out_cloudwatch.so flb-cloudwatch-check plugins.conf INSTALL.md SHA256SUMS | awk '{print "  " $5 "\t" $NF}')
echo "  SHA256SUMS:"
sed 's/^/    /' "$out/SHA256SUMS"
echo "and $out.tar.gz ($(stat -c %s "$out.tar.gz") bytes)"
