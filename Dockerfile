# syntax=docker/dockerfile:1
# cgfreeze as a container image: one static binary in an otherwise empty
# image, whose entrypoint freezes the target container when it is run with no
# arguments (kubectl debug --image=... --target=app --profile=sysadmin).
#
#   docker build -t cgfreeze .
#   docker buildx build --platform linux/amd64,linux/arm64 -t REGISTRY/cgfreeze:TAG --push .
#
# The binary is built in the "build" stage by default. BINARY=prebuilt takes
# a binary that `go build` made beforehand (CGO_ENABLED=0, for the target
# architecture), named cgfreeze at the root of the build context; CI builds
# the image this way, offline (integration/image_test.go).
ARG GO_VERSION=1.26
ARG BINARY=build

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG TARGETOS
ARG TARGETARCH
ARG VERSION=dev
RUN CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/cgfreeze .

FROM scratch AS prebuilt
COPY cgfreeze /out/cgfreeze

FROM ${BINARY} AS binary

FROM scratch
ARG VERSION=dev
LABEL org.opencontainers.image.title="cgfreeze" \
      org.opencontainers.image.description="Freezes a container's processes through the cgroup freezer, then thaws them" \
      org.opencontainers.image.source="https://github.com/cgfreeze/cgfreeze" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=binary /out/cgfreeze /cgfreeze
ENTRYPOINT ["/cgfreeze"]
