package observe

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"

	"github.com/kip-image-puller/kip/internal/nodewarm"
	"github.com/kip-image-puller/kip/internal/predicates"

	"github.com/kip-image-puller/kip/internal/status"
)

// NodeChanged lets through the node updates that can change a report or
// the node warmer's plan: readiness, cordoning, labels, taints and kip's
// ImagesCached condition, not the kubelet's heartbeats. Every controller
// that reports on the nodes watches them through it.
var NodeChanged = predicates.UpdateChanged(func(old, cur *corev1.Node) bool {
	return status.NodeReady(old) != status.NodeReady(cur) || old.Spec.Unschedulable != cur.Spec.Unschedulable ||
		!equality.Semantic.DeepEqual(old.Labels, cur.Labels) || !equality.Semantic.DeepEqual(old.Spec.Taints, cur.Spec.Taints) ||
		!equality.Semantic.DeepEqual(nodewarm.Current(old), nodewarm.Current(cur))
})
