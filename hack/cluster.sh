#!/usr/bin/env bash
# A real multi-node Kubernetes cluster on this machine, built from source:
# etcd, kube-apiserver, kube-controller-manager and kube-scheduler, and per
# node its own containerd (own root, state and socket) and kubelet (own root
# dir, ports and node name), pods on one CNI bridge, cluster DNS (CoreDNS
# with its kubernetes plugin only), and two OCI registries (one open, one
# behind basic auth), and a third one that answers like a remote registry
# (REMOTE_LATENCY before each answer's first byte, REMOTE_MB_PER_SECOND per
# stream) for benchmarks.
#
# There is no kube-proxy: a Service's ClusterIP leads nowhere, except the
# `kubernetes` Service's, which this host holds. A Service is reachable by
# name when it is headless (clusterIP: None): the cluster DNS then answers
# with its ready Pods' addresses.
#
# All of it lives in a network namespace of its own (kip-cluster): the bridge,
# the API server's address and the registries are there, not on this host's
# interfaces. The host reaches the API server and the registries only through
# 127.0.0.1 forwards (kip-dev forward), started and stopped by PID like the
# rest; the nodes' CRI sockets are files under KIP_CLUSTER_DIR.
#
#   hack/cluster.sh up [NODES]    start (idempotent: a healthy cluster is kept);
#                                 with NODE_IMAGEFS_SIZE, every node's image store
#                                 is a filesystem of its own, as add-node's below
#
# Runtimes: every node runs Debian's containerd (1.6.20, which cannot pin
# images), except the nodes listed in CONTAINERD2_NODES (numbers, e.g. "3"),
# which run containerd CONTAINERD_VERSION (v2.4.2, built from the Go module
# proxy by hack/kube-binaries.sh containerd2), which honours the pin label.
#   hack/cluster.sh down          stop what up started and remove its files
#   hack/cluster.sh status        print what runs
#   hack/cluster.sh restart-kubelet N [gc]
#                                 restart node N's kubelet (its pods keep running);
#                                 gc: under disk pressure, so that the kubelet frees
#                                 every unused, unpinned image within seconds
#   hack/cluster.sh add-node [TAINT]
#                                 start one more node (the next number; up to
#                                 SPARE_NODES beyond those of `up`), registered
#                                 with TAINT (kubelet --register-with-taints,
#                                 e.g. kip.dev/warming=:NoSchedule); prints its name
#                                 With NODE_IMAGEFS_SIZE (e.g. 3G), its image
#                                 store is a filesystem of that size of its own
#                                 (a loop-mounted ext4 file), and its kubelet
#                                 collects images above NODE_IMAGE_GC (high,low
#                                 percent; default 70,60) and evicts below 15%
#                                 free, the kubelet's default; with
#                                 NODE_CONTAINERD2=1, it runs containerd 2
#   hack/cluster.sh remove-node N stop node N, remove its files and its Node
#   hack/cluster.sh outage WHAT SECONDS
#                                 stop etcd, kube-apiserver, kubelet-nodeN,
#                                 containerd-nodeN, registry, auth-registry or
#                                 remote-registry for SECONDS, then start it again
#   hack/cluster.sh reshape-registry [LATENCY MB_PER_SECOND]
#                                 restart the remote-like registry with another
#                                 first-byte latency and per-stream bandwidth
#                                 (none given: REMOTE_LATENCY, REMOTE_MB_PER_SECOND);
#                                 its manifests are kept in memory: push again
#                                 what it must serve
#
# Everything lives under KIP_CLUSTER_DIR (default /tmp/kip-cluster). The PIDs
# started are recorded there and only those are stopped. Must run as root.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR=${KIP_CLUSTER_DIR:-/tmp/kip-cluster}
NODES=${NODES:-3}
# More kube-controller-manager flags (make bench-scale: a higher API rate,
# a longer node grace period for simulated nodes).
KCM_EXTRA_ARGS=${KCM_EXTRA_ARGS:-}
if [ "${1:-}" = up ]; then NODES=${2:-$NODES}; fi
NETNS=${KIP_NETNS:-kip-cluster}
NETNS_PATH=/run/netns/$NETNS
BRIDGE=kip0
BRIDGE_CIDR=10.88.0.0/16
NODE_IP=10.88.0.1
# The `kubernetes` Service's ClusterIP, held by this host, so that pods reach
# the API server without kube-proxy; the API server listens only there.
API_IP=10.88.255.1
SERVICE_CIDR=10.88.255.0/24
# The cluster DNS, also held by this host: outside the Service range and the
# nodes' pod ranges (10.88.N.0/24 for node N).
DNS_IP=10.88.254.53
API_PORT=443
# The host's way in: 127.0.0.1 forwards into the namespace.
API_HOST=127.0.0.1:${KIP_API_HOST_PORT:-16443}
REGISTRY_PUSH=127.0.0.1:5001
AUTH_REGISTRY_PUSH=127.0.0.1:5002
# Inside the namespace the registries listen on the bridge: the address
# images are named by, reachable from nodes and pods alike.
REGISTRY=$NODE_IP:5001
AUTH_REGISTRY=$NODE_IP:5002
REMOTE_REGISTRY_PUSH=127.0.0.1:5003
REMOTE_REGISTRY=$NODE_IP:5003
REMOTE_LATENCY=${REMOTE_LATENCY:-80ms}
REMOTE_MB_PER_SECOND=${REMOTE_MB_PER_SECOND:-20}
REGISTRY_USER=kip
ETCD_PORT=23790
# Nodes add-node may start beyond those of `up`: the API server reads its
# node tokens once, at start.
SPARE_NODES=${SPARE_NODES:-4}
CONTAINERD2_NODES=${CONTAINERD2_NODES:-}
CONTAINERD_VERSION=${CONTAINERD_VERSION:-v2.4.2}
PAUSE_IMAGE=$REGISTRY/pause:3.10

