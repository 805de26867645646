package operator

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/kip-image-puller/kip/api/v1alpha1"
	"github.com/kip-image-puller/kip/internal/labels"
)

// Bridge modes: whether the operator writes a KubernetesImagePuller for a
// CheCluster that enables the image puller (--checluster-bridge).
const (
	// BridgeAuto bridges a CheCluster unless che-operator reconciles it
	// (its status says so): che-operator then writes the resource itself.
	BridgeAuto = "auto"
	// BridgeOn bridges every CheCluster that enables the image puller.
	BridgeOn = "on"
	// BridgeOff never bridges.
	BridgeOff = "off"
)

// CheOperatorReconciles tells whether che-operator reconciles cc: it
// records the phase and version of what it deployed in the CheCluster's
// status. It returns what it saw, or "".
func CheOperatorReconciles(cc *unstructured.Unstructured) string {
	for _, field := range []string{"chePhase", "cheVersion"} {
		if v, _, _ := unstructured.NestedString(cc.Object, "status", field); strings.TrimSpace(v) != "" {
			return fmt.Sprintf("status.%s is %q", field, v)
		}
	}
	return ""
}

// ManagedElsewhere tells why a KubernetesImagePuller is managed by another
// manager than the operator, or "" when the operator manages it alone:
// a managed-by label other than ours, a controller other than a CheCluster,
// or a field manager other than ours that wrote its metadata or spec (che-
// operator's full Update, a user's kubectl edit). The CheCluster bridge
// creates, updates and deletes only what it manages alone, so it never
// rewrites what another manager keeps.
func ManagedElsewhere(kip *v1alpha1.KubernetesImagePuller) string {
	if v := kip.Labels[labels.ManagedBy]; v != "" && v != labels.ManagedByOperator {
		return fmt.Sprintf("its label %s is %q", labels.ManagedBy, v)
	}
	for _, ref := range kip.OwnerReferences {
		if ref.Controller != nil && *ref.Controller && (ref.Kind != CheClusterKind.Kind || ref.APIVersion != CheClusterKind.GroupVersion().String()) {
			return fmt.Sprintf("its controller is %s %s", ref.Kind, ref.Name)
		}
	}
	for _, m := range kip.ManagedFields {
		if m.Manager == labels.OperatorFieldOwner || m.Subresource == "status" || m.FieldsV1 == nil {
			continue
		}
		if f := m.FieldsV1.GetRawString(); strings.Contains(f, `"f:spec"`) || strings.Contains(f, `"f:metadata"`) {
			return fmt.Sprintf("field manager %q writes it", m.Manager)
		}
	}
	return ""
}
