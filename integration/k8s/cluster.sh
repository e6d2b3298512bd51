#!/usr/bin/env bash
# A real single-node Kubernetes cluster on loopback (and, on demand, a second
# node: `node2`), for the kubectl debug and kubectl freeze tests
# (integration/k8s): etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, containerd and the kubelet, with everything they write
# under one scratch directory, and a tear-down that leaves nothing behind.
#
#   cluster.sh up v1|v2 BIN_DIR IMAGE_DIR   start a cluster (sweeps an earlier one first)
#   cluster.sh down                         tear it down (safe to repeat; also a sweep)
#   cluster.sh check                        list what an earlier run left behind; exit 1 if anything
#   cluster.sh node2 up BIN_DIR IMAGE_DIR   add a second node (a second kubelet) to a v1 cluster
#   cluster.sh node2 down                   remove it (down does it too)
#
# BIN_DIR holds the Kubernetes binaries (build-kubernetes.sh); IMAGE_DIR holds
# docker-archive tarballs (*.tar) imported into containerd (nothing is pulled).
# CGFREEZE_K8S_SCRATCH overrides the scratch directory (/tmp/cgfreeze-k8s):
# its fixed place is what lets a run sweep what a killed run left.
#
# v1: containerd and the kubelet see this host's cgroup v1 hierarchies.
# v2: containerd and the kubelet run in a mount namespace of their own where
# cgroup2 is mounted at /sys/fs/cgroup with nsdelegate (as systemd does);
# the kubelet runs with cgroupsPerQOS false and runc through a wrapper that
# drops linux.resources (this host binds every controller to v1). The
# cgroup2 superblock options are restored by `down`.
#
# In both, containerd and the kubelet run in a private mount namespace (a
# keeper process holds it), so that their mounts (container root file
# systems, volumes, network namespaces) never appear in the host's mount
# table and go away with the namespace. The API server, etcd and the
# kubelet listen on 127.0.0.1; pods get addresses on the bridge $BRIDGE
# ($POD_NET), which carries $GATEWAY on the host side (the kubelet's httpGet
# probes reach pods through it); pods get no default route.
set -euo pipefail

S=${CGFREEZE_K8S_SCRATCH:-/tmp/cgfreeze-k8s}
BRIDGE=cgfz0
POD_NET=10.213.0.0/24
GATEWAY=10.213.0.1
SERVICE_NET=10.213.128.0/24
SERVICE_IP=10.213.128.1
ETCD_PORT=23791
ETCD_PEER_PORT=23792
API_PORT=16443
# The sysctls the kubelet sets (protectKernelDefaults false), and ip_forward
# which must stay as it is (no traffic leaves the bridge).
SYSCTLS="vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops kernel.keys.root_maxkeys kernel.keys.root_maxbytes net.ipv4.ip_forward"
# Directories the components write to outside the scratch directory whatever
# they are told (containerd 1.6's network namespaces and runc state, the
# kubelet's /var/log/containers links, libcni's cache): removed by `down`
# when they did not exist before `up`.
OUTSIDE="/run/containerd /var/lib/kubelet /var/log/containers /var/log/pods /var/lib/cni /run/netns /opt/containerd /etc/containerd/certs.d"
# Bounded waits.
STOP_WAIT=15      # seconds for a daemon to end after SIGTERM
READY_WAIT=90     # seconds for a component to answer

log() { echo "cluster: $*" >&2; }
die() { log "$*"; exit 1; }

# pid_of NAME: the recorded PID of daemon NAME if that process is still the
# one started (its executable's name matches), else nothing.
pid_of() {
  local f="$S/pids/$1" pid exe
  [ -f "$f" ] || return 0
  read -r pid exe <"$f" || return 0
  [ -n "$pid" ] && [ -e "/proc/$pid" ] || return 0
  local now
  now=$(readlink "/proc/$pid/exe" 2>/dev/null || true)
  now=${now% (deleted)}
  [ "$now" = "$exe" ] && echo "$pid"
  return 0
}

# stop NAME: SIGTERM, then SIGKILL after STOP_WAIT seconds.
stop() {
  local pid
  pid=$(pid_of "$1")
  if [ -n "$pid" ]; then
    kill -TERM "$pid" 2>/dev/null || true
    local i
    for ((i = 0; i < STOP_WAIT * 10; i++)); do
      [ -e "/proc/$pid" ] && [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ] || break
      sleep 0.1
    done
    # A zombie has ended (init reaps it when it gets to it).
    if [ -e "/proc/$pid" ] && [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ]; then
      log "$1 ($pid) did not end within ${STOP_WAIT}s of SIGTERM: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.2
    fi
  fi
  rm -f "$S/pids/$1"
}

