# Build: docker build -t opsbot .
# Run:   docker run -p 8080:8080 -e OPSBOT_LISTEN=0.0.0.0:8080 -v opsbot-data:/data opsbot
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY migrations ./migrations
RUN cargo build --release --locked

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home /data --create-home opsbot
WORKDIR /app
COPY --from=build /src/target/release/opsbot /usr/local/bin/opsbot
COPY config ./config
COPY commands ./commands
USER opsbot
ENV OPSBOT_CONFIG=/app/config/opsbot.toml \
    OPSBOT_DATABASE_URL=sqlite:///data/opsbot.db?mode=rwc \
    OPSBOT_LISTEN=0.0.0.0:8080
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080"]
ENTRYPOINT ["opsbot"]
CMD ["serve"]
