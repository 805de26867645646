package operator

import (
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"

	"github.com/kip-image-puller/kip/api/v1alpha1"
	"github.com/kip-image-puller/kip/internal/labels"
)

// CheClusterKind is the workspace platform's resource (compatibility.md §5).
var CheClusterKind = schema.GroupVersionKind{Group: "org.eclipse.che", Version: "v2", Kind: "CheCluster"}

// The app.kubernetes.io/component and part-of labels of a
// KubernetesImagePuller made for a CheCluster.
const (
	ComponentValue = "kubernetes-image-puller"
	PartOfValue    = "che.eclipse.org"
)

// Condition type the CheCluster switch sets on the resource it makes when the
// platform's default images are wanted.
const (
	TypeDefaultImages         = "DefaultImagesResolved"
	ReasonDefaultImagesRead   = "RegistriesRead"
	ReasonRegistryUnreachable = "RegistryUnreachable"
)

// NewCheCluster is an empty CheCluster to read into: the operator does not
// link che-operator's types, it reads the few fields it needs.
func NewCheCluster() *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(CheClusterKind)
	return u
}

// CheClusterPuller is what a CheCluster asks of the image puller.
type CheClusterPuller struct {
	Enabled bool
	Spec    v1alpha1.KubernetesImagePullerSpec
}

// FromCheCluster reads spec.components.imagePuller. A spec field of the
// wrong shape is an error naming it.
func FromCheCluster(cc *unstructured.Unstructured) (CheClusterPuller, error) {
	var p CheClusterPuller
	enabled, _, err := unstructured.NestedBool(cc.Object, "spec", "components", "imagePuller", "enable")
	if err != nil {
		return p, fmt.Errorf("spec.components.imagePuller.enable: %w", err)
	}
	p.Enabled = enabled
	spec, found, err := unstructured.NestedMap(cc.Object, "spec", "components", "imagePuller", "spec")
	if err != nil {
		return p, fmt.Errorf("spec.components.imagePuller.spec: %w", err)
	}
	if found {
		if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(spec, &p.Spec, true); err != nil {
			return p, fmt.Errorf("spec.components.imagePuller.spec: %w", err)
		}
	}
	return p, nil
}

// PullerName is the KubernetesImagePuller a CheCluster gets.
func PullerName(cheCluster string) string {
	return cheCluster + "-image-puller"
}

// DashboardAPI is the in-cluster address of the CheCluster's dashboard API,
// where current che-operator releases read the default images:
// http://<flavor>-dashboard.<namespace>.svc:8080/dashboard/api, the flavor
// being devspaces for a CheCluster named devspaces..., else che.
func DashboardAPI(cc *unstructured.Unstructured) string {
	flavor := "che"
	if strings.HasPrefix(cc.GetName(), "devspaces") {
		flavor = "devspaces"
	}
	return fmt.Sprintf("http://%s-dashboard.%s.svc:8080/dashboard/api", flavor, cc.GetNamespace())
}

// DefaultImageLists are the platform's external_images.txt URLs, from the
// registry URLs in the CheCluster's status: the plugin registry's
// .../plugin-registry/v3/external_images.txt and the devfile registry's
// .../devfile-registry/devfiles/external_images.txt.
func DefaultImageLists(cc *unstructured.Unstructured) []string {
	var urls []string
	if u, _, _ := unstructured.NestedString(cc.Object, "status", "pluginRegistryURL"); strings.TrimSpace(u) != "" {
		u = strings.TrimRight(strings.TrimSpace(u), "/")
		if !strings.HasSuffix(u, "/v3") {
			u += "/v3"
		}
		urls = append(urls, u+"/external_images.txt")
	}
	if u, _, _ := unstructured.NestedString(cc.Object, "status", "devfileRegistryURL"); strings.TrimSpace(u) != "" {
		urls = append(urls, strings.TrimRight(strings.TrimSpace(u), "/")+"/devfiles/external_images.txt")
	}
	return urls
}

// PullerFor is the KubernetesImagePuller a CheCluster asks for, owned by it
// and labelled as the platform does, with spec as its spec.
func PullerFor(cc *unstructured.Unstructured, spec v1alpha1.KubernetesImagePullerSpec) *v1alpha1.KubernetesImagePuller {
	return &v1alpha1.KubernetesImagePuller{
		TypeMeta: metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: "KubernetesImagePuller"},
		ObjectMeta: metav1.ObjectMeta{
			Name:      PullerName(cc.GetName()),
			Namespace: cc.GetNamespace(),
			Labels:    map[string]string{labels.Component: ComponentValue, labels.PartOf: PartOfValue, labels.ManagedBy: labels.ManagedByOperator},
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: CheClusterKind.GroupVersion().String(), Kind: CheClusterKind.Kind,
				Name: cc.GetName(), UID: cc.GetUID(), Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true),
			}},
		},
		Spec: spec,
	}
}
