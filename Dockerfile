# fedhub in a container: a cgo build (SQLite) on Debian, run as an unprivileged user.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=1 go build -trimpath -ldflags="-s -w" -o /out/fedhub ./cmd/fedhub
# /data, for the SQLite database: the runtime image has no shell to make it.
RUN mkdir -p /out/data

# distroless/base, not static: the SQLite driver is cgo, so fedhub links glibc (base has it,
# with CA certificates and tzdata); Debian 12 as the build stage, so the glibc matches. No
# shell or package manager: the compose healthcheck is `fedhub healthcheck`. :nonroot runs
# as UID 65532.
FROM gcr.io/distroless/base-debian12:nonroot
COPY --from=build /out/fedhub /usr/local/bin/fedhub
COPY --from=build --chown=65532:65532 /out/data /data
USER nonroot
WORKDIR /data
EXPOSE 8080
ENTRYPOINT ["fedhub"]
CMD ["serve", "-c", "/etc/fedhub/fedhub.yaml"]