# start NAME NS CMD...: start a daemon in its own session, in the keeper's
# mount namespace when NS is "ns" (the second node's keeper's when "ns2"),
# logging to $S/logs/NAME.log.
start() {
  local name=$1 ns=$2
  shift 2
  local exe
  exe=$(readlink -f "$(command -v "$1")")
  if [ "$ns" = ns ] || [ "$ns" = ns2 ]; then
    local keeper=keeper
    [ "$ns" = ns2 ] && keeper=keeper2
    setsid nsenter -t "$(pid_of $keeper)" -m -- "$@" >"$S/logs/$name.log" 2>&1 </dev/null 8>&- &
  else
    setsid "$@" >"$S/logs/$name.log" 2>&1 </dev/null 8>&- &
  fi
  local pid=$!
  echo "$pid $exe" >"$S/pids/$name"
  # setsid and nsenter exec the daemon (no fork: the caller is no process
  # group leader and no PID namespace is entered): check it is the daemon.
  local i
  for ((i = 0; i < 50; i++)); do
    [ -n "$(pid_of "$name")" ] && return 0
    [ -e "/proc/$pid" ] || die "$name exited at once: $(tail -5 "$S/logs/$name.log")"
    sleep 0.02
  done
  die "$name: PID $pid is not $exe"
}

