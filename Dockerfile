# Stub until the packaging issue: builds the library and puts it where a [PLUGINS] file or
# `-e` can load it. Not yet built or tested here (no Docker engine on this machine).
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --lib

FROM public.ecr.aws/aws-observability/aws-for-fluent-bit:2.34.3
COPY --from=build /src/target/release/libflb_out_cloudwatch.so /fluent-bit/plugins/libflb_out_cloudwatch.so
