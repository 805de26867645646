package puller

import (
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/api/equality"

	"github.com/kip-image-puller/kip/internal/predicates"
)

// daemonSetChanged lets through the DaemonSet updates that may need a
// repair: anything but the status the DaemonSet controller keeps writing as
// pods come and go on the nodes. Creations and deletions always pass.
var daemonSetChanged = predicates.UpdateChanged(func(old, cur *appsv1.DaemonSet) bool {
	return !equality.Semantic.DeepEqual(old.Spec, cur.Spec) ||
		!equality.Semantic.DeepEqual(old.Labels, cur.Labels) ||
		!equality.Semantic.DeepEqual(old.Annotations, cur.Annotations) ||
		!equality.Semantic.DeepEqual(old.OwnerReferences, cur.OwnerReferences) ||
		!equality.Semantic.DeepEqual(old.DeletionTimestamp, cur.DeletionTimestamp)
})
