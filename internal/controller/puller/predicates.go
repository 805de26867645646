package puller

import (
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
)

// daemonSetChanged lets through the DaemonSet updates that may need a
// repair: anything but the status the DaemonSet controller keeps writing as
// pods come and go on the nodes. Creations and deletions always pass.
var daemonSetChanged = predicate.Funcs{
	UpdateFunc: func(e event.UpdateEvent) bool {
		old, okOld := e.ObjectOld.(*appsv1.DaemonSet)
		cur, okNew := e.ObjectNew.(*appsv1.DaemonSet)
		if !okOld || !okNew {
			return true
		}
		return !equality.Semantic.DeepEqual(old.Spec, cur.Spec) ||
			!equality.Semantic.DeepEqual(old.Labels, cur.Labels) ||
			!equality.Semantic.DeepEqual(old.Annotations, cur.Annotations) ||
			!equality.Semantic.DeepEqual(old.OwnerReferences, cur.OwnerReferences) ||
			!equality.Semantic.DeepEqual(old.DeletionTimestamp, cur.DeletionTimestamp)
	},
}
