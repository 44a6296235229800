# syntax=docker/dockerfile:1
# Tessera's image: a release build in the official Rust image, run from distroless (glibc, CA
# certificates, no shell, no package manager) as a non-root user. `tessera healthcheck` is the
# health check, so the runtime needs no curl. CI replays this file without a container engine:
# .ci/dockerfile-check (keep the build stage to WORKDIR, COPY, ARG/ENV and RUN with paths
# relative to WORKDIR, so it can).
#
# Base images are NOT pinned by digest yet: no registry could be reached from where this file
# was written, and a digest copied from elsewhere could not be checked. Pin both where a registry
# answers (`docker buildx imagetools inspect rust:1.95-slim-bookworm`, `crane digest ...`), here
# or with `--build-arg RUST_IMAGE=rust:1.95-slim-bookworm@sha256:...`. Keep the two on the same
# Debian release (bookworm = debian12): the binary links the builder's glibc.
ARG RUST_IMAGE=rust:1.95-slim-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot

FROM ${RUST_IMAGE} AS build
WORKDIR /src
# Exactly what the build reads: the workspace manifests and its three members (verify/ is a path
# dependency), the compiled-in config/default.toml, and benches/ because Cargo.toml declares them.
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY config config
COPY migration migration
COPY verify verify
COPY benches benches
# The registry and the target dir live in cache mounts, so a source change recompiles only the
# workspace's crates. The mounts are not part of the layer: the binary is copied out, and the
# data folder the runtime makes writable is prepared here (distroless has no mkdir).
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked --bin tessera \
    && cp target/release/tessera tessera \
    && mkdir -p runtime/data

FROM ${RUNTIME_IMAGE}
ARG RUNTIME_IMAGE
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="Tessera" \
      org.opencontainers.image.description="Identity and token service: Djoser + SimpleJWT compatible, one binary" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.base.name="${RUNTIME_IMAGE}"
COPY --from=build /src/tessera /usr/local/bin/tessera
# data/ owned by distroless's nonroot user: the SQLite file, the generated signing key and
# data/mail are written there (a named volume starts as a copy of it, ownership included).
COPY --from=build --chown=65532:65532 /src/runtime /var/lib/tessera
# Numeric, so `runAsNonRoot` policies can check it without a passwd lookup.
USER 65532:65532
WORKDIR /var/lib/tessera
# /metrics on its own port, so publishing the API port never publishes the metrics.
ENV TESSERA__SERVER__BIND=0.0.0.0:8000 \
    TESSERA__SERVER__METRICS_BIND=0.0.0.0:9100 \
    TESSERA__LOG__FORMAT=json
EXPOSE 8000 9100
VOLUME ["/var/lib/tessera/data"]
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 CMD ["/usr/local/bin/tessera", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/tessera"]
CMD ["serve"]
