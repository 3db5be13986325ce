# fedhub in a container: a cgo build (SQLite) on Debian, run as an unprivileged user.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=1 go build -trimpath -ldflags="-s -w" -o /out/fedhub ./cmd/fedhub

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* && useradd --system --home /data fedhub \
    && mkdir -p /data && chown fedhub /data
COPY --from=build /out/fedhub /usr/local/bin/fedhub
USER fedhub
WORKDIR /data
EXPOSE 8080
ENTRYPOINT ["fedhub"]
CMD ["serve", "-c", "/etc/fedhub/fedhub.yaml"]
