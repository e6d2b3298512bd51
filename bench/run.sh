#!/usr/bin/env bash
# The freeze/thaw benchmark of docs/performance.md (issue 6), as root: builds
# the bench and runs it under the lock that the integration suite takes (it
# switches cgroup2 options for the whole machine while it runs). Without
# arguments it writes the generated part of docs/performance.md and
# docs/performance.svg from 3 whole runs (-runs 3, 13 rounds each); with
# arguments they are the bench's own (bash bench/run.sh -h lists them), for
# example -reps 5 -sizes 1,1000 -runs 1 -hold 5s for a quick look that prints
# the report.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
  echo "bench: run me as root (runc containers, cgroups, namespaces)" >&2
  exit 1
fi
export PATH="$PATH:/usr/local/go/bin"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/bench" ./bench
args=("$@")
if [ ${#args[@]} -eq 0 ]; then
  args=(-out docs/performance.md)
fi
flock -o /tmp/cgfreeze-itest.lock "$tmp/bench" "${args[@]}"
