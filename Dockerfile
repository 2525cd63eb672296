# syntax=docker/dockerfile:1
#
# Fluent Bit with this plugin in place of AWS's Go `cloudwatch` plugin.
#
#   docker build -t flb-out-cloudwatch .                              # AWS for Fluent Bit 3.5.10 (Fluent Bit 5.1.5)
#   docker build --build-arg FLAVOR=upstream -t flb-out-cloudwatch .  # fluent/fluent-bit 5.1.5
#   docker buildx build --platform linux/amd64,linux/arm64 -t REPOSITORY:TAG --push .
#
# AWS for Fluent Bit 2.x (Fluent Bit 1.9.10 on Amazon Linux 2) reached end of life on
# 2026-06-30; who still runs it builds on its last release with
#   --build-arg AWS_FOR_FLUENT_BIT_IMAGE=public.ecr.aws/aws-observability/aws-for-fluent-bit:2.34.3
# and nothing else changes: both lines keep the Go plugin at /fluent-bit/cloudwatch.so (3.x
# builds its AL2023 and AL2 images from one runtime Dockerfile that puts it there) and start
# from the same /entrypoint.sh, which runs
#   fluent-bit -e /fluent-bit/firehose.so -e /fluent-bit/cloudwatch.so -e /fluent-bit/kinesis.so -c /fluent-bit/etc/fluent-bit.conf
# FLAVOR=aws (default): the library replaces /fluent-bit/cloudwatch.so, so every FireLens task
# definition with `"Name": "cloudwatch"` uses it unchanged. The stage only copies files, so it
# needs no shell or package manager (3.x images are minimal AL2023 ones).
# FLAVOR=upstream: the library is /fluent-bit/plugins/libflb_out_cloudwatch.so, loaded with
# -e by the image's command; /fluent-bit/plugins/plugins.conf names it for a command of your own.
# Both images carry /fluent-bit/bin/flb-cloudwatch-check, which finds the library through
# FLB_CLOUDWATCH_LIBRARY.
#
# The build stage is the release recipe, scripts/dist.sh: on Debian with the pinned Rust, Zig
# (PyPI ziglang) and cargo-zigbuild link the library and the check command against glibc 2.17,
# so they load in AWS for Fluent Bit 3.x (minimal Amazon Linux 2023, glibc 2.34), in 2.x
# (Amazon Linux 2, glibc 2.26) and in the upstream images alike (a plain `cargo build` on
# bookworm would need glibc 2.34, too new for 2.x). The stage runs on the platform being
# built: with buildx, the arm64 library is built by the same script with the aarch64 target
# on an arm64 builder (a native node, or QEMU emulation, which is slow).
# Not built here (no Docker engine); CI runs the same script for both architectures (the
# arm64 library tested under emulation: scripts/arm64-test.sh). scripts/check-dockerfile.sh
# (run by .ci/run) checks the default image and the stages' wiring without one, among them
# that one `scripts/dist.sh --arch "${TARGETARCH}"` call makes every platform's library.

ARG FLAVOR=aws
ARG AWS_FOR_FLUENT_BIT_IMAGE=public.ecr.aws/aws-observability/aws-for-fluent-bit:3.5.10
ARG FLUENT_BIT_IMAGE=fluent/fluent-bit:5.1.5
ARG RUST_IMAGE=rust:1.95-bookworm

FROM ${RUST_IMAGE} AS build
# python3-venv for Zig's venv; binutils (objdump, readelf, strip) come with the image.
# Versions are the pinned Debian release's.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3-venv \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# The pinned tools first, in a layer of their own that source changes do not invalidate.
COPY scripts/dist.sh scripts/dist.sh
RUN bash scripts/dist.sh --tools-only
COPY Cargo.toml Cargo.lock README.md ./
COPY examples/plugins.conf examples/plugins.conf
COPY src src
COPY benches benches
COPY host host
COPY check check
# TARGETARCH (amd64, arm64) is set by BuildKit; the legacy builder builds for the machine.
ARG TARGETARCH
RUN bash scripts/dist.sh --arch "${TARGETARCH:-$(uname -m)}" \
    && mv dist/flb-out-cloudwatch-*-linux-gnu /out

FROM ${AWS_FOR_FLUENT_BIT_IMAGE} AS aws
COPY --from=build /out/libflb_out_cloudwatch.so /fluent-bit/cloudwatch.so
COPY --from=build /out/flb-cloudwatch-check /fluent-bit/bin/flb-cloudwatch-check
ENV FLB_CLOUDWATCH_LIBRARY=/fluent-bit/cloudwatch.so

FROM ${FLUENT_BIT_IMAGE} AS upstream
COPY --from=build /out/libflb_out_cloudwatch.so /fluent-bit/plugins/libflb_out_cloudwatch.so
COPY --from=build /out/plugins.conf /fluent-bit/plugins/plugins.conf
COPY --from=build /out/flb-cloudwatch-check /fluent-bit/bin/flb-cloudwatch-check
ENV FLB_CLOUDWATCH_LIBRARY=/fluent-bit/plugins/libflb_out_cloudwatch.so
ENTRYPOINT ["/fluent-bit/bin/fluent-bit"]
CMD ["-e", "/fluent-bit/plugins/libflb_out_cloudwatch.so", "-c", "/fluent-bit/etc/fluent-bit.conf"]

FROM ${FLAVOR}