log() { echo "cluster: $*" >&2; }
die() { log "$*"; exit 1; }

pidfile() { echo "$DIR/pids/$1.pid"; }

# alive NAME: the process recorded for NAME still runs (and is still ours:
# its command line names our directory, our binaries or our network namespace,
# whichever checkout of the project started it).
alive() {
  local f pid
  f=$(pidfile "$1")
  [ -f "$f" ] || return 1
  pid=$(cat "$f")
  [ -d "/proc/$pid" ] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -e "$DIR" -e "$KUBE_BIN" -e "$ROOT/bin" -e "$NETNS_PATH"
}

# start NAME CMD...: run CMD in the background, log to logs/NAME.log, record its PID.
start() {
  local name=$1
  shift
  "$@" </dev/null >"$DIR/logs/$name.log" 2>&1 &
  echo $! >"$(pidfile "$name")"
}

# ns CMD...: run CMD in the cluster's network namespace (nsenter switches the
# network namespace only, so mounts stay shared with kubelet and containerd).
ns() { nsenter --net="$NETNS_PATH" "$@"; }

# start_ns NAME CMD...: start CMD in the cluster's network namespace.
start_ns() {
  local name=$1
  shift
  start "$name" nsenter --net="$NETNS_PATH" "$@"
}

# stop NAME: end the recorded process, if it is still ours.
stop() {
  local name=$1 pid i
  if alive "$name"; then
    pid=$(cat "$(pidfile "$name")")
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 50); do [ -d "/proc/$pid" ] || break; sleep 0.1; done
    [ -d "/proc/$pid" ] && kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$(pidfile "$name")"
}

wait_for() { # wait_for SECONDS DESCRIPTION CMD...
  local secs=$1 what=$2 i
  shift 2
  for i in $(seq $((secs * 5))); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  die "$what: not within ${secs}s (logs in $DIR/logs)"
}

