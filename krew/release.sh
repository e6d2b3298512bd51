#!/usr/bin/env bash
# Build kubectl-freeze's release archives (one per platform of
# krew/freeze.yaml) into DIST (default dist/), reproducibly (-trimpath, no
# VCS stamp, fixed tar metadata, gzip -n), and write their sha256 into the
# manifest (MANIFEST, default krew/freeze.yaml); PLATFORMS (os/arch ...)
# limits the build. Usage: krew/release.sh [DIST]
set -euo pipefail
cd "$(dirname "$0")/.."
dist=$(realpath -m "${1:-dist}")
manifest=${MANIFEST:-krew/freeze.yaml}
version=$(sed -n 's/^  version: //p' "$manifest")
mkdir -p "$dist"
for p in ${PLATFORMS:-linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64}; do
  os=${p%/*} arch=${p#*/} bin=kubectl-freeze
  [ "$os" = windows ] && bin=kubectl-freeze.exe
  stage=$(mktemp -d)
  GOOS=$os GOARCH=$arch CGO_ENABLED=0 go build -trimpath -buildvcs=false \
    -ldflags "-s -w -X main.version=$version" -o "$stage/$bin" ./cmd/kubectl-freeze
  cp LICENSE "$stage/"
  archive="$dist/kubectl-freeze_${version}_${os}_${arch}.tar.gz"
  tar -C "$stage" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf - "$bin" LICENSE | gzip -n >"$archive"
  rm -rf "$stage"
  sum=$(sha256sum "$archive" | cut -d' ' -f1)
  # The sha256 line follows this platform's uri line.
  sed -i "\#/kubectl-freeze_${version}_${os}_${arch}.tar.gz\$#{n;s/sha256: .*/sha256: $sum/}" "$manifest"
  echo "$archive $sum"
done
