#!/usr/bin/env bash
# Checks the Dockerfile without a Docker engine: the default AWS for Fluent Bit image is a 3.x
# release (2.x reached end of life on 2026-06-30 and is only a build argument), the build
# stage is the release recipe (one scripts/dist.sh call, with the platform being built as its
# --arch, so amd64 and arm64 get the same call; its output moved to /out; no cargo build of
# its own, nothing else written to /out), and the runtime stages take the library from there
# and nowhere else. Prints one line and exits 1 at the first thing that is wrong.
#
#   bash scripts/check-dockerfile.sh [PATH]    # PATH defaults to the repository's Dockerfile
#   bash scripts/check-dockerfile.sh --self-test
#       # copies of the repository's Dockerfile, each broken in one way, must each be refused
set -euo pipefail

if [[ ${1:-} == --self-test ]]; then
  here=$(dirname "$0")
  dockerfile=$here/../Dockerfile
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  # Each: a sed script that breaks the Dockerfile, and the words the refusal must hold.
  cases=(
    '/^RUN bash scripts\/dist.sh --arch/,/\/out$/d'
    'no longer runs scripts/dist.sh'
    's|bash scripts/dist.sh --arch "${TARGETARCH:-$(uname -m)}"|cargo build --release|'
    'builds with cargo itself'
    's|--arch "${TARGETARCH:-$(uname -m)}"|--arch aarch64|'
    'not the platform being built'
    '/^ARG TARGETARCH/d'
    'not the platform being built'
    's|^RUN bash scripts/dist.sh --arch|RUN cargo build --release \&\& bash scripts/dist.sh --arch|'
    'builds with cargo itself'
    's|^FROM ${AWS_FOR_FLUENT_BIT_IMAGE} AS aws|RUN cp target/release/libflb_out_cloudwatch.so /out/\n&|'
    'writes to /out besides scripts/dist.sh'
    's|COPY --from=build /out/libflb_out_cloudwatch.so /fluent-bit/cloudwatch.so|COPY --from=build /src/target/release/libflb_out_cloudwatch.so /fluent-bit/cloudwatch.so|'
    'takes the library from elsewhere'
    's|aws-for-fluent-bit:3.5.10|aws-for-fluent-bit:2.34.3|'
    'not a 3.x tag'
  )
  bash "$0" "$dockerfile" >/dev/null || { echo "check-dockerfile: self-test: the Dockerfile itself is refused"; exit 1; }
  for ((i = 0; i < ${#cases[@]}; i += 2)); do
    sed -e "${cases[i]}" "$dockerfile" > "$tmp/Dockerfile"
    ! cmp -s "$dockerfile" "$tmp/Dockerfile" \
      || { echo "check-dockerfile: self-test: '${cases[i]}' changed nothing"; exit 1; }
    if out=$(bash "$0" "$tmp/Dockerfile"); then
      echo "check-dockerfile: self-test: accepted a Dockerfile broken by '${cases[i]}'"; exit 1
    fi
    [[ $out == *"${cases[i + 1]}"* ]] \
      || { echo "check-dockerfile: self-test: '${cases[i]}' refused for another reason: $out"; exit 1; }
  done
  echo "check-dockerfile: self-test: ok ($(( ${#cases[@]} / 2 )) broken copies refused)"
  exit 0
fi

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
build_dist=0 build_out=0 build_arch=0 target_arch=0 aws_in_place=0
declare -A copies=()
for l in "${lines[@]}"; do
  if [[ $l =~ ^FROM[[:space:]]+([^[:space:]]+)([[:space:]]+AS[[:space:]]+([^[:space:]]+))? ]]; then
    stage=${BASH_REMATCH[3]:-${BASH_REMATCH[1]}}
    continue
  fi
  if [[ $stage == build ]]; then
    [[ $l =~ ^ARG[[:space:]]+TARGETARCH([[:space:]=]|$) ]] && target_arch=1
    # The library is built by scripts/dist.sh alone: no cargo build beside it.
    [[ $l =~ ^RUN[[:space:]] && $l =~ cargo[[:space:]]+(\+[^[:space:]]+[[:space:]]+)?(build|zigbuild|rustc|install) ]] \
      && fail "the build stage builds with cargo itself, not only through scripts/dist.sh: $l"
    # scripts/dist.sh run for the artifact (not only its --tools-only step), once ...
    if [[ $l =~ ^RUN[[:space:]] && $l == *scripts/dist.sh* && $l != *--tools-only* ]]; then
      (( build_dist == 0 )) || fail "the build stage runs scripts/dist.sh more than once: $l"
      build_dist=1
      # ... for the platform being built (BuildKit's TARGETARCH), so that every platform's
      # library comes from the same call ...
      (( target_arch )) && [[ $l =~ --arch[[:space:]=]+\"?\$\{?TARGETARCH[}:] ]] && build_arch=1
      # ... and its output directory becomes /out, where the runtime stages copy from.
      [[ $l =~ dist/flb-out-cloudwatch-[^[:space:]]*linux-gnu[[:space:]]+/out([[:space:]]|$) ]] \
        && build_out=1
    elif [[ $l =~ (^|[[:space:]])/out(/|[[:space:]]|$) ]]; then
      fail "the build stage writes to /out besides scripts/dist.sh's output: $l"
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
(( build_arch )) || fail "the build stage's scripts/dist.sh --arch is not the platform being built (ARG TARGETARCH, then --arch \"\${TARGETARCH...}\")"
(( build_out )) || fail "the build stage no longer moves scripts/dist.sh's output to /out"
for s in aws upstream; do
  [[ -n ${copies[$s]:-} ]] || fail "stage $s does not copy the library from the build stage"
done
(( aws_in_place )) || fail "stage aws does not put the library at /fluent-bit/cloudwatch.so"
echo "check-dockerfile: ok ($default; library from scripts/dist.sh --arch \$TARGETARCH via /out in stages aws, upstream)"
