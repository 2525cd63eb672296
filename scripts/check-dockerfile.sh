#!/usr/bin/env bash
# Checks the Dockerfile without a Docker engine: the default AWS for Fluent Bit image is a 3.x
# release (2.x reached end of life on 2026-06-30 and is only a build argument), the build
# stage is the release recipe (scripts/dist.sh, its output moved to /out), and the runtime
# stages take the library from there and nowhere else. Prints one line and exits 1 at the
# first thing that is wrong.
#
#   bash scripts/check-dockerfile.sh [PATH]    # PATH defaults to the repository's Dockerfile
set -euo pipefail

file=${1:-"$(dirname "$0")/../Dockerfile"}
fail() { echo "check-dockerfile: $file: $*"; exit 1; }
[[ -r $file ]] || fail "cannot be read"

# Instructions one per line: continuation lines joined, comments and blank lines dropped.
mapfile -t lines < <(sed -e '/^[[:space:]]*#/d' -e '/^[[:space:]]*$/d' "$file" \
  | sed -e ':a' -e '/\\$/{N;s/\\\n//;ba' -e '}')

# The default of the AWS base image: a 3.x tag of aws-for-fluent-bit (optionally pinned by digest).
default=
for l in "${lines[@]}"; do
  if [[ $l =~ ^ARG[[:space:]]+AWS_FOR_FLUENT_BIT_IMAGE=([^[:space:]]+) ]]; then
    default=${BASH_REMATCH[1]}
  fi
done
[[ -n $default ]] || fail "no default for ARG AWS_FOR_FLUENT_BIT_IMAGE"
[[ $default =~ ^([a-z0-9.-]+/)*aws-for-fluent-bit:3(\.[0-9]+)*(@sha256:[0-9a-f]{64})?$ ]] \
  || fail "the default AWS_FOR_FLUENT_BIT_IMAGE is $default, not a 3.x tag of aws-for-fluent-bit"

# Split into stages: the stage name of each instruction (the AS name, or the FROM image).
stage=
build_dist=0 build_out=0 aws_in_place=0
declare -A copies=()
for l in "${lines[@]}"; do
  if [[ $l =~ ^FROM[[:space:]]+([^[:space:]]+)([[:space:]]+AS[[:space:]]+([^[:space:]]+))? ]]; then
    stage=${BASH_REMATCH[3]:-${BASH_REMATCH[1]}}
    continue
  fi
  if [[ $stage == build ]]; then
    # scripts/dist.sh run for the artifact (not only its --tools-only step) ...
    if [[ $l =~ ^RUN[[:space:]] && $l == *scripts/dist.sh* && $l != *--tools-only* ]]; then
      build_dist=1
      # ... and its output directory becomes /out, where the runtime stages copy from.
      [[ $l =~ dist/flb-out-cloudwatch-[^[:space:]]*linux-gnu[[:space:]]+/out([[:space:]]|$) ]] \
        && build_out=1
    fi
  elif [[ $l =~ ^(COPY|ADD)[[:space:]] && $l == *libflb_out_cloudwatch.so* ]]; then
    [[ $l =~ ^COPY[[:space:]]+--from=build[[:space:]]+/out/libflb_out_cloudwatch\.so[[:space:]] ]] \
      || fail "stage $stage takes the library from elsewhere than the build stage's /out: $l"
    copies[$stage]=$(( ${copies[$stage]:-0} + 1 ))
    [[ $stage == aws && $l =~ [[:space:]]/fluent-bit/cloudwatch\.so$ ]] && aws_in_place=1
  elif [[ $stage != build && $l =~ ^(COPY|ADD)[[:space:]].*/fluent-bit/cloudwatch\.so ]]; then
    fail "stage $stage puts something other than the library at /fluent-bit/cloudwatch.so: $l"
  fi
done
(( build_dist )) || fail "the build stage no longer runs scripts/dist.sh"
(( build_out )) || fail "the build stage no longer moves scripts/dist.sh's output to /out"
for s in aws upstream; do
  [[ -n ${copies[$s]:-} ]] || fail "stage $s does not copy the library from the build stage"
done
(( aws_in_place )) || fail "stage aws does not put the library at /fluent-bit/cloudwatch.so"
echo "check-dockerfile: ok ($default; library from scripts/dist.sh via /out in stages aws, upstream)"
