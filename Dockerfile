# syntax=docker/dockerfile:1
# Build: docker build -t authrelay .
FROM rust:1.95-bookworm AS build
WORKDIR /src
# Dependencies first, so source edits do not rebuild them.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src && echo 'fn main() {}' > src/main.rs && echo '' > src/lib.rs \
    && cargo build --release --locked --bin authrelay || true
COPY . .
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
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s CMD ["/bin/sh", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080"]
ENTRYPOINT ["authrelay"]
CMD ["run"]
