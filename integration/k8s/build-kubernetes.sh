#!/usr/bin/env bash
# Builds kube-apiserver, kubelet, kubectl, kube-controller-manager and
# kube-scheduler from the k8s.io/kubernetes module on the Go module proxy (no
# git, no internet beyond the proxy), into a cache keyed by version outside
# the checkout, so that a warm run skips the 6-8 minute cold build.
#
#   bash integration/k8s/build-kubernetes.sh [VERSION]   # default v1.34.0
#
# Prints the directory holding the binaries on its last line of stdout.
# CGFREEZE_K8S_CACHE overrides the cache root (default /var/cache/cgfreeze-k8s).
#
# Why the module needs editing: its go.mod replaces every k8s.io/<staging>
# module by ./staging/src/k8s.io/<staging>, and the module zip leaves those
# nested modules out. Each is published at v0.<minor>.<patch>, so the replaces
# are pointed at the published versions instead (the checksum database
# accepts them). Without the version ldflags the binaries report v0.0.0 and
# the version-skew checks of kubectl and the kubelet misbehave.
set -euo pipefail

version=${1:-v1.34.0}
case $version in
  v1.*.*) ;;
  *) echo "build-kubernetes: version must look like v1.34.0, got '$version'" >&2; exit 2 ;;
esac
minor=$(echo "$version" | cut -d. -f2)
patch=$(echo "$version" | cut -d. -f3)
staging_version="v0.$minor.$patch"

cache_root=${CGFREEZE_K8S_CACHE:-/var/cache/cgfreeze-k8s}
out="$cache_root/$version"
bins=(kube-apiserver kubelet kubectl kube-controller-manager kube-scheduler)

complete() {
  [ -f "$out/.complete" ] || return 1
  for b in "${bins[@]}"; do [ -x "$out/bin/$b" ] || return 1; done
}
if complete; then
  echo "build-kubernetes: $version cached in $out/bin" >&2
  echo "$out/bin"
  exit 0
fi

export PATH="$PATH:/usr/local/go/bin"
mkdir -p "$cache_root"
# One build at a time (two CI jobs, or a test and a by-hand run).
exec 9>"$cache_root/.build.lock"
flock 9
if complete; then echo "$out/bin"; exit 0; fi

start=$(date +%s)
echo "build-kubernetes: downloading k8s.io/kubernetes@$version from the module proxy" >&2
dir=$(GOFLAGS=-mod=mod GOWORK=off go mod download -json "k8s.io/kubernetes@$version" |
  sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
if [ -z "$dir" ] || [ ! -f "$dir/go.mod" ]; then
  echo "build-kubernetes: go mod download gave no source directory for k8s.io/kubernetes@$version" >&2
  exit 1
fi

src="$cache_root/src-$version"
rm -rf "$src"
cp -r "$dir" "$src"
chmod -R u+w "$src"
rm -rf "$src/go.work" "$src/go.work.sum" "$src/vendor"
cd "$src"
mapfile -t staging < <(sed -n 's#^[[:space:]]*\(k8s.io/[^[:space:]]*\) => ./staging/.*#\1#p' go.mod)
if [ ${#staging[@]} -lt 20 ]; then
  echo "build-kubernetes: found only ${#staging[@]} ./staging replaces in $src/go.mod; the module layout changed" >&2
  exit 1
fi
edits=()
for m in "${staging[@]}"; do edits+=("-replace=$m=$m@$staging_version"); done
go mod edit "${edits[@]}"
echo "build-kubernetes: ${#staging[@]} staging modules -> $staging_version; downloading dependencies" >&2
GOWORK=off GOFLAGS="-mod=mod -buildvcs=false" go mod download
t_dl=$(date +%s)

ld="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ld="$ld -X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  ld="$ld -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done
echo "build-kubernetes: building ${bins[*]} (6-8 minutes cold on 2 cores)" >&2
mkdir -p "$out/bin.tmp"
pkgs=()
for b in "${bins[@]}"; do pkgs+=("./cmd/$b"); done
GOWORK=off GOFLAGS="-mod=mod -buildvcs=false" CGO_ENABLED=0 \
  go build -trimpath -ldflags "$ld" -o "$out/bin.tmp/" "${pkgs[@]}"
rm -rf "$out/bin"
mv "$out/bin.tmp" "$out/bin"
"$out/bin/kubectl" version --client >&2
end=$(date +%s)
cd /
rm -rf "$src"
printf 'version=%s download_s=%d build_s=%d\n' "$version" $((t_dl - start)) $((end - t_dl)) >"$out/.complete"
echo "build-kubernetes: done in $((end - start)) s (download $((t_dl - start)) s, build $((end - t_dl)) s)" >&2
echo "$out/bin"