install_packages() {
  local missing=()
  command -v containerd >/dev/null || missing+=(containerd)
  command -v runc >/dev/null || missing+=(runc)
  [ -x /usr/lib/cni/bridge ] || missing+=(containernetworking-plugins)
  command -v ip >/dev/null || missing+=(iproute2)
  command -v nsenter >/dev/null || missing+=(util-linux)
  command -v mkfs.ext4 >/dev/null || missing+=(e2fsprogs)
  command -v openssl >/dev/null || missing+=(openssl)
  command -v curl >/dev/null || missing+=(curl)
  [ ${#missing[@]} -eq 0 ] && return
  log "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

build_binaries() {
  KUBE_BIN=$("$ROOT/hack/kube-binaries.sh" etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl coredns)
  if [ -n "$CONTAINERD2_NODES" ]; then
    CONTAINERD_VERSION=$CONTAINERD_VERSION "$ROOT/hack/kube-binaries.sh" containerd2 >/dev/null
  fi
  (cd "$ROOT" && make -s build >/dev/null && CGO_ENABLED=0 go build -o bin/kip-dev ./cmd/kip-dev)
}

kubectl() { "$KUBE_BIN/kubectl" --kubeconfig "$DIR/kubeconfig" "$@"; }

healthy() {
  local n
  for n in forward etcd kube-apiserver kube-controller-manager kube-scheduler coredns registry auth-registry remote-registry; do alive "$n" || return 1; done
  for n in $(seq "$NODES"); do alive "containerd-node$n" && alive "kubelet-node$n" || return 1; done
  kubectl get --raw /readyz >/dev/null 2>&1
}

make_pki() {
  local p=$DIR/pki
  mkdir -p "$p"
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$p/ca.key" -out "$p/ca.crt" -days 30 -subj "/CN=kip-local-ca" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -keyout "$p/apiserver.key" -out "$p/apiserver.csr" -subj "/CN=kube-apiserver" 2>/dev/null
  printf 'subjectAltName=IP:%s,IP:%s,IP:127.0.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,DNS:localhost\n' "$API_IP" "$NODE_IP" >"$p/apiserver.ext"
  openssl x509 -req -in "$p/apiserver.csr" -CA "$p/ca.crt" -CAkey "$p/ca.key" -CAcreateserial -days 30 -extfile "$p/apiserver.ext" -out "$p/apiserver.crt" 2>/dev/null
  # The API server's client certificate towards the kubelets (logs, exec).
  openssl req -newkey rsa:2048 -nodes -keyout "$p/kubelet-client.key" -out "$p/kubelet-client.csr" -subj "/O=system:masters/CN=kube-apiserver-kubelet-client" 2>/dev/null
  openssl x509 -req -in "$p/kubelet-client.csr" -CA "$p/ca.crt" -CAkey "$p/ca.key" -CAcreateserial -days 30 -out "$p/kubelet-client.crt" 2>/dev/null
  openssl genrsa -out "$p/sa.key" 2048 2>/dev/null
  openssl rsa -in "$p/sa.key" -pubout -out "$p/sa.pub" 2>/dev/null
  ADMIN_TOKEN=$(openssl rand -hex 16)
  echo "$ADMIN_TOKEN,kip-admin,kip-admin,system:masters" >"$p/tokens.csv"
  for n in $(seq $((NODES + SPARE_NODES))); do
    echo "$(openssl rand -hex 16),system:node:node$n,node$n,system:nodes" >>"$p/tokens.csv"
  done
  openssl rand -hex 12 >"$p/registry-password"
  chmod 600 "$p"/*.key "$p/tokens.csv" "$p/registry-password"
}

# kubeconfig FILE USER TOKEN [SERVER]: SERVER defaults to the API server's
# address inside the namespace; the host's kubeconfig names the forward.
kubeconfig() {
  cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: kip-local
  cluster:
    server: https://${4:-$API_IP:$API_PORT}
    certificate-authority: $DIR/pki/ca.crt
users:
- name: $2
  user:
    token: $3
contexts:
- name: kip-local
  context: {cluster: kip-local, user: $2}
current-context: kip-local
EOF
  chmod 600 "$1"
}

# setup_network makes the namespace, its loopback, the pods' bridge and the
# API server's address, all inside it, then the host's forwards into it.
setup_network() {
  if [ -e "$NETNS_PATH" ]; then
    die "network namespace $NETNS exists but is not this cluster's: remove it (ip netns delete $NETNS) or set KIP_NETNS"
  fi
  ip netns add "$NETNS"
  touch "$DIR/netns-created"
  ip -n "$NETNS" link set lo up
  # A MAC address of its own: a bridge left to itself takes the lowest of
  # its ports', so it changed whenever the pod holding that one went, and
  # every other pod lost the gateway (the registries, the API server) for
  # up to a minute, until its ARP entry for it expired.
  ip -n "$NETNS" link add "$BRIDGE" address 02:6b:69:70:00:01 type bridge
  ip -n "$NETNS" addr add "$NODE_IP/16" dev "$BRIDGE"
  ip -n "$NETNS" link set "$BRIDGE" up
  ip -n "$NETNS" addr add "$API_IP/32" dev lo
  ip -n "$NETNS" addr add "$DNS_IP/32" dev lo
  start forward "$ROOT/bin/kip-dev" forward --netns "$NETNS_PATH" \
    "$API_HOST=$API_IP:$API_PORT" "$REGISTRY_PUSH=$REGISTRY" "$AUTH_REGISTRY_PUSH=$AUTH_REGISTRY" "$REMOTE_REGISTRY_PUSH=$REMOTE_REGISTRY"
}

start_registries() {
  start_registry registry
  start_registry remote-registry
  start_registry auth-registry
  "$ROOT/bin/kip-dev" push-pause --registry "$REGISTRY_PUSH" --image "${PAUSE_IMAGE#*/}" --kip-sleep "$ROOT/bin/kip-sleep" >/dev/null
}

# start_registry NAME: registry, auth-registry or remote-registry, serving
# what it held before.
start_registry() {
  case $1 in
    registry)
      start_ns registry "$ROOT/bin/kip-dev" registry --addr "$REGISTRY" --dir "$DIR/registry/open"
      wait_for 20 "registry on $REGISTRY, from the host at $REGISTRY_PUSH" curl -sf "http://$REGISTRY_PUSH/v2/"
      ;;
    auth-registry)
      start_ns auth-registry "$ROOT/bin/kip-dev" registry --addr "$AUTH_REGISTRY" --dir "$DIR/registry/auth" \
        --user "$REGISTRY_USER" --password-file "$DIR/pki/registry-password"
      wait_for 20 "registry on $AUTH_REGISTRY, from the host at $AUTH_REGISTRY_PUSH" curl -sf -u "$REGISTRY_USER:$(cat "$DIR/pki/registry-password")" "http://$AUTH_REGISTRY_PUSH/v2/"
      ;;
    remote-registry)
      start_ns remote-registry "$ROOT/bin/kip-dev" registry --addr "$REMOTE_REGISTRY" --dir "$DIR/registry/remote" \
        --latency "$REMOTE_LATENCY" --stream-mb-per-second "$REMOTE_MB_PER_SECOND"
      wait_for 20 "remote-like registry on $REMOTE_REGISTRY, from the host at $REMOTE_REGISTRY_PUSH" curl -sf "http://$REMOTE_REGISTRY_PUSH/v2/"
      ;;
  esac
}