wait_for() { # WHAT CMD...: run CMD until it succeeds, for READY_WAIT seconds
  local what=$1 i
  shift
  for ((i = 0; i < READY_WAIT * 5; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  die "$what did not come up within ${READY_WAIT}s"
}

cg2_mount() { # where the host's cgroup2 hierarchy is mounted
  awk '$3 == "cgroup2" {print $2; exit}' /proc/1/mounts
}
cg2_options() { # its superblock options, sorted, comma-separated
  local m
  m=$(cg2_mount)
  [ -n "$m" ] || return 0
  awk -v m="$m" '{ split($0, a, " - "); split(a[1], f, " "); if (f[5] == m) { split(a[2], g, " "); print g[3]; exit } }' /proc/self/mountinfo |
    tr , "\n" | { grep -vx -e rw -e ro -e seclabel || true; } | sort | paste -sd, -
}
# set_cg2_options OPTS: a cgroup2 mount made from the initial cgroup
# namespace applies its options to the one superblock (turning nsdelegate on
# or off machine-wide); made in a throwaway mount namespace, it is never seen.
set_cg2_options() {
  unshare -m --propagation private sh -c 'd=$(mktemp -d) && mount -t cgroup2 ${1:+-o "$1"} cgroup2 "$d"; rc=$?; umount "$d" 2>/dev/null; rmdir "$d"; exit $rc' sh "$1"
}

# ---------------------------------------------------------------- certificates
# key NAME: a private key NAME.key in the current directory.
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.key" 2>/dev/null; }
# sign NAME SUBJECT [EXT]: NAME.key and a certificate for it signed by the CA
# (ca.crt, ca.key), in the current directory.
sign() {
  key "$1"
  openssl req -new -key "$1.key" -subj "$2" -out "$1.csr" 2>/dev/null
  printf '%s\n' "${3:-extendedKeyUsage=clientAuth}" >"$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -sha256 -extfile "$1.ext" -out "$1.crt" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}
pki() {
  local p=$S/pki node=$1
  mkdir -p "$p"
  cd "$p"
  key ca
  openssl req -x509 -new -key ca.key -subj "/CN=cgfreeze-itest-ca" -days 2 -sha256 -out ca.crt 2>/dev/null
  sign apiserver "/CN=kube-apiserver" "$(printf '%s\n' "subjectAltName=IP:127.0.0.1,IP:$SERVICE_IP,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc" "extendedKeyUsage=serverAuth")"
  sign admin "/O=system:masters/CN=cgfreeze-itest-admin"
  sign apiserver-kubelet "/O=system:masters/CN=kube-apiserver-kubelet-client"
  sign kubelet "/O=system:nodes/CN=system:node:$node"
  sign kubelet-serving "/CN=$node" "$(printf '%s\n' "subjectAltName=IP:127.0.0.1,DNS:$node,DNS:localhost" "extendedKeyUsage=serverAuth")"
  key sa
  openssl pkey -in sa.key -pubout -out sa.pub 2>/dev/null
  kubeconfig admin >"$S/admin.kubeconfig"
  kubeconfig kubelet >"$S/kubelet.kubeconfig"
  cd - >/dev/null
}
kubeconfig() { # USER: a kubeconfig with USER's certificate
  cat <<EOF
apiVersion: v1
kind: Config
clusters:
- name: itest
  cluster:
    server: https://127.0.0.1:$API_PORT
    certificate-authority: $S/pki/ca.crt
users:
- name: $1
  user:
    client-certificate: $S/pki/$1.crt
    client-key: $S/pki/$1.key
contexts:
- name: itest
  context: {cluster: itest, user: $1}
current-context: itest
EOF
}

# containerd_config DIR CNI_CONF_DIR RUNC: a containerd configuration with
# its root, state, sockets and runc state under DIR.
containerd_config() {
  local c=$1
  cat <<EOF
version = 2
root = "$c/root"
state = "$c/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]
[grpc]
  address = "$c/containerd.sock"
[ttrpc]
  address = "$c/containerd.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$c/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "localhost/cgfreeze-pause:itest"
  disable_apparmor = true
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = "$3"
        Root = "$c/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$2"
EOF
}

# kubelet_config PORT HEALTHZ_PORT CGROUP_ROOT QOS ENFORCE CONTAINERD_SOCK POD_LOGS CERT:
# a kubelet configuration on 127.0.0.1.
kubelet_config() {
  local p=$S/pki
  cat <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 127.0.0.1
port: $1
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $2
tlsCertFile: $p/$8.crt
tlsPrivateKeyFile: $p/$8.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: $p/ca.crt}
authorization: {mode: AlwaysAllow}
cgroupDriver: cgroupfs
cgroupRoot: "$3"
cgroupsPerQOS: $4
enforceNodeAllocatable: $5
failSwapOn: false
failCgroupV1: false
makeIPTablesUtilChains: false
protectKernelDefaults: false
oomScoreAdj: 0
containerRuntimeEndpoint: unix://$6
podLogsDir: $7
resolvConf: /dev/null
evictionHard: {memory.available: "50Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
syncFrequency: 10s
fileCheckFrequency: 10s
EOF
}

# ---------------------------------------------------------------- up
up() {
  local mode=$1 bin=$2 images=$3
  case $mode in v1 | v2) ;; *) die "mode must be v1 or v2, got '$mode'" ;; esac
  for b in kube-apiserver kubelet kubectl kube-controller-manager kube-scheduler; do
    [ -x "$bin/$b" ] || die "$bin/$b is missing: run integration/k8s/build-kubernetes.sh"
  done
  for t in containerd ctr etcd runc openssl nsenter unshare ip; do
    command -v $t >/dev/null || die "$t is missing: apt-get install containerd etcd-server runc openssl util-linux iproute2 containernetworking-plugins"
  done
  [ -x /usr/lib/cni/bridge ] && [ -x /usr/lib/cni/host-local ] && [ -x /usr/lib/cni/loopback ] ||
    die "/usr/lib/cni/{bridge,host-local,loopback} are missing: apt-get install containernetworking-plugins"

  # An earlier run killed before its tear-down (SIGKILL, a CI time-out).
  if [ -e "$S" ]; then
    log "sweeping what an earlier run left in $S"
    down
  fi
  local cg2
  cg2=$(cg2_mount)
  [ "$mode" = v1 ] || [ -n "$cg2" ] || die "v2 needs a cgroup2 hierarchy mounted on the host"

  # The node's name must resolve to a loopback address: the API server
  # reaches the kubelet by it (--kubelet-preferred-address-types=Hostname),
  # and the kubelet refuses a loopback node IP.
  local node
  node=$(hostname)
  case $(getent ahostsv4 "$node" | awk 'NR==1{print $1}') in
    127.*) ;;
    *) node=localhost ;;
  esac

  mkdir -p "$S"/{pids,logs,etcd,cni/conf,cni/ipam,kubelet,pod-logs,containerd/root,containerd/state,containerd/runc}
  echo "$mode" >"$S/mode"
  echo "$node" >"$S/node"
  echo "${cg2:-}" >"$S/cg2-mount"
  cg2_options >"$S/cg2-options"
  : >"$S/sysctls"
  for s in $SYSCTLS; do echo "$s=$(sysctl -n "$s")" >>"$S/sysctls"; done
  : >"$S/outside-created"
  for d in $OUTSIDE; do [ -e "$d" ] || echo "$d" >>"$S/outside-created"; done
  if [ -n "$cg2" ]; then ls "$cg2" >"$S/cg2-before"; fi

  pki "$node"

  # The bridge, with the gateway address on the host side.
  ip link add "$BRIDGE" type bridge
  ip addr add "$GATEWAY/24" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  cat >"$S/cni/conf/10-cgfreeze.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "cgfreeze-itest",
  "plugins": [
    {"type": "bridge", "bridge": "$BRIDGE", "isGateway": false, "ipMasq": false, "hairpinMode": true,
     "ipam": {"type": "host-local", "dataDir": "$S/cni/ipam",
              "ranges": [[{"subnet": "$POD_NET", "rangeStart": "10.213.0.10", "rangeEnd": "10.213.0.250", "gateway": "$GATEWAY"}]]}},
    {"type": "loopback"}
  ]
}
EOF

  # The mount namespace of containerd and the kubelet.
  local mounts=""
  if [ "$mode" = v2 ]; then
    mounts="mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup &&"
  fi
  setsid unshare -m --propagation private -- sh -c "$mounts exec sleep infinity" </dev/null >"$S/logs/keeper.log" 2>&1 8>&- &
  echo "$! $(readlink -f "$(command -v sleep)")" >"$S/pids/keeper"
  local i
  for ((i = 0; i < 100; i++)); do
    [ -n "$(pid_of keeper)" ] && break
    sleep 0.05
  done
  [ -n "$(pid_of keeper)" ] || die "the mount namespace keeper did not start: $(cat "$S/logs/keeper.log")"
  if [ "$mode" = v2 ]; then
    grep -q ' /sys/fs/cgroup cgroup2 .*nsdelegate' "/proc/$(pid_of keeper)/mounts" ||
      die "cgroup2 is not at /sys/fs/cgroup with nsdelegate in the node's mount namespace"
  fi

  # etcd and the control plane, on 127.0.0.1.
  start etcd host etcd --name itest --data-dir "$S/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "itest=http://127.0.0.1:$ETCD_PEER_PORT" --enable-pprof=false --log-level warn
  local p=$S/pki
  start apiserver host "$bin/kube-apiserver" --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port=$API_PORT \
    --etcd-servers="http://127.0.0.1:$ETCD_PORT" --service-cluster-ip-range=$SERVICE_NET \
    --tls-cert-file="$p/apiserver.crt" --tls-private-key-file="$p/apiserver.key" --client-ca-file="$p/ca.crt" \
    --service-account-key-file="$p/sa.pub" --service-account-signing-key-file="$p/sa.key" \
    --service-account-issuer=https://kubernetes.default.svc \
    --kubelet-client-certificate="$p/apiserver-kubelet.crt" --kubelet-client-key="$p/apiserver-kubelet.key" \
    --kubelet-preferred-address-types=Hostname --authorization-mode=Node,RBAC \
    --endpoint-reconciler-type=none --allow-privileged=true --profiling=false
  local k="$bin/kubectl --kubeconfig=$S/admin.kubeconfig"
  wait_for "kube-apiserver" $k get --raw /readyz
  start controller-manager host "$bin/kube-controller-manager" --kubeconfig="$S/admin.kubeconfig" \
    --bind-address=127.0.0.1 --leader-elect=false --service-account-private-key-file="$p/sa.key" \
    --root-ca-file="$p/ca.crt" --use-service-account-credentials=false --profiling=false \
    --controllers='*,-nodeipam,-service,-route,-cloud-node-lifecycle'
  start scheduler host "$bin/kube-scheduler" --kubeconfig="$S/admin.kubeconfig" --bind-address=127.0.0.1 \
    --leader-elect=false --profiling=false

  # containerd, in the node's mount namespace.
  local runc_bin
  runc_bin=$(readlink -f "$(command -v runc)")
  if [ "$mode" = v2 ]; then
    [ -x "${CGFREEZE_K8S_RUNC_WRAPPER:-}" ] || die "v2 needs CGFREEZE_K8S_RUNC_WRAPPER (runc without linux.resources)"
    runc_bin=$CGFREEZE_K8S_RUNC_WRAPPER
  fi
  local c=$S/containerd
  containerd_config "$c" "$S/cni/conf" "$runc_bin" >"$c/config.toml"
  start containerd ns containerd --config "$c/config.toml"
  wait_for containerd ctr --address "$c/containerd.sock" version
  local tar
  for tar in "$images"/*.tar; do
    ctr --address "$c/containerd.sock" -n k8s.io images import --no-unpack=false "$tar" >/dev/null ||
      die "importing $tar into containerd failed"
  done

  # The kubelet.
  local qos=true enforce='["pods"]'
  if [ "$mode" = v2 ]; then qos=false enforce='[]'; fi
  kubelet_config 10250 10248 "" "$qos" "$enforce" "$c/containerd.sock" "$S/pod-logs" kubelet-serving >"$S/kubelet.yaml"
  start kubelet ns "$bin/kubelet" --config="$S/kubelet.yaml" --kubeconfig="$S/kubelet.kubeconfig" \
    --root-dir="$S/kubelet" --hostname-override="$node" --v=1
  wait_for "node $node Ready" sh -c "$k get node '$node' -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}' | grep -qx True"
  # The node lifecycle controller takes the not-ready taint off.
  wait_for "node $node without taints" sh -c "[ -z \"\$($k get node '$node' -o jsonpath='{.spec.taints}')\" ]"
  wait_for "the default service account" $k -n default get serviceaccount default
  log "$mode cluster up: node $node, kubeconfig $S/admin.kubeconfig"
}

# ---------------------------------------------------------------- a second node
# A second kubelet on this machine, for the scenarios that span nodes, with
# everything of its own: containerd (root, state, sockets under $N2), the
# kubelet's root directory, ports, cgroupRoot (/$NODE2_CGROUP_ROOT in every
# v1 hierarchy, so its kubepods tree is apart from the first node's), bridge
# ($BRIDGE2, pod network $POD_NET2) and a node name that resolves to
# 127.0.0.1 (a line of /etc/hosts marked "$HOSTS_MARK", added by `node2 up`
# and removed by `node2 down` and by `down`). Its containerd and kubelet run
# in a mount namespace of their own, a copy of the first node's, where the
# kubelet's fixed device-plugin directory (/var/lib/kubelet/device-plugins,
# whatever --root-dir says; each kubelet wipes it at its start) is a private
# tmpfs. v1 clusters only.
N2=$S/node2
NODE2=cgfreeze-itest-node2
NODE2_CGROUP_ROOT=cgfreeze-itest-node2
BRIDGE2=cgfz1
POD_NET2=10.213.1.0/24
GATEWAY2=10.213.1.1
KUBELET2_PORT=10260
KUBELET2_HEALTHZ_PORT=10258
HOSTS_MARK="# cgfreeze-itest node2"

# node2_cgroups: the second node's cgroups, deepest first (its cgroupRoot
# included), in the v1 hierarchies and the cgroup2 one (runc's hybrid mode).
node2_cgroups() {
  local d
  for d in /sys/fs/cgroup/*/; do
    [ -d "$d$NODE2_CGROUP_ROOT" ] && find "$d$NODE2_CGROUP_ROOT" -depth -type d
  done
  return 0
}

