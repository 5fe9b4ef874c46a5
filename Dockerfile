# drillerd: a static binary on a distroless base, running as non-root.
#   docker build -t REGISTRY/drillerd:TAG --build-arg VERSION=TAG .
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY api/ api/
COPY cmd/ cmd/
COPY internal/ internal/
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/drillerd ./cmd/drillerd

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/drillerd /usr/local/bin/drillerd
USER 65532:65532
EXPOSE 8443 8080 8081
ENTRYPOINT ["/usr/local/bin/drillerd"]
CMD ["serve"]