start_etcd() {
  start_ns etcd "$KUBE_BIN/etcd" --data-dir "$DIR/etcd" --name kip \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$((ETCD_PORT + 10))" --initial-advertise-peer-urls "http://127.0.0.1:$((ETCD_PORT + 10))" \
    --initial-cluster "kip=http://127.0.0.1:$((ETCD_PORT + 10))" --unsafe-no-fsync
  wait_for 30 "etcd" ns curl -sf "http://127.0.0.1:$ETCD_PORT/health"
}

start_apiserver() {
  local p=$DIR/pki
  start_ns kube-apiserver "$KUBE_BIN/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
    --bind-address "$API_IP" --secure-port "$API_PORT" --advertise-address "$API_IP" \
    --tls-cert-file "$p/apiserver.crt" --tls-private-key-file "$p/apiserver.key" --client-ca-file "$p/ca.crt" \
    --token-auth-file "$p/tokens.csv" --authorization-mode Node,RBAC \
    --service-account-issuer https://kubernetes.default.svc --service-account-key-file "$p/sa.pub" \
    --service-account-signing-key-file "$p/sa.key" --service-cluster-ip-range "$SERVICE_CIDR" \
    --enable-admission-plugins NodeRestriction --allow-privileged=false \
    --kubelet-preferred-address-types InternalIP \
    --kubelet-client-certificate "$p/kubelet-client.crt" --kubelet-client-key "$p/kubelet-client.key"
  wait_for 120 "kube-apiserver" kubectl get --raw /readyz
}

start_control_plane() {
  local p=$DIR/pki
  start_etcd
  start_apiserver
  kubeconfig "$DIR/controller.kubeconfig" kip-admin "$ADMIN_TOKEN"
  start_ns kube-controller-manager "$KUBE_BIN/kube-controller-manager" --kubeconfig "$DIR/controller.kubeconfig" \
    --controllers '*' --use-service-account-credentials --service-account-private-key-file "$p/sa.key" \
    --root-ca-file "$p/ca.crt" --leader-elect=false --bind-address 127.0.0.1 --secure-port 10257 --cluster-name kip-local \
    $KCM_EXTRA_ARGS
  start_ns kube-scheduler "$KUBE_BIN/kube-scheduler" --kubeconfig "$DIR/controller.kubeconfig" \
    --leader-elect=false --bind-address 127.0.0.1 --secure-port 10259
  start_dns
}

# start_dns runs CoreDNS on DNS_IP:53 for the zone cluster.local only: names
# outside it are refused, so nothing in the cluster resolves a real hostname.
start_dns() {
  cat >"$DIR/Corefile" <<EOF
cluster.local:53 {
  bind $DNS_IP
  errors
  kubernetes cluster.local {
    kubeconfig $DIR/controller.kubeconfig
  }
}
EOF
  start_ns coredns "$KUBE_BIN/coredns" -conf "$DIR/Corefile"
  wait_for 30 "cluster DNS on $DNS_IP" grep -q "^CoreDNS-" "$DIR/logs/coredns.log"
  # The pods' resolv.conf comes from the kubelet: ClusterFirst pods get the
  # cluster DNS and its search path; this file, the host's part, is empty.
  printf '# no nameserver: pods resolve cluster names only, through %s\n' "$DNS_IP" >"$DIR/resolv.conf"
}

# socket N: node N's CRI socket, alone in a folder named after the node, so
# that agent mode reaches it with CRI_SOCKET=$DIR/sockets/$(NODE_NAME)/containerd.sock
# and mounts nothing else of the node.
socket() { echo "$DIR/sockets/node$1/containerd.sock"; }

# containerd2 N: whether node N runs containerd 2 (CONTAINERD2_NODES, or
# add-node's NODE_CONTAINERD2).
containerd2() { [[ " ${CONTAINERD2_NODES//,/ } " == *" $1 "* ]] || [ -f "$DIR/nodes/node$1/containerd2" ]; }

