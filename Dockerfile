# syntax=docker/dockerfile:1
# ccc-dialer container: `serve` by default (HTTP API, inbox, metrics on :8080), any other
# subcommand on request (`docker run IMAGE status --state /var/lib/ccc-dialer/state.db`).
# Linted by .ci/run with hadolint. Deployment samples: samples/docker-compose.yml,
# samples/kubernetes.yaml, samples/ccc-dialer.service.

# ---- build ----------------------------------------------------------------------------------
FROM rust:1-bookworm AS build
WORKDIR /src

# Dependencies first, against a stub crate, so that a change under src/ rebuilds only
# ccc-dialer itself (about 30 s) and not the ~300 dependencies (minutes). The stub is enough:
# a `--bin` build does not look at the bench and test targets Cargo.toml declares.
COPY Cargo.toml Cargo.lock ./
# The bundled SQLite's build flags (see .cargo/config.toml).
COPY .cargo ./.cargo
RUN mkdir src \
 && echo 'fn main() {}' > src/main.rs \
 && touch src/lib.rs \
 && cargo build --release --locked --bin ccc-dialer \
 && rm -rf src

COPY src ./src
# COPY keeps the build context's modification times, which can be older than the stub's
# build: touch the crate roots so cargo cannot take the stub binary for up to date.
RUN touch src/main.rs src/lib.rs \
 && cargo build --release --locked --bin ccc-dialer

# ---- runtime --------------------------------------------------------------------------------
FROM debian:bookworm-slim

# ca-certificates is left unpinned on purpose: Debian drops superseded versions from its
# mirrors, so a pin breaks the build at the next security update, and its updates are exactly
# what we want. The base image tag fixes the release. No tzdata: the IANA time-zone database
# that calling windows need is compiled into the binary (jiff).
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 dialer \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/ccc-dialer \
      --no-create-home --shell /usr/sbin/nologin dialer \
 && mkdir -p /etc/ccc-dialer /var/lib/ccc-dialer/inbox \
 && chown -R 10001:10001 /var/lib/ccc-dialer \
 && chmod 0750 /var/lib/ccc-dialer

COPY --from=build /src/target/release/ccc-dialer /usr/local/bin/ccc-dialer
# The documented example configuration, so that the image starts with a clear error naming
# what is missing (the API token, then the cloud credentials) rather than "file not found".
# Its SdkAppId, AI agent and callers are examples that no check can tell from real ones:
# mount your own config over it.
COPY config/dialer.toml /etc/ccc-dialer/dialer.toml

# Every serve flag has an environment default; override any of them with `-e`. The API token
# (CCC_DIALER_API_TOKEN or CCC_DIALER_API_TOKEN_FILE) is required: serve refuses to listen on
# 0.0.0.0 without one. Cloud credentials: TENCENTCLOUD_SECRET_ID / TENCENTCLOUD_SECRET_KEY or
# their *_FILE variants (docker/k8s secrets). Never bake secrets into the image.
ENV CCC_DIALER_CONFIG=/etc/ccc-dialer/dialer.toml \
    CCC_DIALER_STATE=/var/lib/ccc-dialer/state.db \
    CCC_DIALER_LISTEN=0.0.0.0:8080 \
    CCC_DIALER_INBOX=/var/lib/ccc-dialer/inbox

USER 10001:10001
WORKDIR /var/lib/ccc-dialer
# state.db (SQLite, WAL: keep state.db-wal and state.db-shm with it) and inbox/. One writer:
# never share this volume between two running containers.
VOLUME ["/var/lib/ccc-dialer"]
EXPOSE 8080

# The image has no curl: the binary checks itself. If you change CCC_DIALER_LISTEN's port,
# override this too (`--health-cmd` or the orchestrator's own probes).
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
  CMD ["/usr/local/bin/ccc-dialer", "healthcheck", "--url", "http://127.0.0.1:8080/healthz"]

# SIGTERM: stop sending, drain replies in flight for run.grace_period (10 s by default), exit
# 0. Docker's default stop timeout is also 10 s: give it more (`docker run --stop-timeout 30`,
# compose `stop_grace_period: 30s`) or replies still in flight are cut off and become `unknown`.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/ccc-dialer"]
CMD ["serve"]
