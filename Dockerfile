# syntax=docker/dockerfile:1
#
# Fluent Bit with this plugin in place of AWS's Go `cloudwatch` plugin.
#
#   docker build -t flb-out-cloudwatch .                              # AWS for Fluent Bit 2.34.3 (Fluent Bit 1.9.10)
#   docker build --build-arg FLAVOR=upstream -t flb-out-cloudwatch .  # fluent/fluent-bit 5.1.1
#
# FLAVOR=aws (default): AWS for Fluent Bit's entrypoint starts
#   fluent-bit -e /fluent-bit/firehose.so -e /fluent-bit/cloudwatch.so -e /fluent-bit/kinesis.so -c /fluent-bit/etc/fluent-bit.conf
# so the library replaces /fluent-bit/cloudwatch.so and every FireLens task definition with
# `"Name": "cloudwatch"` uses it unchanged.
# FLAVOR=upstream: the library is /fluent-bit/plugins/libflb_out_cloudwatch.so, loaded with
# -e by the image's command; /fluent-bit/plugins/plugins.conf names it for a command of your own.
# Both images carry /fluent-bit/bin/flb-cloudwatch-check, which finds the library through
# FLB_CLOUDWATCH_LIBRARY.
#
# The build runs on Amazon Linux 2 with the Rust toolchain of the pinned rust image: a
# library linked on Debian bookworm needs glibc 2.34, and Amazon Linux 2, the base of AWS for
# Fluent Bit 2.x, has glibc 2.26. Linked against 2.26, it loads on every flavor.

ARG FLAVOR=aws
ARG AWS_FOR_FLUENT_BIT_IMAGE=public.ecr.aws/aws-observability/aws-for-fluent-bit:2.34.3
ARG FLUENT_BIT_IMAGE=fluent/fluent-bit:5.1.1
ARG AMAZON_LINUX_IMAGE=public.ecr.aws/amazonlinux/amazonlinux:2.0.20240916.0

FROM rust:1.95-bookworm AS toolchain

FROM ${AMAZON_LINUX_IMAGE} AS build
# gcc links Rust's output and compiles the C and assembly of the TLS crypto (ring); binutils
# (with gcc) strips the results. Versions are the pinned Amazon Linux release's.
# hadolint ignore=DL3033
RUN yum install -y gcc \
    && yum clean all \
    && rm -rf /var/cache/yum
ENV RUSTUP_HOME=/usr/local/rustup \
    CARGO_HOME=/usr/local/cargo \
    PATH=/usr/local/cargo/bin:$PATH
COPY --from=toolchain /usr/local/rustup /usr/local/rustup
COPY --from=toolchain /usr/local/cargo /usr/local/cargo
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY benches benches
COPY host host
COPY check check
RUN cargo build --release --locked -p flb-out-cloudwatch -p flb-cloudwatch-check \
    && mkdir -p /out \
    && cp target/release/libflb_out_cloudwatch.so target/release/flb-cloudwatch-check /out/ \
    && strip --strip-unneeded /out/libflb_out_cloudwatch.so /out/flb-cloudwatch-check

FROM ${AWS_FOR_FLUENT_BIT_IMAGE} AS aws
COPY --from=build /out/libflb_out_cloudwatch.so /fluent-bit/cloudwatch.so
COPY --from=build /out/flb-cloudwatch-check /fluent-bit/bin/flb-cloudwatch-check
ENV FLB_CLOUDWATCH_LIBRARY=/fluent-bit/cloudwatch.so

FROM ${FLUENT_BIT_IMAGE} AS upstream
COPY --from=build /out/libflb_out_cloudwatch.so /fluent-bit/plugins/libflb_out_cloudwatch.so
COPY examples/plugins.conf /fluent-bit/plugins/plugins.conf
COPY --from=build /out/flb-cloudwatch-check /fluent-bit/bin/flb-cloudwatch-check
ENV FLB_CLOUDWATCH_LIBRARY=/fluent-bit/plugins/libflb_out_cloudwatch.so
ENTRYPOINT ["/fluent-bit/bin/fluent-bit"]
CMD ["-e", "/fluent-bit/plugins/libflb_out_cloudwatch.so", "-c", "/fluent-bit/etc/fluent-bit.conf"]

FROM ${FLAVOR}