# containerd2_config N DIR: containerd 2's configuration (version 3) for
# node N; the registries are named over plain HTTP through hosts.toml.
containerd2_config() {
  local n=$1 d=$2 r
  for r in "$REGISTRY" "$AUTH_REGISTRY" "$REMOTE_REGISTRY"; do
    mkdir -p "$d/certs.d/$r"
    printf 'server = "http://%s"\n[host."http://%s"]\n  capabilities = ["pull", "resolve"]\n' "$r" "$r" >"$d/certs.d/$r/hosts.toml"
  done
  cat >"$d/containerd.toml" <<EOF
version = 3
root = "$d/containerd/root"
state = "$d/containerd/state"
[grpc]
  address = "$(socket "$n")"
[plugins.'io.containerd.internal.v1.opt']
  path = "$d/containerd/opt"
[plugins.'io.containerd.grpc.v1.cri']
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = "$PAUSE_IMAGE"
  [plugins.'io.containerd.cri.v1.images'.registry]
    config_path = "$d/certs.d"
[plugins.'io.containerd.cri.v1.runtime']
  restrict_oom_score_adj = true
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ["/usr/lib/cni"]
    conf_dir = "$d/cni"
  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = "runc"
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        SystemdCgroup = false
EOF
}

# containerd1_config N DIR: Debian's containerd's configuration (version 2)
# for node N.
containerd1_config() {
  local n=$1 d=$2
  cat >"$d/containerd.toml" <<EOF
version = 2
root = "$d/containerd/root"
state = "$d/containerd/state"
[grpc]
  address = "$(socket "$n")"
[plugins."io.containerd.internal.v1.opt"]
  path = "$d/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."$REGISTRY"]
    endpoint = ["http://$REGISTRY"]
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."$AUTH_REGISTRY"]
    endpoint = ["http://$AUTH_REGISTRY"]
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."$REMOTE_REGISTRY"]
    endpoint = ["http://$REMOTE_REGISTRY"]
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$d/cni"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
EOF
}

start_node() {
  local n=$1 d=$DIR/nodes/node$1 token
  mkdir -p "$d/cni" "$d/containerd" "$d/kubelet" "$(dirname "$(socket "$n")")"
  if [ -s "$d/imagefs-size" ] && ! mountpoint -q "$d/containerd"; then
    # A small image filesystem of the node's own; unmount_under takes it
    # down with the node (the loop device goes with its last mount).
    truncate -s "$(cat "$d/imagefs-size")" "$d/imagefs.img"
    mkfs.ext4 -q -F -m 0 "$d/imagefs.img"
    mount -o loop "$d/imagefs.img" "$d/containerd"
  fi
  if containerd2 "$n"; then
    containerd2_config "$n" "$d"
  else
    containerd1_config "$n" "$d"
  fi
  cat >"$d/cni/10-kip.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "kip",
  "plugins": [
    {
      "type": "bridge", "bridge": "$BRIDGE", "isGateway": true, "ipMasq": false,
      "ipam": {
        "type": "host-local", "dataDir": "$d/ipam",
        "ranges": [[{"subnet": "$BRIDGE_CIDR", "rangeStart": "10.88.$n.2", "rangeEnd": "10.88.$n.254", "gateway": "$NODE_IP"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "loopback"}
  ]
}
EOF
  start_containerd "$n"

  token=$(grep ",system:node:node$n," "$DIR/pki/tokens.csv" | cut -d, -f1)
  kubeconfig "$d/kubeconfig" "system:node:node$n" "$token"
  start_kubelet "$n"
}

# start_containerd N: starts node N's containerd with the configuration
# start_node wrote; containers started before keep running (their shims do).
start_containerd() {
  local n=$1 d=$DIR/nodes/node$1
  if containerd2 "$n"; then
    # Its own shim first on the PATH: containerd finds the shim there.
    local c2="$KUBE_BIN/containerd-$CONTAINERD_VERSION"
    start_ns "containerd-node$n" env PATH="$c2:$PATH" "$c2/containerd" --config "$d/containerd.toml"
  else
    start_ns "containerd-node$n" containerd --config "$d/containerd.toml"
  fi
  wait_for 30 "containerd of node$n" test -S "$(socket "$n")"
}

# outage WHAT SECONDS: stops one part of the cluster (etcd, kube-apiserver,
# kubelet-nodeN or containerd-nodeN, whose containers keep running, or a
# registry), waits, and starts it again, for fault-injection tests.
outage() {
  local what=$1 secs=$2 n
  alive "$what" || die "$what does not run"
  stop "$what"
  log "$what stopped for ${secs}s"
  sleep "$secs"
  case $what in
    etcd) start_etcd ;;
    kube-apiserver) start_apiserver ;;
    kubelet-node*)
      n=${what#kubelet-node}
      start_kubelet "$n"
      kubelet_started "$n"
      ;;
    containerd-node*) start_containerd "${what#containerd-node}" ;;
    registry | auth-registry | remote-registry) start_registry "$what" ;;
    *) die "outage: $what: etcd, kube-apiserver, kubelet-nodeN, containerd-nodeN, registry, auth-registry or remote-registry" ;;
  esac
  log "$what started again"
}

