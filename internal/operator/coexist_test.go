package operator

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/kip-image-puller/kip/api/v1alpha1"
	"github.com/kip-image-puller/kip/internal/labels"
)

func TestManagedElsewhere(t *testing.T) {
	cheOwner := metav1.OwnerReference{APIVersion: "org.eclipse.che/v2", Kind: "CheCluster", Name: "eclipse-che", UID: "cc", Controller: ptr.To(true)}
	entry := func(manager, subresource, fields string) metav1.ManagedFieldsEntry {
		return metav1.ManagedFieldsEntry{Manager: manager, Subresource: subresource, FieldsType: "FieldsV1", FieldsV1: metav1.NewFieldsV1(fields)}
	}
	kip := func(label string, owner metav1.OwnerReference, managed ...metav1.ManagedFieldsEntry) *v1alpha1.KubernetesImagePuller {
		k := &v1alpha1.KubernetesImagePuller{ObjectMeta: metav1.ObjectMeta{OwnerReferences: []metav1.OwnerReference{owner}, ManagedFields: managed}}
		if label != "" {
			k.Labels = map[string]string{labels.ManagedBy: label}
		}
		return k
	}
	ours := entry(labels.OperatorFieldOwner, "", `{"f:metadata":{"f:labels":{}},"f:spec":{"f:images":{}}}`)
	tests := []struct {
		name      string
		kip       *v1alpha1.KubernetesImagePuller
		elsewhere bool
	}{
		{"made by the bridge", kip(labels.ManagedByOperator, cheOwner, ours), false},
		{"made by an earlier version of the bridge, no label", kip("", cheOwner, ours), false},
		{"the puller controller writes its status", kip(labels.ManagedByOperator, cheOwner, ours, entry("kip-operator-status", "status", `{"f:status":{}}`)), false},
		{"che-operator's label", kip("che.eclipse.org", cheOwner, ours), true},
		{"che-operator's full Update", kip("", cheOwner, ours, entry("che-operator", "", `{"f:metadata":{"f:labels":{}},"f:spec":{"f:images":{}}}`)), true},
		{"a user's kubectl edit of the spec", kip(labels.ManagedByOperator, cheOwner, ours, entry("kubectl-edit", "", `{"f:spec":{"f:images":{}}}`)), true},
		{"a controller that is not a CheCluster", kip(labels.ManagedByOperator, metav1.OwnerReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "x", Controller: ptr.To(true)}, ours), true},
		{"a CheCluster of another group", kip(labels.ManagedByOperator, metav1.OwnerReference{APIVersion: "example.com/v1", Kind: "CheCluster", Name: "x", Controller: ptr.To(true)}, ours), true},
	}
	for _, tt := range tests {
		if got := ManagedElsewhere(tt.kip); (got != "") != tt.elsewhere {
			t.Errorf("%s: ManagedElsewhere = %q, want elsewhere=%v", tt.name, got, tt.elsewhere)
		}
	}
}

func TestCheOperatorReconciles(t *testing.T) {
	cc := NewCheCluster()
	if got := CheOperatorReconciles(cc); got != "" {
		t.Errorf("a CheCluster without status: %q", got)
	}
	cc.Object["status"] = map[string]any{"chePhase": "Active"}
	if got := CheOperatorReconciles(cc); got == "" {
		t.Error("a CheCluster che-operator reconciles was not recognised")
	}
}