# hosts_remove: the second node's line out of /etc/hosts, rewritten in
# place (it may be a bind mount: no rename).
hosts_remove() {
  grep -qF "$HOSTS_MARK" /etc/hosts 2>/dev/null || return 0
  local kept
  kept=$(grep -vF "$HOSTS_MARK" /etc/hosts || true)
  printf '%s\n' "$kept" >/etc/hosts
}

node2_up() {
  local bin=$1 images=$2
  [ -n "$(pid_of apiserver)" ] && [ -n "$(pid_of keeper)" ] || die "node2 needs a cluster up (cluster.sh up v1 ...)"
  [ "$(cat "$S/mode")" = v1 ] || die "node2 runs on a v1 cluster only"
  # What a killed run left.
  node2_down
  mkdir -p "$N2"/{kubelet,pod-logs,cni/conf,cni/ipam,containerd/root,containerd/state,containerd/runc}

  # Its name, resolving to 127.0.0.1 (the API server reaches the kubelet by it).
  if ! getent ahostsv4 "$NODE2" | awk '{print $1}' | grep -q '^127\.'; then
    printf '127.0.0.1 %s %s\n' "$NODE2" "$HOSTS_MARK" >>/etc/hosts
  fi
  getent ahostsv4 "$NODE2" | awk '{print $1}' | grep -q '^127\.' || die "$NODE2 does not resolve to 127.0.0.1 after adding it to /etc/hosts"

  # Its kubelet's certificates.
  (
    cd "$S/pki"
    sign kubelet2 "/O=system:nodes/CN=system:node:$NODE2"
    sign kubelet2-serving "/CN=$NODE2" "$(printf '%s\n' "subjectAltName=IP:127.0.0.1,DNS:$NODE2" "extendedKeyUsage=serverAuth")"
  )
  kubeconfig kubelet2 >"$N2/kubelet.kubeconfig"

  # Its cgroupRoot in every v1 hierarchy (the kubelet checks it exists);
  # a new cpuset cgroup has no CPUs until it is given its parent's.
  local h
  for h in $(awk '$3 == "cgroup" {print $2}' /proc/self/mounts); do
    mkdir -p "$h/$NODE2_CGROUP_ROOT"
    if [ -f "$h/cpuset.cpus" ]; then
      cat "$h/cpuset.cpus" >"$h/$NODE2_CGROUP_ROOT/cpuset.cpus"
      cat "$h/cpuset.mems" >"$h/$NODE2_CGROUP_ROOT/cpuset.mems"
    fi
  done

  # Its bridge and CNI network.
  ip link add "$BRIDGE2" type bridge
  ip addr add "$GATEWAY2/24" dev "$BRIDGE2"
  ip link set "$BRIDGE2" up
  cat >"$N2/cni/conf/10-cgfreeze.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "cgfreeze-itest-node2",
  "plugins": [
    {"type": "bridge", "bridge": "$BRIDGE2", "isGateway": false, "ipMasq": false, "hairpinMode": true,
     "ipam": {"type": "host-local", "dataDir": "$N2/cni/ipam",
              "ranges": [[{"subnet": "$POD_NET2", "rangeStart": "10.213.1.10", "rangeEnd": "10.213.1.250", "gateway": "$GATEWAY2"}]]}},
    {"type": "loopback"}
  ]
}
EOF

  # Its mount namespace: a copy of the first node's, with the device-plugin
  # directory its own.
  setsid nsenter -t "$(pid_of keeper)" -m -- unshare -m --propagation private -- sh -c \
    'mkdir -p /var/lib/kubelet/device-plugins && mount -t tmpfs -o size=1m,mode=0750 cgfreeze-node2 /var/lib/kubelet/device-plugins && exec sleep infinity' \
    </dev/null >"$S/logs/keeper2.log" 2>&1 8>&- &
  echo "$! $(readlink -f "$(command -v sleep)")" >"$S/pids/keeper2"
  local i
  for ((i = 0; i < 100; i++)); do
    [ -n "$(pid_of keeper2)" ] && break
    sleep 0.05
  done
  [ -n "$(pid_of keeper2)" ] || die "the second node's mount namespace keeper did not start: $(cat "$S/logs/keeper2.log")"

  local c=$N2/containerd
  containerd_config "$c" "$N2/cni/conf" "$(readlink -f "$(command -v runc)")" >"$c/config.toml"
  start containerd2 ns2 containerd --config "$c/config.toml"
  wait_for "the second containerd" ctr --address "$c/containerd.sock" version
  local tar
  for tar in "$images"/*.tar; do
    ctr --address "$c/containerd.sock" -n k8s.io images import --no-unpack=false "$tar" >/dev/null ||
      die "importing $tar into the second containerd failed"
  done
  kubelet_config $KUBELET2_PORT $KUBELET2_HEALTHZ_PORT "/$NODE2_CGROUP_ROOT" true '["pods"]' "$c/containerd.sock" "$N2/pod-logs" kubelet2-serving >"$N2/kubelet.yaml"
  start kubelet2 ns2 "$bin/kubelet" --config="$N2/kubelet.yaml" --kubeconfig="$N2/kubelet.kubeconfig" \
    --root-dir="$N2/kubelet" --hostname-override="$NODE2" --v=1
  local k="$bin/kubectl --kubeconfig=$S/admin.kubeconfig"
  wait_for "node $NODE2 Ready" sh -c "$k get node '$NODE2' -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}' | grep -qx True"
  wait_for "node $NODE2 without taints" sh -c "[ -z \"\$($k get node '$NODE2' -o jsonpath='{.spec.taints}')\" ]"
  log "second node up: $NODE2"
}

node2_down() {
  if [ -e "$N2" ] || [ -n "$(pid_of kubelet2)$(pid_of containerd2)$(pid_of keeper2)" ]; then
    local bin k=""
    bin=$(dirname "$(awk '{print $2}' "$S/pids/apiserver" 2>/dev/null || echo /nonexistent/x)")
    if [ -n "$(pid_of apiserver)" ] && [ -x "$bin/kubectl" ]; then
      k="$bin/kubectl --kubeconfig=$S/admin.kubeconfig --request-timeout=10s"
    fi
    # Its pods, while its kubelet runs; cordoned first, so that a workload
    # left by a killed run does not get its replacements placed there.
    if [ -n "$k" ] && [ -n "$(pid_of kubelet2)" ]; then
      $k cordon "$NODE2" >/dev/null 2>&1 || true
      $k delete pods -A --field-selector "spec.nodeName=$NODE2" --grace-period=2 --wait=true --timeout=45s >/dev/null 2>&1 ||
        log "deleting the second node's pods did not finish: killing what is left"
    fi
    stop kubelet2
    # What is still bound to it can no longer end gracefully: gone from the
    # API at once (its containers are killed below), so that `down` does not
    # wait for them.
    if [ -n "$k" ]; then
      $k delete pods -A --field-selector "spec.nodeName=$NODE2" --grace-period=0 --force >/dev/null 2>&1 || true
    fi
    local cg
    for cg in $(node2_cgroups); do
      [ -f "$cg/freezer.state" ] && echo THAWED >"$cg/freezer.state" 2>/dev/null
    done
    if [ -n "$(pid_of containerd2)" ]; then
      local ctr="ctr --address $N2/containerd/containerd.sock -n k8s.io" t
      for t in $($ctr tasks ls -q 2>/dev/null); do $ctr tasks kill -a -s KILL "$t" >/dev/null 2>&1 || true; done
      sleep 0.5
      for t in $($ctr tasks ls -q 2>/dev/null); do $ctr tasks delete -f "$t" >/dev/null 2>&1 || true; done
      for t in $($ctr containers ls -q 2>/dev/null); do $ctr containers delete "$t" >/dev/null 2>&1 || true; done
    fi
    stop containerd2
    local pid
    for pid in $(pgrep -f "containerd-shim-runc-v2 .*-address $N2/containerd/containerd.sock" || true); do
      kill -KILL "$pid" 2>/dev/null || true
    done
    clear_cgroups node2_cgroups
    stop keeper2
    # The Node object: the scheduler must not pick it again.
    if [ -n "$k" ]; then
      $k delete node "$NODE2" --ignore-not-found >/dev/null 2>&1 || log "cannot delete the node $NODE2"
    fi
    local m
    for m in $(awk -v s="$N2" 'index($2, s "/") == 1 || $2 == s {print $2}' /proc/self/mounts | sort -r); do
      umount -l "$m" 2>/dev/null || log "cannot unmount $m"
    done
  fi
  # What a run killed half-way left, even without $N2.
  [ -z "$(node2_cgroups)" ] || clear_cgroups node2_cgroups
  if ip link show "$BRIDGE2" >/dev/null 2>&1; then ip link del "$BRIDGE2" || log "cannot delete the bridge $BRIDGE2"; fi
  hosts_remove
  rm -rf "$N2"
  rm -f "$S"/pki/kubelet2*
}

# ---------------------------------------------------------------- down
# kubepods_cgroups: every cgroup directory the node made, deepest first.
our_cgroups() {
  local d
  for d in /sys/fs/cgroup/*/; do
    [ "$(stat -f -c %T "$d" 2>/dev/null)" = cgroup2fs ] && continue
    [ -d "$d/kubepods" ] && find "$d/kubepods" -depth -type d
  done
  node2_cgroups
  local cg2
  cg2=$(cat "$S/cg2-mount" 2>/dev/null || cg2_mount)
  if [ -n "$cg2" ] && [ -d "$cg2" ]; then
    [ -d "$cg2/kubepods" ] && find "$cg2/kubepods" -depth -type d
    # Without cgroupsPerQOS the runtime puts containers at the root of the
    # hierarchy, named by their 64-digit ID (and, in v2, under k8s.io).
    find "$cg2" -maxdepth 1 -mindepth 1 -type d -regextype egrep -regex '.*/([0-9a-f]{64}|k8s\.io)' -print0 |
      xargs -0 -r -I{} find {} -depth -type d
  fi
  return 0
}