# reshape_registry [LATENCY MB_PER_SECOND]: the remote-like registry again,
# shaped otherwise (a slow registry, for fault-injection tests), or as usual.
reshape_registry() {
  local REMOTE_LATENCY=${1:-$REMOTE_LATENCY} REMOTE_MB_PER_SECOND=${2:-$REMOTE_MB_PER_SECOND}
  stop remote-registry
  start_registry remote-registry
  log "remote-like registry: ${REMOTE_LATENCY} first byte, ${REMOTE_MB_PER_SECOND} MiB/s per stream"
}

# start_kubelet N [gc]: writes node N's kubelet configuration and starts
# it. With gc, the node is under disk pressure from the start: the kubelet
# frees every unused, unpinned image within seconds (its periodic image GC
# runs only every 5 minutes), and evicts pods too. Restart it without gc
# after the test.
start_kubelet() {
  local n=$1 gc=${2:-} d=$DIR/nodes/node$1
  cat >"$d/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
port: $((10250 + 10 * (n - 1)))
healthzBindAddress: 127.0.0.1
healthzPort: $((10248 + 10 * (n - 1)))
readOnlyPort: 0
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $DIR/pki/ca.crt}
authorization: {mode: Webhook}
cgroupDriver: cgroupfs
cgroupsPerQOS: false
enforceNodeAllocatable: []
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://$(socket "$n")
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
clusterDomain: cluster.local
clusterDNS: [$DNS_IP]
resolvConf: $DIR/resolv.conf
# Each kubelet keeps its own pod logs: in a shared /var/log/pods, each one
# removes the others' as logs of pods it does not know.
podLogsDir: $d/pod-logs
EOF
  if [ -s "$d/imagefs-size" ]; then
    # The image GC acts below the eviction threshold (15% free, the
    # kubelet's default), so that it collects without disk pressure.
    local gc_high=${NODE_IMAGE_GC:-70,60}
    [ -s "$d/image-gc" ] && gc_high=$(cat "$d/image-gc")
    sed -i 's/^evictionHard: .*/evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "15%", nodefs.inodesFree: "1%"}/' "$d/kubelet.yaml"
    printf 'imageGCHighThresholdPercent: %s\nimageGCLowThresholdPercent: %s\n' "${gc_high%,*}" "${gc_high#*,}" >>"$d/kubelet.yaml"
  fi
  if [ -s "$d/imagefs-size" ] || [ "$gc" = gc ]; then
    # Collected as soon as unused (1 s after the kubelet first saw it), and
    # out of disk pressure 1 s after it ends: a fault test presses the image
    # filesystem for a few seconds to make the kubelet collect, and new
    # pods are admitted again right after.
    printf 'imageMinimumGCAge: 1s\nevictionPressureTransitionPeriod: 1s\n' >>"$d/kubelet.yaml"
  fi
  if [ "$gc" = gc ]; then
    # Disk pressure at once: within its 10 s housekeeping the eviction
    # manager frees the node's unused images (the image GC manager's
    # DeleteUnusedImages, which skips pinned ones), then evicts pods.
    sed -i 's/^evictionHard: .*/evictionHard: {memory.available: "100Mi", nodefs.available: "99%", imagefs.available: "99%", nodefs.inodesFree: "1%"}/' "$d/kubelet.yaml"
  fi
  mkdir -p "$d/pod-logs"
  # A node that add-node registered with taints keeps the flag on restart.
  local taints=()
  if [ -s "$d/register-with-taints" ]; then taints=(--register-with-taints "$(cat "$d/register-with-taints")"); fi
  start_ns "kubelet-node$n" "$KUBE_BIN/kubelet" --config "$d/kubelet.yaml" --kubeconfig "$d/kubeconfig" \
    --root-dir "$d/kubelet" --cert-dir "$d/kubelet/pki" --hostname-override "node$n" --node-ip "$NODE_IP" "${taints[@]}"
}

# unmount_under DIR: the mounts left under DIR (overlay snapshots, pod
# volumes), deepest first.
unmount_under() {
  awk -v d="$1" 'index($2, d"/") == 1 {print $2}' /proc/mounts | sort -r | while read -r m; do
    umount -l "$m" 2>/dev/null || true
  done
}

