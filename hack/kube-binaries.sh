#!/usr/bin/env bash
# Builds Kubernetes components (and etcd) from source through the Go module
# proxy into a per-version cache outside the repository, and prints the cache
# directory. Binaries already in the cache are reused.
#
#   hack/kube-binaries.sh [component ...]    default: etcd kube-apiserver
#
# Components: etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl coredns
#             containerd2 (containerd, containerd-shim-runc-v2 and ctr of CONTAINERD_VERSION, in containerd-VERSION/)
# Environment: KUBE_VERSION (v1.37.2), ETCD_VERSION (v3.6.16), COREDNS_VERSION (v1.15.0),
# CONTAINERD_VERSION (v2.4.2), KIP_CACHE_DIR (~/.cache/kip)
set -euo pipefail

KUBE_VERSION=${KUBE_VERSION:-v1.37.2}
ETCD_VERSION=${ETCD_VERSION:-v3.6.16}
COREDNS_VERSION=${COREDNS_VERSION:-v1.15.0}
CONTAINERD_VERSION=${CONTAINERD_VERSION:-v2.4.2}
CACHE_ROOT=${KIP_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kip}
OUT="$CACHE_ROOT/kube-$KUBE_VERSION"
components=("$@")
[ ${#components[@]} -gt 0 ] || components=(etcd kube-apiserver)

log() { echo "kube-binaries: $*" >&2; }

# The staging modules of k8s.io/kubernetes are published at v0.<minor>.<patch>.
staging_version="v0.${KUBE_VERSION#v1.}"
minor=$(echo "$KUBE_VERSION" | cut -d. -f2)

mkdir -p "$OUT"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

kube_module() {
  local dir="$work/kube"
  [ -f "$dir/go.mod" ] && { echo "$dir"; return; }
  mkdir -p "$dir"
  local kgomod
  kgomod=$(cd "$work" && GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/.*"GoMod": "\(.*\)",/\1/p')
  {
    echo "module kip.local/kubebuild"
    echo
    echo "go $(sed -n 's/^go //p' "$kgomod")"
    echo
    echo "require k8s.io/kubernetes $KUBE_VERSION"
    echo
    echo "replace ("
    sed -n '/^replace (/,/^)/p' "$kgomod" | sed -n 's#^\s*\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\t\1 => \1 '"$staging_version"'#p'
    echo ")"
  } >"$dir/go.mod"
  echo 'package tools
import _ "k8s.io/kubernetes/cmd/kube-apiserver"
' >"$dir/tools.go"
  (cd "$dir" && GOFLAGS=-mod=mod go mod tidy >&2)
  echo "$dir"
}

ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$KUBE_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean"

for c in "${components[@]}"; do
  if [ "$c" = containerd2 ]; then
    # A containerd that pins (io.cri-containerd.pinned, 1.6.22+): Debian's is 1.6.20.
    dir="$OUT/containerd-$CONTAINERD_VERSION"
    if [ -x "$dir/containerd" ] && [ -x "$dir/containerd-shim-runc-v2" ]; then
      log "containerd $CONTAINERD_VERSION: cached in $dir"
      continue
    fi
    start=$(date +%s)
    mkdir -p "$dir"
    (cd "$work" && CGO_ENABLED=0 GOBIN="$dir" go install -trimpath -ldflags "-s -w" -tags "no_btrfs no_devmapper no_zfs" \
      "github.com/containerd/containerd/v2/cmd/containerd@$CONTAINERD_VERSION" \
      "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2@$CONTAINERD_VERSION" \
      "github.com/containerd/containerd/v2/cmd/ctr@$CONTAINERD_VERSION" >&2)
    log "containerd $CONTAINERD_VERSION: built in $(( $(date +%s) - start ))s"
    continue
  fi
  if [ -x "$OUT/$c" ]; then
    log "$c: cached in $OUT"
    continue
  fi
  start=$(date +%s)
  case "$c" in
    etcd)
      dir="$work/etcd"
      mkdir -p "$dir"
      printf 'module kip.local/etcdbuild\n\ngo 1.24\n' >"$dir/go.mod"
      printf 'package tools\nimport _ "go.etcd.io/etcd/server/v3"\n' >"$dir/tools.go"
      (cd "$dir" && GOFLAGS=-mod=mod go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >&2 && GOFLAGS=-mod=mod go mod tidy >&2 &&
        CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$OUT/.etcd.tmp" go.etcd.io/etcd/server/v3)
      mv "$OUT/.etcd.tmp" "$OUT/etcd"
      ;;
    coredns)
      # CoreDNS as a library, with only the plugins the local cluster's
      # Corefile uses (bind, errors, log, kubernetes): it forwards nothing anywhere.
      dir="$work/coredns"
      mkdir -p "$dir"
      printf 'module kip.local/corednsbuild\n\ngo 1.25\n' >"$dir/go.mod"
      cat >"$dir/main.go" <<'EOF'
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"
	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/log"
)

func init() { dnsserver.Directives = []string{"bind", "errors", "log", "kubernetes"} }

func main() { coremain.Run() }
EOF
      (cd "$dir" && GOFLAGS=-mod=mod go get "github.com/coredns/coredns@$COREDNS_VERSION" >&2 && GOFLAGS=-mod=mod go mod tidy >&2 &&
        CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$OUT/.coredns.tmp" .)
      mv "$OUT/.coredns.tmp" "$OUT/coredns"
      ;;
    kube-apiserver|kube-controller-manager|kube-scheduler|kubelet|kubectl)
      dir=$(kube_module)
      pkg="k8s.io/kubernetes/cmd/$c"
      (cd "$dir" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "$ldflags" -o "$OUT/.$c.tmp" "$pkg")
      mv "$OUT/.$c.tmp" "$OUT/$c"
      ;;
    *) log "unknown component $c"; exit 2 ;;
  esac
  log "$c: built in $(( $(date +%s) - start ))s"
done
echo "$OUT"