# clear_cgroups LIST: thaw, empty (SIGKILL) and remove the cgroups that the
# function LIST prints, deepest first, in up to three rounds.
clear_cgroups() {
  local round cg pid
  for round in 1 2 3; do
    for cg in $($1); do
      [ -f "$cg/freezer.state" ] && echo THAWED >"$cg/freezer.state" 2>/dev/null
      [ -f "$cg/cgroup.freeze" ] && echo 0 >"$cg/cgroup.freeze" 2>/dev/null
      [ -f "$cg/cgroup.kill" ] && echo 1 >"$cg/cgroup.kill" 2>/dev/null
      for pid in $(cat "$cg/cgroup.procs" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
    done
    sleep 0.3
    for cg in $($1); do rmdir "$cg" 2>/dev/null || true; done
    [ -z "$($1)" ] && break
  done
  for cg in $($1); do log "cannot remove cgroup $cg: $(head -c 200 "$cg/cgroup.procs" 2>/dev/null | tr '\n' ' ')"; done
  return 0
}

down() {
  hosts_remove
  [ -e "$S" ] || return 0
  # The second node first, while the API server runs.
  node2_down
  local k="" bin
  bin=$(dirname "$(awk '{print $2}' "$S/pids/apiserver" 2>/dev/null || echo /nonexistent/x)")
  # 1. Pods, while the kubelet runs: their sandboxes and networks go the
  # regular way.
  if [ -n "$(pid_of apiserver)" ] && [ -n "$(pid_of kubelet)" ] && [ -x "$bin/kubectl" ]; then
    k="$bin/kubectl --kubeconfig=$S/admin.kubeconfig --request-timeout=10s"
    $k delete pods --all -A --grace-period=2 --wait=true --timeout=45s >/dev/null 2>&1 ||
      log "deleting the pods did not finish: killing what is left"
  fi
  stop kubelet
  # 2. Containers that remain: thaw (a frozen task cannot die on v1), kill.
  local cg
  for cg in $(our_cgroups); do
    [ -f "$cg/freezer.state" ] && echo THAWED >"$cg/freezer.state" 2>/dev/null
    [ -f "$cg/cgroup.freeze" ] && echo 0 >"$cg/cgroup.freeze" 2>/dev/null
  done
  if [ -n "$(pid_of containerd)" ]; then
    local ctr="ctr --address $S/containerd/containerd.sock -n k8s.io" t
    for t in $($ctr tasks ls -q 2>/dev/null); do $ctr tasks kill -a -s KILL "$t" >/dev/null 2>&1 || true; done
    sleep 0.5
    for t in $($ctr tasks ls -q 2>/dev/null); do $ctr tasks delete -f "$t" >/dev/null 2>&1 || true; done
    for t in $($ctr containers ls -q 2>/dev/null); do $ctr containers delete "$t" >/dev/null 2>&1 || true; done
  fi
  stop containerd
  # 3. Shims (they outlive containerd by design) and anything left in our
  # cgroups.
  local pid
  for pid in $(pgrep -f "containerd-shim-runc-v2 .*-address $S/containerd/containerd.sock" || true); do
    kill -KILL "$pid" 2>/dev/null || true
  done
  clear_cgroups our_cgroups
  # 4. The control plane and the mount namespace.
  stop scheduler
  stop controller-manager
  stop apiserver
  stop etcd
  stop keeper
  # 5. Mounts under the scratch directory (the namespace's end took them,
  # unless a daemon ran in the host's).
  local m
  for m in $(awk -v s="$S" 'index($2, s "/") == 1 || $2 == s {print $2}' /proc/self/mounts | sort -r); do
    umount -l "$m" 2>/dev/null || log "cannot unmount $m"
  done
  # 6. The bridge, the sysctls, the cgroup2 options.
  if ip link show "$BRIDGE" >/dev/null 2>&1; then ip link del "$BRIDGE" || log "cannot delete the bridge $BRIDGE"; fi
  if [ -f "$S/sysctls" ]; then
    local kv
    while read -r kv; do
      [ "$(sysctl -n "${kv%%=*}")" = "${kv#*=}" ] || sysctl -q -w "$kv" >/dev/null || log "cannot restore $kv"
    done <"$S/sysctls"
  fi
  if [ -s "$S/cg2-mount" ] && [ -f "$S/cg2-options" ]; then
    local want now
    want=$(cat "$S/cg2-options")
    now=$(cg2_options)
    if [ "$now" != "$want" ]; then
      log "cgroup2 options are '$now': restoring '$want'"
      set_cg2_options "$want" || log "cannot restore the cgroup2 options '$want'"
    fi
  fi
  # 7. What the components made outside the scratch directory: containerd
  # 1.6 names the pods' network namespaces /run/netns/cni-<uuid> (bind
  # mounts in the node's mount namespace, which is gone: the files remain).
  local f
  for f in /run/netns/cni-*; do
    [ -e "$f" ] || continue
    if awk -v s="$f" '$2 == s {found=1} END {exit !found}' /proc/self/mounts; then continue; fi
    rm -f "$f"
  done
  if [ -f "$S/outside-created" ]; then
    local d
    while read -r d; do
      [ -n "$d" ] && [ -e "$d" ] || continue
      if awk -v s="$d" 'index($2, s "/") == 1 {found=1} END {exit !found}' /proc/self/mounts; then
        log "$d still has mounts under it: left in place"
        continue
      fi
      rm -rf "$d"
    done <"$S/outside-created"
  fi
  rm -rf "$S"
}

# ---------------------------------------------------------------- check
# Leftovers of ours on the machine; prints them and exits 1 if any.
check() {
  local bad=0 p exe
  for p in /proc/[0-9]*; do
    exe=$(readlink "$p/exe" 2>/dev/null) || continue
    case ${exe##*/} in
      kube-apiserver | kubelet | kube-controller-manager | kube-scheduler | etcd | containerd | containerd-shim-runc-v2)
        echo "process ${p#/proc/} ($exe) is running"; bad=1 ;;
    esac
  done
  if [ -e "$S" ]; then echo "$S exists"; bad=1; fi
  local cg
  for cg in $(our_cgroups); do echo "cgroup $cg exists"; bad=1; done
  if awk -v s="$S" 'index($2, s) == 1 {found=1} END {exit !found}' /proc/self/mounts; then echo "mounts under $S remain"; bad=1; fi
  if ip link show "$BRIDGE" >/dev/null 2>&1; then echo "bridge $BRIDGE exists"; bad=1; fi
  if ip link show "$BRIDGE2" >/dev/null 2>&1; then echo "bridge $BRIDGE2 exists"; bad=1; fi
  if grep -qF "$HOSTS_MARK" /etc/hosts 2>/dev/null; then echo "/etc/hosts has the line of $NODE2"; bad=1; fi
  [ "$bad" = 0 ]
}

# Everything here touches cgroups and machine-wide settings (the cgroup2
# options, sysctls): take the integration lock like the other suites, unless
# the caller holds it (the Go harness sets CGFREEZE_ITEST_LOCKED=1). The
# daemons are started with fd 8 closed: one that inherited it would hold
# the lock for as long as it runs.
if [ "${CGFREEZE_ITEST_LOCKED:-}" != 1 ] && [ "${1:-}" != check ]; then
  exec 8>>/tmp/cgfreeze-itest.lock
  flock 8
fi

usage="usage: cluster.sh up v1|v2 BIN_DIR IMAGE_DIR | down | check | node2 up BIN_DIR IMAGE_DIR | node2 down"
case ${1:-} in
  up) [ $# = 4 ] || die "$usage"; up "$2" "$3" "$4" ;;
  down) down ;;
  check) check ;;
  node2)
    case ${2:-} in
      up) [ $# = 4 ] || die "$usage"; node2_up "$3" "$4" ;;
      down) node2_down ;;
      *) die "$usage" ;;
    esac ;;
  *) die "$usage" ;;
esac
