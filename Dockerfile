# Build: the release binary, with dependencies cached in their own layer.
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY migration/Cargo.toml migration/Cargo.toml
RUN mkdir -p src migration/src benches && echo 'fn main() {}' > src/main.rs \
    && cp src/main.rs benches/tokens.rs && cp src/main.rs benches/bare_verify.rs \
    && touch src/lib.rs migration/src/lib.rs \
    && cargo build --release --locked --bin tessera
COPY . .
RUN touch src/main.rs src/lib.rs migration/src/lib.rs && cargo build --release --locked --bin tessera

# Run: a small image, a non-root user, data in a volume.
FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/tessera --create-home tessera
COPY --from=build /src/target/release/tessera /usr/local/bin/tessera
USER tessera
WORKDIR /var/lib/tessera
ENV TESSERA__SERVER__BIND=0.0.0.0:8000 \
    TESSERA__LOG__FORMAT=json
EXPOSE 8000
VOLUME ["/var/lib/tessera/data"]
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 CMD ["tessera", "healthcheck"]
ENTRYPOINT ["tessera"]
CMD ["serve"]
