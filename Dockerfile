# syntax=docker/dockerfile:1
# Build: docker build -t authrelay .
FROM rust:1.95-bookworm AS build
WORKDIR /src
# Dependencies first, so source edits do not rebuild them: the manifests of the
# workspace with stand-in sources.
COPY Cargo.toml Cargo.lock ./
COPY tests/common/Cargo.toml tests/common/
RUN mkdir -p src tests/common/src benches/pipeline \
    && echo 'fn main() {}' > src/main.rs && touch src/lib.rs tests/common/src/lib.rs \
    && echo 'fn main() {}' > benches/pipeline/main.rs \
    && cargo build --release --locked --bin authrelay
COPY . .
# The release profile keeps symbols and drops debug info: a ~24 MB binary
# whose backtraces name functions (README → Release binary).
RUN touch src/main.rs src/lib.rs && cargo build --release --locked --bin authrelay

FROM debian:bookworm-slim
# ca-certificates: the platform trust store used for TLS to targets and to PostgreSQL (sslmode=require).
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home /var/lib/authrelay --create-home authrelay \
    && install -d -m 0700 -o authrelay -g authrelay /var/lib/authrelay/.authrelay
COPY --from=build /src/target/release/authrelay /usr/local/bin/authrelay
USER authrelay
WORKDIR /var/lib/authrelay
ENV AUTHRELAY_HTTP_ADDR=0.0.0.0:8080
EXPOSE 8080
# Healthy once /readyz answers 200 (database, broker and every lane up). The
# image has no curl: bash's /dev/tcp speaks the HTTP request (dash has no /dev/tcp).
HEALTHCHECK --interval=5s --timeout=3s --start-period=30s --retries=3 CMD ["/bin/bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080 && printf 'GET /readyz HTTP/1.0\\r\\n\\r\\n' >&3 && head -n1 <&3 | grep -q ' 200 '"]
ENTRYPOINT ["authrelay"]
CMD ["run"]
