# syntax=docker/dockerfile:1
#
# The `infinistream` image: one binary, three subcommands.
#
#   docker build -t infinistream .
#   docker run --rm infinistream --help
#   docker run --rm -p 4222:4222 -p 8222:8222 -e INFINISTREAM_GROUP_ID=… infinistream agent
#   docker run --rm -p 8080:8080 -v cp:/data -e … infinistream control-plane
#
# See docs/deploy.md. The builder and the runtime are both Debian bookworm: a binary built against
# a newer glibc (the rust:*-slim default is trixie) would not start on bookworm-slim.

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS builder
WORKDIR /src
# Only what the release build reads: editing docs, tests or deploy files keeps the build cached.
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY crates ./crates
# The cache mounts keep the registry and target directory between builds (BuildKit); the binary
# is copied out because a cache mount is not part of the image. Debug info is stripped here
# (the project's release profile keeps line tables for local profiling); symbol names stay, so
# panics still print readable backtraces.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin infinistream \
    && install -D -m 0755 target/release/infinistream /out/infinistream \
    && strip --strip-debug /out/infinistream

FROM debian:${DEBIAN_RELEASE}-slim AS runtime
# ca-certificates: S3 over HTTPS and the hosted control plane (rustls reads the system roots).
# curl: the HEALTHCHECK below; the binary has no health subcommand.
# Versions are not pinned (DL3008): bookworm's archive drops superseded versions when security
# updates land, so a pin would break the build instead of picking up the fix.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 infinistream \
    && useradd --system --uid 10001 --gid infinistream --home-dir /data --shell /usr/sbin/nologin infinistream \
    && install -d -o infinistream -g infinistream -m 0750 /data
COPY --from=builder /out/infinistream /usr/local/bin/infinistream

# Agents keep nothing on disk. /data is only for the mock control plane's metadata database;
# it is owned by the runtime user so a fresh named volume mounted there is writable.
WORKDIR /data
# These two only apply to `infinistream control-plane` (each subcommand reads only its own
# variables), so the mock control plane listens beyond the container's loopback by default.
ENV INFINISTREAM_LISTEN=0.0.0.0:8080 \
    INFINISTREAM_DATA_DIR=/data
USER 10001:10001

# 4222: NATS clients. 9222: peer cache between agents of one availability zone.
# 8222: HTTP monitoring (/healthz, /metrics, /varz).
EXPOSE 4222 9222 8222

# The agent's /healthz answers 200 {"status":"ok"} when healthy and 503 otherwise. The port follows
# INFINISTREAM_HTTP_PORT when it is set. The control plane listens elsewhere (8080): its
# containers override this check (see docker-compose.yml). Kubernetes ignores HEALTHCHECK and
# uses the probes in deploy/kubernetes/.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["sh", "-c", "curl --fail --silent --show-error --max-time 2 --output /dev/null http://127.0.0.1:${INFINISTREAM_HTTP_PORT:-8222}/healthz"]

# The binary is PID 1 and handles SIGTERM itself: it stops accepting, flushes open batch windows
# and waits for their acks, bounded by --graceful-shutdown-timeout (default 60s). Give
# `docker stop` more than that: docker stop -t 90.
STOPSIGNAL SIGTERM
ENTRYPOINT ["infinistream"]
CMD ["agent"]