# stop_node N: stops node N's kubelet, its pods' containers and its
# containerd, with the shims it started.
stop_node() {
  local n=$1 pid
  stop "kubelet-node$n"
  if alive "containerd-node$n" && [ -x "$ROOT/bin/kip-dev" ]; then
    timeout 120 "$ROOT/bin/kip-dev" cri teardown --socket "$(socket "$n")" >/dev/null 2>&1 || true
  fi
  stop "containerd-node$n"
  # The shims (and their containers) of our containerd, found by its socket.
  for pid in $(pgrep -f "containerd-shim-runc-v2 .*-address $(socket "$n")" || true); do
    kill -KILL "$pid" 2>/dev/null || true
  done
}

# node_imagefs N: with NODE_IMAGEFS_SIZE, node N's image store becomes a
# filesystem of that size of its own, collected above NODE_IMAGE_GC.
node_imagefs() {
  local n=$1
  [ -n "${NODE_IMAGEFS_SIZE:-}" ] || return 0
  command -v mkfs.ext4 >/dev/null || die "NODE_IMAGEFS_SIZE needs mkfs.ext4 (e2fsprogs)"
  mkdir -p "$DIR/nodes/node$n"
  echo "$NODE_IMAGEFS_SIZE" >"$DIR/nodes/node$n/imagefs-size"
  echo "${NODE_IMAGE_GC:-70,60}" >"$DIR/nodes/node$n/image-gc"
}

# add_node [TAINT]: starts the next node, registered with TAINT.
add_node() {
  local taint=${1:-} n=1
  alive kube-apiserver && kubectl get --raw /readyz >/dev/null 2>&1 || die "no cluster runs in $DIR: hack/cluster.sh up first"
  while [ -d "$DIR/nodes/node$n" ]; do n=$((n + 1)); done
  grep -q ",system:node:node$n," "$DIR/pki/tokens.csv" ||
    die "no token for node$n: the cluster was brought up with fewer spare nodes; bring it up again (down, then up)"
  mkdir -p "$DIR/nodes/node$n"
  if [ -n "$taint" ]; then echo "$taint" >"$DIR/nodes/node$n/register-with-taints"; fi
  node_imagefs "$n"
  if [ "${NODE_CONTAINERD2:-}" = 1 ]; then
    CONTAINERD_VERSION=$CONTAINERD_VERSION "$ROOT/hack/kube-binaries.sh" containerd2 >/dev/null
    touch "$DIR/nodes/node$n/containerd2"
  fi
  start_node "$n"
  wait_for 120 "node$n registered" kubectl get "node/node$n"
  log "node$n added${taint:+, registered with the taint $taint}"
  echo "node$n"
}

# remove_node N: stops node N's kubelet and runtime, with its pods, and
# removes its files and its Node object.
remove_node() {
  local n=$1 d=$DIR/nodes/node$1
  [ -d "$d" ] || die "no node$n in $DIR"
  stop_node "$n"
  unmount_under "$d"
  kubectl delete "node/node$n" --ignore-not-found --wait=false >/dev/null
  rm -rf "$d" "$(dirname "$(socket "$n")")"
  log "node$n removed"
}

write_env() {
  cat >"$DIR/env" <<EOF
# Source this file to use the local cluster.
export KUBECONFIG=$DIR/kubeconfig
export KIP_KUBE_BIN=$KUBE_BIN
export KIP_REGISTRY=$REGISTRY
export KIP_REGISTRY_PUSH=$REGISTRY_PUSH
export KIP_AUTH_REGISTRY=$AUTH_REGISTRY
export KIP_AUTH_REGISTRY_PUSH=$AUTH_REGISTRY_PUSH
export KIP_AUTH_REGISTRY_USER=$REGISTRY_USER
export KIP_REMOTE_REGISTRY=$REMOTE_REGISTRY
export KIP_REMOTE_REGISTRY_PUSH=$REMOTE_REGISTRY_PUSH
export KIP_AUTH_REGISTRY_PASSWORD_FILE=$DIR/pki/registry-password
export KIP_NODES=$NODES
export KIP_CLUSTER_DIR=$DIR
export KIP_NETNS_PATH=$NETNS_PATH
export KIP_CONTAINERD2_NODES="$(for n in $(seq "$NODES"); do containerd2 "$n" && printf 'node%s ' "$n"; done)"
EOF
}

