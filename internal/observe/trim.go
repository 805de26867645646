package observe

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kip-image-puller/kip/internal/nodewarm"
	"github.com/kip-image-puller/kip/internal/status"
)

// The controllers cache every puller pod and every node. A puller pod of
// 100 images carries 100 containers and their statuses, tolerations, a
// per-node affinity and managedFields; a node carries its image list,
// addresses, capacity and annotations. The status needs a small part of
// each: TrimPod and TrimNode, set as cache transforms, keep only that, so
// the cache grows with what the report reads and not with what the API
// server holds. Compute gives the same report on the trimmed objects, but
// for the image digests (only `kip status`, which reads uncached, shows
// them).

// TrimPod keeps what the status reads of a puller pod, in the compact
// form status.CompactPod makes.
func TrimPod(obj any) (any, error) {
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil
	}
	return status.CompactPod(p), nil
}

// TrimNode keeps what the status, node selection and the node warmer read
// of a node: its identity and labels, whether it is cordoned, its taints,
// its Ready condition and kip's ImagesCached.
func TrimNode(obj any) (any, error) {
	n, ok := obj.(*corev1.Node)
	if !ok {
		return obj, nil
	}
	out := &corev1.Node{
		TypeMeta:   n.TypeMeta,
		ObjectMeta: trimMeta(n.ObjectMeta),
		Spec:       corev1.NodeSpec{Unschedulable: n.Spec.Unschedulable, Taints: n.Spec.Taints},
		// The runtime chooses agent mode's socket (privilege.SocketFor).
		Status: corev1.NodeStatus{NodeInfo: corev1.NodeSystemInfo{ContainerRuntimeVersion: n.Status.NodeInfo.ContainerRuntimeVersion}},
	}
	for _, c := range n.Status.Conditions {
		switch c.Type {
		case corev1.NodeReady:
			out.Status.Conditions = append(out.Status.Conditions, corev1.NodeCondition{Type: c.Type, Status: c.Status, Reason: c.Reason, LastTransitionTime: c.LastTransitionTime})
		case nodewarm.ConditionType:
			out.Status.Conditions = append(out.Status.Conditions, c) // the node warmer compares all of it
		}
	}
	return out, nil
}

// trimMeta keeps identity, labels and lifecycle; not annotations or
// managedFields.
func trimMeta(m metav1.ObjectMeta) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Name: m.Name, Namespace: m.Namespace, UID: m.UID, ResourceVersion: m.ResourceVersion,
		Generation: m.Generation, CreationTimestamp: m.CreationTimestamp, DeletionTimestamp: m.DeletionTimestamp,
		Labels: m.Labels,
	}
}
