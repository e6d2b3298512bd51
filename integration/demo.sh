#!/usr/bin/env bash
# Demo of cgfreeze's main job on this machine, the way `kubectl debug
# --target=app --profile=sysadmin` runs it: a "container" (its own PID, mount
# and cgroup namespaces, its own cgroup) runs a counter; an "ephemeral
# container" (a sibling cgroup with its own cgroup namespace, sharing the
# target's PID namespace) runs cgfreeze with no arguments, which freezes PID 1
# for a few seconds and thaws it (--duration 3s); then again with -o json
# until Ctrl-C (SIGINT, sent by the demo) thaws it. The counter is sampled
# throughout.
#
# Needs root, Go, and util-linux (unshare, nsenter, flock). Everything it creates is
# named cgfreeze-demo-* and removed on exit, also on Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."

[ "$(id -u)" = 0 ] || { echo "demo: run as root (it creates cgroups and namespaces)" >&2; exit 1; }
for cmd in go unshare nsenter flock; do
  command -v "$cmd" >/dev/null || { echo "demo: $cmd is missing (apt-get install util-linux; Go from go.dev)" >&2; exit 1; }
done

# The integration suite and the bench change machine-wide cgroup settings
# (nsdelegate) and check the cgroup root for leftovers while they hold this
# lock: the demo runs under it too, so that neither disturbs the other.
# flock -o: what the demo starts does not inherit the lock.
lock=/tmp/cgfreeze-itest.lock
if [ -z "${CGFREEZE_DEMO_LOCKED:-}" ]; then
  export CGFREEZE_DEMO_LOCKED=1
  flock -o -n "$lock" true || echo "demo: waiting for $lock (a test run or the bench holds it)" >&2
  exec flock -o "$lock" bash "$PWD/integration/demo.sh" "$@"
fi

# The cgroup2 hierarchy: /sys/fs/cgroup on a pure-v2 host, .../unified on a hybrid one.
cg2=""
for d in /sys/fs/cgroup /sys/fs/cgroup/unified; do
  if [ "$(stat -f -c %T "$d" 2>/dev/null)" = cgroup2fs ]; then cg2=$d; break; fi
done
[ -n "$cg2" ] || { echo "demo: no cgroup2 hierarchy mounted at /sys/fs/cgroup or /sys/fs/cgroup/unified" >&2; exit 1; }

work=$(mktemp -d /tmp/cgfreeze-demo-XXXXXX)
base="$cg2/cgfreeze-demo-$$"
cleanup() {
  set +e
  [ -n "${agent_pid:-}" ] && kill "$agent_pid" 2>/dev/null && wait "$agent_pid" 2>/dev/null
  # A subtree freeze's child (cgfreeze-<random>, or cgfreeze before).
  for cg in "$base"/target/cgfreeze*; do
    [ -d "$cg" ] && echo 0 > "$cg/cgroup.freeze" 2>/dev/null
  done
  for cg in "$base/target" "$base/agent"; do
    [ -d "$cg" ] || continue
    echo 0 > "$cg/cgroup.freeze" 2>/dev/null
    echo 1 > "$cg/cgroup.kill" 2>/dev/null
  done
  [ -n "${target_pid:-}" ] && wait "$target_pid" 2>/dev/null
  sleep 0.2
  for cg in "$base"/target/cgfreeze* "$base/target" "$base/agent" "$base"; do
    [ -d "$cg" ] && rmdir "$cg"
  done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "demo: building cgfreeze"
CGO_ENABLED=0 go build -o "$work/cgfreeze" .

mkdir -p "$base/target" "$base/agent"
counter="$work/counter"
echo 0 > "$counter"
# The target "container": PID 1 of a new PID namespace moves itself into the
# target cgroup, then enters a new cgroup namespace rooted there.
unshare --pid --fork --mount --mount-proc sh -c "
  echo 1 > $base/target/cgroup.procs
  exec unshare --cgroup sh -c 'i=0; while :; do i=\$((i+1)); echo \$i > $counter.tmp; mv $counter.tmp $counter; sleep 0.05; done'
" 2>/dev/null &
target_pid=$!
# cgroup.procs reports size 0 on cgroupfs ([ -s ] is always false): read it.
for _ in $(seq 100); do [ -n "$(cat "$base/target/cgroup.procs")" ] && break; sleep 0.01; done
host_pid=$(head -n1 "$base/target/cgroup.procs")
[ -n "$host_pid" ] || { echo "demo: the target did not start" >&2; exit 1; }
grep -q "NSpid:.*[[:space:]]1$" "/proc/$host_pid/status" || { echo "demo: target is not PID 1 of its namespace" >&2; exit 1; }
echo "demo: target container: host PID $host_pid, cgroup ${base#$cg2}/target, counting 20 times a second"

sample() {
  local state=running cg
  [ "$(cat "$base/target/cgroup.freeze")" = 1 ] && state=frozen
  # A subtree freeze freezes a child it names cgfreeze-<random>: any
  # frozen child of the target counts.
  for cg in "$base"/target/*/; do
    [ -f "$cg/cgroup.events" ] && [ "$(sed -n 's/^frozen //p' "$cg/cgroup.events" 2>/dev/null)" = 1 ] && state=frozen
  done
  printf 'demo: t=%4.1fs counter=%-4s target %s\n' "$(awk "BEGIN{print $(date +%s.%N) - $start}")" "$(cat "$counter")" "$state"
}
start=$(date +%s.%N)
for _ in 1 2; do sleep 0.5; sample; done

# The "ephemeral container": its own cgroup (and cgroup namespace), the
# target's PID namespace, its own /proc and a cgroup2 /sys/fs/cgroup, as
# kubelet gives one. cgfreeze runs with no target flags: PID 1 is the target.
agent() {
  sh -c "
    echo \$\$ > $base/agent/cgroup.procs
    exec nsenter --target $host_pid --pid -- unshare --cgroup --mount --propagation private sh -c '
      mount -t proc proc /proc && mount -t cgroup2 none /sys/fs/cgroup &&
      exec $work/cgfreeze $*'
  " > "$work/events" 2> "$work/log" &
  agent_pid=$!
}
report() {
  echo "demo: cgfreeze exited $1; its events (stdout):"
  sed 's/^/  /' "$work/events"
  [ -s "$work/log" ] && sed 's/^/  log: /' "$work/log"
  echo "demo: processes of the target are back in ${base#$cg2}/target: $(tr '\n' ' ' < "$base/target/cgroup.procs")"
}

echo "demo: 1. cgfreeze --duration 3s in the agent container"
agent --duration 3s
for _ in $(seq 9); do sleep 0.5; sample; done
rc=0; wait "$agent_pid" || rc=$?; agent_pid=""
report "$rc"
[ "$rc" = 0 ] || exit "$rc"

echo "demo: 2. cgfreeze -o json, thawed by Ctrl-C (SIGINT) after 2 s"
agent -o json
for _ in 1 2 3 4; do sleep 0.5; sample; done
# Ctrl-C in a terminal sends SIGINT to cgfreeze; here the demo sends it to
# the first cgfreeze process (the supervisor, which passes it on).
sup=$(pgrep -o -f "^$work/cgfreeze") || { echo "demo: cgfreeze is not running" >&2; exit 1; }
echo "demo: kill -INT $sup (what Ctrl-C does)"
kill -INT "$sup"
for _ in 1 2; do sleep 0.5; sample; done
rc=0; wait "$agent_pid" || rc=$?; agent_pid=""
report "$rc"
exit "$rc"