up() {
  [ "$(id -u)" = 0 ] || die "must run as root (it creates a network namespace and runs kubelets)"
  install_packages
  build_binaries
  if healthy; then
    log "already up with $NODES nodes"
    print_usage
    return
  fi
  down_quiet
  mkdir -p "$DIR/pids" "$DIR/logs" "$DIR/registry"
  local t0=$SECONDS
  make_pki
  kubeconfig "$DIR/kubeconfig" kip-admin "$ADMIN_TOKEN" "$API_HOST"
  setup_network
  start_registries
  start_control_plane
  for n in $(seq "$NODES"); do
    node_imagefs "$n"
    start_node "$n"
  done
  wait_for 180 "$NODES nodes registered" bash -c "[ \$('$KUBE_BIN/kubectl' --kubeconfig '$DIR/kubeconfig' get nodes --no-headers 2>/dev/null | wc -l) -ge $NODES ]"
  kubectl wait --for=condition=Ready node --all --timeout=180s >/dev/null || die "nodes not Ready (logs in $DIR/logs)"
  wait_for 60 "default service account" kubectl get serviceaccount default -n default
  write_env
  log "up with $NODES nodes in $((SECONDS - t0))s"
  print_usage
}

print_usage() {
  cat <<EOF
Local cluster: $NODES nodes in network namespace $NETNS; API server https://$API_HOST from this host
  kubectl:   $KUBE_BIN/kubectl --kubeconfig $DIR/kubeconfig get nodes
  env:       source $DIR/env
  registries: $REGISTRY (open), $AUTH_REGISTRY (user $REGISTRY_USER, password in $DIR/pki/registry-password),
             $REMOTE_REGISTRY (open, like a remote one: $REMOTE_LATENCY first byte, $REMOTE_MB_PER_SECOND MiB/s per stream),
             as nodes and pods name them; push to them from this host at $REGISTRY_PUSH, $AUTH_REGISTRY_PUSH and $REMOTE_REGISTRY_PUSH
  inside:    nsenter --net=$NETNS_PATH COMMAND    (or ip netns exec $NETNS COMMAND)
  tear down: make cluster-down
EOF
}

down_quiet() {
  [ -d "$DIR" ] || return 0
  KUBE_BIN=${KUBE_BIN:-$(cat "$DIR/kube-bin" 2>/dev/null || echo /nonexistent)}
  local d n
  for d in "$DIR"/nodes/node*; do
    [ -d "$d" ] || continue
    stop_node "${d##*/node}"
  done
  for n in coredns kube-scheduler kube-controller-manager kube-apiserver etcd remote-registry auth-registry registry forward; do stop "$n"; done
  unmount_under "$DIR"
  # The namespace takes the bridge, the pods' veths and the API address with it.
  if [ -f "$DIR/netns-created" ]; then ip netns delete "$NETNS" 2>/dev/null || true; fi
  rm -rf "$DIR"
}

down() {
  [ "$(id -u)" = 0 ] || die "must run as root"
  down_quiet
  log "down; $DIR removed"
}

# kubelet_started N: waits until node N's new kubelet runs its eviction
# manager (started after its image manager first listed the node's images,
# which the image GC needs to know before it may collect one) and the node
# is Ready.
kubelet_started() {
  local n=$1
  wait_for 120 "node$n's kubelet running its eviction manager" grep -q "Eviction manager: starting control loop" "$DIR/logs/kubelet-node$n.log"
  wait_for 120 "node$n Ready again" kubectl wait --for=condition=Ready "node/node$n" --timeout=5s
}

restart_kubelet() {
  local n=$1 gc=${2:-}
  [ -d "$DIR/nodes/node$n" ] || die "no node$n in $DIR"
  stop "kubelet-node$n"
  start_kubelet "$n" "$gc"
  kubelet_started "$n"
  log "node$n's kubelet restarted${gc:+ with an eager image garbage collection}"
}

status() {
  local f
  for f in "$DIR"/pids/*.pid; do
    [ -f "$f" ] || continue
    n=$(basename "$f" .pid)
    if alive "$n"; then echo "running  $n (pid $(cat "$f"))"; else echo "stopped  $n"; fi
  done
  [ -f "$DIR/kubeconfig" ] && kubectl get nodes -o wide 2>/dev/null || true
}

KUBE_BIN=${KIP_KUBE_BIN:-$(cat "$DIR/kube-bin" 2>/dev/null || echo /nonexistent)}
case "${1:-}" in
  up) up; echo "$KUBE_BIN" >"$DIR/kube-bin" ;;
  down) down ;;
  status) status ;;
  restart-kubelet) restart_kubelet "${2:?node number}" "${3:-}" ;;
  add-node) add_node "${2:-}" ;;
  remove-node) remove_node "${2:?node number}" ;;
  outage) outage "${2:?etcd, kube-apiserver, kubelet-nodeN or containerd-nodeN}" "${3:?seconds}" ;;
  reshape-registry) reshape_registry "${2:-}" "${3:-}" ;;
  *) echo "usage: $0 up [NODES] | down | status | restart-kubelet N [gc] | add-node [TAINT] | remove-node N | outage WHAT SECONDS | reshape-registry [LATENCY MB_PER_SECOND]" >&2; exit 2 ;;
esac
