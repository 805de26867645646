package observe

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"github.com/kip-image-puller/kip/internal/status"
)

// NodeChanged lets through the node updates that can change a report:
// readiness, cordoning, labels and taints, not the heartbeats. Every
// controller that reports on the nodes watches them through it.
var NodeChanged = predicate.Funcs{
	UpdateFunc: func(e event.UpdateEvent) bool {
		old, okOld := e.ObjectOld.(*corev1.Node)
		cur, okNew := e.ObjectNew.(*corev1.Node)
		if !okOld || !okNew {
			return true
		}
		return status.NodeReady(old) != status.NodeReady(cur) || old.Spec.Unschedulable != cur.Spec.Unschedulable ||
			!equality.Semantic.DeepEqual(old.Labels, cur.Labels) || !equality.Semantic.DeepEqual(old.Spec.Taints, cur.Spec.Taints)
	},
}
