#!/usr/bin/env bash
# make demo: a 3-node local cluster from source, workspace-like images in a
# local registry, the puller installed with the OpenShift templates as the
# documented procedure does it, every image cached on every node (shown per
# node, asked through each node's CRI socket), then a workspace pod started
# from a cached image and one from an image that was not cached.
#
# Environment: NODES (3), DEMO_IMAGES (5), DEMO_SIZE_MB (100), DEMO_LAYERS (3).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
NODES=${NODES:-3}
COUNT=${DEMO_IMAGES:-5}
SIZE_MB=${DEMO_SIZE_MB:-100}
LAYERS=${DEMO_LAYERS:-3}
NS=k8s-image-puller

step() { printf '\n== %s\n' "$*"; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN {printf "%.1f", b - a}'; }

step "Local cluster with $NODES nodes"
hack/cluster.sh up "$NODES"
# shellcheck disable=SC1091
source "${KIP_CLUSTER_DIR:-/tmp/kip-cluster}/env"
kubectl() { "$KIP_KUBE_BIN/kubectl" "$@"; }
DEV=bin/kip-dev

step "Pushing $COUNT workspace-like images of ${SIZE_MB} MB to $KIP_REGISTRY, and the puller image"
IMAGES=$($DEV push-samples --registry "$KIP_REGISTRY_PUSH" --name-registry "$KIP_REGISTRY" --repo ws/workspace --tag "demo" \
  --count "$COUNT" --size-mb "$SIZE_MB" --layers "$LAYERS" --kip-sleep bin/kip-sleep)
COLD=$($DEV push-samples --registry "$KIP_REGISTRY_PUSH" --name-registry "$KIP_REGISTRY" --repo ws/uncached --tag "demo" \
  --count 1 --size-mb "$SIZE_MB" --layers "$LAYERS" --kip-sleep bin/kip-sleep)
COLD_IMAGE=${COLD#*=}
$DEV push-image --registry "$KIP_REGISTRY_PUSH" --image kip:dev --platform amd64=bin >/dev/null
echo "IMAGES=$IMAGES"

step "Installing the puller with the OpenShift templates (restricted Pod Security)"
kubectl get namespace "$NS" >/dev/null 2>&1 || kubectl create namespace "$NS"
kubectl label namespace "$NS" --overwrite pod-security.kubernetes.io/enforce=restricted >/dev/null
start=$(now)
$DEV process -f deploy/openshift/serviceaccount.yaml -p NAMESPACE="$NS" | kubectl apply -n "$NS" -f -
$DEV process -f deploy/openshift/configmap.yaml -p IMAGES="$IMAGES" -p NAMESPACE="$NS" | kubectl apply -n "$NS" -f -
$DEV process -f deploy/openshift/app.yaml -p IMAGE="$KIP_REGISTRY/kip" -p IMAGE_TAG=dev | kubectl apply -n "$NS" -f -

step "Waiting until every node holds every image"
$DEV cache-table --cluster-dir "$KIP_CLUSTER_DIR" --images "$IMAGES" --wait 10m
warm=$(since "$start")
kubectl rollout status -n "$NS" daemonset/kubernetes-image-puller --timeout=5m >/dev/null
kubectl get deployment,daemonset,pods -n "$NS" -o wide
echo "From the first 'oc apply' to every image on every node: ${warm}s"

step "Workspace pods: a cached image against one that was not cached (node1)"
cached_image=$(echo "$IMAGES" | cut -d';' -f1 | cut -d= -f2)
cached_s=$($DEV workspace-start --node node1 --name workspace-cached --image "$cached_image")
cold_s=$($DEV workspace-start --node node1 --name workspace-uncached --image "$COLD_IMAGE")
printf '%-28s %-8s %s\n' "WORKSPACE POD" "START" "IMAGE" \
  "workspace-cached" "${cached_s}s" "$cached_image" \
  "workspace-uncached" "${cold_s}s" "$COLD_IMAGE"

step "What the puller reports (kip status)"
bin/kip status --kubeconfig "$KUBECONFIG" -n "$NS" --wait --timeout 2m

cat <<EOF

== Look around
  source $KIP_CLUSTER_DIR/env          (sets KUBECONFIG; kubectl is $KIP_KUBE_BIN/kubectl)
  $KIP_KUBE_BIN/kubectl --kubeconfig $KUBECONFIG get deployment,daemonset,pods -n $NS
  $KIP_KUBE_BIN/kubectl --kubeconfig $KUBECONFIG logs -n $NS deployment/kubernetes-image-puller
  $KIP_KUBE_BIN/kubectl --kubeconfig $KUBECONFIG edit configmap -n $NS k8s-image-puller   (applies live)
  bin/kip status --kubeconfig $KUBECONFIG -n $NS [--watch | --wait | -o json]
  bin/kip-dev cache-table --images '$IMAGES'

== Try the operator path (KubernetesImagePuller resources, CheCluster switch)
  make deploy-operator                 (CRD, RBAC and the operator, from deploy/operator)
  $KIP_KUBE_BIN/kubectl --kubeconfig $KUBECONFIG create namespace workspaces
  $KIP_KUBE_BIN/kubectl --kubeconfig $KUBECONFIG apply -n workspaces -f - <<'KIP'
apiVersion: che.eclipse.org/v1alpha1
kind: KubernetesImagePuller
metadata:
  name: image-puller
spec:
  images: "$IMAGES"
KIP
  $KIP_KUBE_BIN/kubectl --kubeconfig $KUBECONFIG get kubernetesimagepullers -n workspaces -w
Tear down: make cluster-down
EOF
