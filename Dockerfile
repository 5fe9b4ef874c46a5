# drillerd with a container engine: the same image as `make image` (build/image), whose -rootfs writes
# the same files here: a static binary, the CA bundle and time zones, user nonroot (65532), no shell.
#   docker build -t REGISTRY/drillerd:TAG --build-arg VERSION=TAG --build-arg REVISION=$(git rev-parse HEAD) .
#   docker buildx build --platform linux/amd64,linux/arm64 ...   (cross-compiled, not emulated)
FROM --platform=$BUILDPLATFORM golang:1.26 AS build
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates tzdata && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY api/ api/
COPY build/ build/
COPY cmd/ cmd/
COPY internal/ internal/
ARG TARGETARCH
ARG VERSION=dev
ARG SOURCE_DATE_EPOCH=0
RUN go run ./build/image -rootfs /rootfs -platforms "linux/${TARGETARCH:-amd64}" -version "${VERSION}"

FROM scratch
COPY --from=build /rootfs/ /
COPY --from=build --chown=65532:65532 /rootfs/home/nonroot /home/nonroot
ARG VERSION=dev
ARG REVISION=
LABEL org.opencontainers.image.title=drillerd \
      org.opencontainers.image.source=https://github.com/drillerd/drillerd \
      org.opencontainers.image.version=${VERSION} \
      org.opencontainers.image.revision=${REVISION}
ENV PATH=/usr/local/bin HOME=/home/nonroot SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
USER 65532:65532
EXPOSE 8443 8080 8081
ENTRYPOINT ["/usr/local/bin/drillerd"]
CMD ["serve"]
