#!/usr/bin/env bash
# kubectl-freeze builds for every platform kubectl runs on, krew installs it
# from its manifest (krew/check.sh), and client-go
# stays out of the cgfreeze binary (docs/kubectl-freeze.md, "Building").
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for p in linux/amd64 darwin/arm64 windows/amd64; do
  GOOS=${p%/*} GOARCH=${p#*/} CGO_ENABLED=0 go build -o "$out/kubectl-freeze-${p/\//-}" ./cmd/kubectl-freeze
done
CGO_ENABLED=0 go build -o "$out/cgfreeze" .
if go version -m "$out/cgfreeze" | grep -q 'k8s\.io/'; then
  echo "the cgfreeze binary links Kubernetes modules:"
  go version -m "$out/cgfreeze" | grep 'k8s\.io/'
  exit 1
fi
echo "plugin checks: kubectl-freeze builds for linux, darwin, windows; cgfreeze has no k8s.io module"

# The krew manifest: installed offline with krew itself from a local archive.
if ! command -v krew >/dev/null; then
  go install sigs.k8s.io/krew/cmd/krew@v0.4.3
fi
PATH="$PATH:$(go env GOPATH)/bin" bash krew/check.sh
