# syntax=docker/dockerfile:1
# Build stage: compile a release binary.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
RUN cargo build --release --locked --bin ccc-dialer

# Runtime stage: small image, CA certificates and time-zone data, a non-root user.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates tzdata \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/ccc-dialer --shell /usr/sbin/nologin dialer \
 && mkdir -p /var/lib/ccc-dialer /etc/ccc-dialer \
 && chown dialer:dialer /var/lib/ccc-dialer
COPY --from=build /src/target/release/ccc-dialer /usr/local/bin/ccc-dialer
COPY config/dialer.toml /etc/ccc-dialer/dialer.toml
USER 10001:10001
WORKDIR /var/lib/ccc-dialer
VOLUME ["/var/lib/ccc-dialer"]
ENTRYPOINT ["/usr/local/bin/ccc-dialer"]
CMD ["--help"]
