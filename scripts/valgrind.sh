#!/usr/bin/env bash
# Runs integration tests under valgrind's memcheck: the test binary, the plugin it loads with
# dlopen, and the child processes the tests start (the same binary again), so the C boundary
# and the hostile-input tests are checked for invalid reads and writes, uses of uninitialised
# memory and bad frees. moto (Python) is not traced.
#
#   scripts/valgrind.sh           # abi_, hostile_ (without the four volume tests), native_,
#                                 # threads_ and the 1.9.10 exit sequence (~3-4 min)
#   scripts/valgrind.sh --full    # all of abi_ and hostile_ (~30 min on 2 cores)
#   scripts/valgrind.sh FILTER... # any test-name filters and libtest flags (e.g. fixtures_)
#
# Exit status: 0 clean; non-zero when a test failed or valgrind found an error (a child's
# errors fail the test that started it, with valgrind's report in the panic message).
# Needs valgrind (Debian package `valgrind`). Debug build.
set -euo pipefail
cd "$(dirname "$0")/.."

case "${1:-}" in
  "") # The volume tests (10 MB, a million records, memory peaks, the mutation smoke test)
      # run the same code as the small cases, fifty times slower under valgrind.
    args=(abi_ hostile_ native_ threads_ dropin_::the_v1_9_10_exit_sequence_with_two_instances --skip a_million_tiny_records --skip a_10_mb_string
      --skip memory_is_proportional --skip fuzz_invariants_hold) ;;
  --full) args=(abi_ hostile_) ;;
  *) args=("$@") ;;
esac

# (Printed with >&2, not `tee /dev/stderr`: reopening stderr truncates it when it is a file.)
built=$(cargo test --test it --no-run 2>&1) || { echo "$built" >&2; exit 1; }
echo "$built" >&2
bin=$(echo "$built" | sed -n 's/^ *Executable tests\/it\/main.rs (\(.*\))$/\1/p' | tail -1)
[ -x "$bin" ] || { echo "test binary not found"; exit 1; }

# --trace-children: run_child re-executes the test binary; those runs are checked too.
# --error-exitcode: any memcheck error fails the (child) process, hence its test.
# Leaks are not errors: the runtime, the loaded library and std keep memory until exit.
exec valgrind --quiet --error-exitcode=99 \
  --trace-children=yes --trace-children-skip='*python*,*/sh,*/bash' \
  --leak-check=no --track-origins=yes \
  "$bin" "${args[@]}" --test-threads=2
