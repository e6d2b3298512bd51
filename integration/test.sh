#!/usr/bin/env bash
# The project's test command (README, .ci/run): installs what the tests need
# on a fresh Debian machine (busybox-static, runc, buildah, util-linux, and
# for the Kubernetes suite containerd, etcd-server, containernetworking-plugins,
# tmux, openssl; zsh, fish and groff-base for the completion and man page
# tests), then runs the unit tests with the race detector, the
# privileged integration suite against real cgroups (which also builds the
# container image from the Dockerfile with buildah and runs it under runc),
# and the Kubernetes suite (integration/k8s: a real single-node cluster built
# offline, kubectl debug on cgroup v1 and v2). Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  echo "test: the integration suite needs root (real cgroups and namespaces): run it as root (for example with sudo)" >&2
  exit 1
fi
need=()
[ -x /bin/busybox ] || need+=(busybox-static)
command -v runc >/dev/null || need+=(runc)
command -v buildah >/dev/null || need+=(buildah)
command -v unshare >/dev/null && command -v nsenter >/dev/null || need+=(util-linux)
# The --drop-connections tests run a real broker (integration/rabbitmq_test.go).
# Debian's package does not start the service inside a container (no init);
# the tests start their own broker in a network namespace of theirs.
[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || need+=(rabbitmq-server)
# The Kubernetes suite (integration/k8s/main_test.go says why each is there).
command -v containerd >/dev/null && command -v ctr >/dev/null || need+=(containerd)
command -v etcd >/dev/null || need+=(etcd-server)
[ -x /usr/lib/cni/bridge ] || need+=(containernetworking-plugins)
command -v tmux >/dev/null || need+=(tmux)
command -v openssl >/dev/null || need+=(openssl)
command -v ip >/dev/null || need+=(iproute2)
# The terminal view's end-to-end test drives a real terminal (tmux); the
# unit tests check the completion scripts with each shell and the man page
# with groff.
command -v zsh >/dev/null || need+=(zsh)
command -v fish >/dev/null || need+=(fish)
command -v groff >/dev/null || need+=(groff-base)
if [ ${#need[@]} -gt 0 ]; then
  echo "test: installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

echo "test: unit tests (race detector)"
go test -race -count=1 $(go list ./... | grep -v /integration)
# The strategies' unit tests run on a fake cgroup file system
# (internal/cgfake) and must need no privilege: run them as nobody, built
# as root first (nobody cannot write the Go cache). A test that skipped
# there would prove nothing, so a skip fails too.
echo "test: unit tests of the strategies, unprivileged (setpriv to nobody)"
unpriv=$(mktemp -d)
trap 'rm -rf "$unpriv"' EXIT
for pkg in freezer mount; do
  go test -c -o "$unpriv/$pkg.test" "./$pkg"
done
chmod 755 "$unpriv" "$unpriv"/*.test
for pkg in freezer mount; do
  out=$(cd "$pkg" && setpriv --reuid=65534 --regid=65534 --clear-groups env HOME="$unpriv" TMPDIR=/tmp \
    "$unpriv/$pkg.test" -test.count=1 -test.v 2>&1) || { echo "$out" >&2; echo "test: the unprivileged unit tests of $pkg failed" >&2; exit 1; }
  if [ "$pkg" = freezer ] && ! grep -q '^--- PASS: TestFakeFreezeThaw' <<<"$out"; then
    echo "$out" >&2; echo "test: the fake-cgroup unit tests did not run unprivileged" >&2; exit 1
  fi
  if grep '^ *--- SKIP: TestFake' <<<"$out"; then
    echo "test: a fake-cgroup unit test skipped unprivileged" >&2; exit 1
  fi
done
echo "test: integration tests (real cgroups, as root)"
go test -count=1 -timeout 20m ./integration/
# Builds Kubernetes from the Go module proxy the first time (6-8 minutes on
# 2 cores; cached in /var/cache/cgfreeze-k8s), then a cluster on v1 and v2.
echo "test: Kubernetes tests (a real cluster on loopback, as root)"
go test -count=1 -v -timeout 60m ./integration/k8s/
