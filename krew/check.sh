#!/usr/bin/env bash
# Install kubectl freeze with krew from krew/freeze.yaml and a locally built
# archive, offline, into a scratch KREW_ROOT, and run it: checks that krew
# accepts the manifest and that its files and bin are right. The sums are
# written into a copy of the manifest (the committed one is a release's).
# Needs krew on PATH (go install sigs.k8s.io/krew/cmd/krew@v0.4.3).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v krew >/dev/null || { echo "krew not found: go install sigs.k8s.io/krew/cmd/krew@v0.4.3" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp krew/freeze.yaml "$work/freeze.yaml"
os=$(go env GOOS) arch=$(go env GOARCH)
PLATFORMS=$os/$arch MANIFEST="$work/freeze.yaml" bash krew/release.sh "$work/dist" >/dev/null
version=$(sed -n 's/^  version: //p' "$work/freeze.yaml")
export KREW_ROOT="$work/root"
krew install --manifest="$work/freeze.yaml" --archive="$work/dist/kubectl-freeze_${version}_${os}_${arch}.tar.gz"
out=$("$KREW_ROOT/bin/kubectl-freeze" version)
[ "$out" = "kubectl-freeze $version" ] || { echo "the installed plugin says $out, want kubectl-freeze $version" >&2; exit 1; }
echo "krew check: kubectl freeze $version installed from the manifest and a local archive"
