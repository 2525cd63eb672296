#!/usr/bin/env bash
# The arm64 (aarch64) release, built and tested on an x86_64 machine as CI does it:
#
#   1. the emulator and an aarch64 glibc for its loader: Debian's qemu-user (or
#      qemu-user-static) and libc6-arm64-cross, installed with apt-get when missing; a failed
#      install stops here with a line naming what is missing (arm64 is never skipped);
#   2. the release, `scripts/dist.sh --arch aarch64` (glibc floor 2.17, the libraries it needs,
#      the five exports: dist.sh exits 1 otherwise), and its SHA256SUMS checked;
#   3. clippy on the aarch64 build (the NEON scan compiles only there); the library's unit
#      tests (among them the escaping scan's: NEON against the byte-by-byte definition, every
#      byte at every position and proptest) and the integration tests, built for aarch64 by
#      cargo-zigbuild (Zig's cc for ring and flb-host's C stand-in) and run by qemu-aarch64
#      as Cargo's target runner: the test binary is an aarch64 process that loads the
#      aarch64 library as Fluent Bit does, and runs its child processes through the emulator
#      too (FLB_TEST_RUNNER); moto (python) stays native on loopback;
#   4. the release's check command, under the emulator, finds and loads its library.
#
#   bash scripts/arm64-test.sh                  # all of it, as CI runs it
#   bash scripts/arm64-test.sh -- FILTER...     # only these integration tests (cargo test filters)
#
# The integration tests run against the release library (FLB_CLOUDWATCH_LIBRARY), except the
# one that needs the debug-only panic tag: it runs against the aarch64 dev-profile library the
# test build makes beside the test binary, as on x86_64 in .ci/run. One does not run: it
# reads the process's resident memory after malloc_trim gives a burst's memory back, and
# qemu-user (Debian's 7.2) ignores the madvise calls that give it back, so under emulation
# the memory never returns (seen: 38,656 KiB before, 76,800 after, 69,928 a minute later).
set -euo pipefail
cd "$(dirname "$0")/.."

NOT_UNDER_EMULATION=(engine_::a_burst_s_memory_is_given_back_once_it_pauses)
filters=()
case "${1:-}" in
  --) shift; filters=("$@") ;;
  "") ;;
  *) echo "arm64-test: unknown argument '$1' (accepted: -- FILTER...)" >&2; exit 2 ;;
esac
skips=()
for t in "${NOT_UNDER_EMULATION[@]}" abi_::a_panic_becomes_a_return_code; do
  skips+=(--skip "$t")
done

# --- 1. the emulator and the aarch64 loader ---------------------------------------------
prefix=/usr/aarch64-linux-gnu
qemu_found() { command -v qemu-aarch64 || command -v qemu-aarch64-static; }
missing() {
  qemu_found >/dev/null || echo qemu-user
  [ -e "$prefix/lib/ld-linux-aarch64.so.1" ] || echo libc6-arm64-cross
}
need=$(missing)
if [ -n "$need" ]; then
  echo "arm64-test: installing $(echo $need) (apt-get)" >&2
  log=$(mktemp)
  { apt-get update -qq \
      && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need; } \
    >"$log" 2>&1 || tail -20 "$log" >&2
  rm -f "$log"
  need=$(missing)
  [ -z "$need" ] || { echo "arm64-test: could not install $(echo $need) with apt-get: arm64 cannot be tested"; exit 1; }
fi
qemu=$(qemu_found)
echo "arm64-test: $($qemu --version | head -1), loader from $prefix" >&2

# --- 2. the release -----------------------------------------------------------------------
bash scripts/dist.sh --arch aarch64
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
dist=$PWD/dist/flb-out-cloudwatch-$version-aarch64-linux-gnu
(cd "$dist" && sha256sum --quiet -c SHA256SUMS)
echo "arm64-test: $dist: SHA256SUMS ok" >&2

# --- 3. the tests, built for aarch64 and run by the emulator ------------------------------
# The tools dist.sh installed, with its settings (scripts/dist.sh, "tools").
target=$(cd "${CARGO_TARGET_DIR:-target}" && pwd)
tools=$target/dist-tools
export PATH=$tools/bin:$PATH
export CARGO_ZIGBUILD_PYTHON_PATH=$tools/zig/bin/python3
export ZIG_GLOBAL_CACHE_DIR=$tools/zig-cache CARGO_ZIGBUILD_CACHE_DIR=$tools/zigbuild-cache
# The emulator runs every aarch64 binary Cargo runs, and the tests' children (support::run_child).
export QEMU_LD_PREFIX=$prefix
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER=$qemu FLB_TEST_RUNNER=$qemu
triple=aarch64-unknown-linux-gnu
# (`cargo zigbuild` is a build alone: tests are cargo-zigbuild's own `test` command.)
cargo-zigbuild test --locked --target "$triple" --no-run --lib --test it -p flb-out-cloudwatch
# The lints on the code only aarch64 compiles (the NEON scan), as .ci/run's on x86_64's.
cargo-zigbuild clippy --locked --target "$triple" -p flb-out-cloudwatch --lib --tests -- -D warnings
cargo-zigbuild test --locked --target "$triple" --lib -p flb-out-cloudwatch
FLB_CLOUDWATCH_LIBRARY=$dist/libflb_out_cloudwatch.so \
  cargo-zigbuild test --locked --target "$triple" --test it -p flb-out-cloudwatch -- \
  ${filters[@]+"${filters[@]}"} "${skips[@]}"
# Against the dev-profile library the test build put beside the test binary.
if [ ${#filters[@]} -eq 0 ]; then
  env -u FLB_CLOUDWATCH_LIBRARY \
    cargo-zigbuild test --locked --target "$triple" --test it -p flb-out-cloudwatch -- \
    --exact abi_::a_panic_becomes_a_return_code
fi

# --- 4. the release's check command, under the emulator -----------------------------------
# As .ci/run does for x86_64: it starts and finds the library beside it (the later steps need
# AWS: here they fail on a closed loopback port, as they should).
check_out=$(env -u FLB_CLOUDWATCH_LIBRARY AWS_EC2_METADATA_DISABLED=true \
  AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE AWS_SECRET_ACCESS_KEY=example \
  AWS_CONFIG_FILE=/nonexistent AWS_SHARED_CREDENTIALS_FILE=/nonexistent \
  "$qemu" "$dist/flb-cloudwatch-check" -p region=us-east-1 -p log_group_name=ci \
  -p log_stream_name=ci -p endpoint=http://127.0.0.1:9 -p sts_endpoint=http://127.0.0.1:9 \
  --dry-run 2>&1 || true)
echo "$check_out"
grep -q "✓ library: $dist/libflb_out_cloudwatch.so registers as 'cloudwatch'" <<<"$check_out" \
  && grep -q "✓ options" <<<"$check_out" \
  || { echo "arm64-test: the aarch64 flb-cloudwatch-check did not load its library and run Init"; exit 1; }
echo "arm64-test: ok ($dist; integration tests: ${filters[*]:-all but ${NOT_UNDER_EMULATION[*]}})"
