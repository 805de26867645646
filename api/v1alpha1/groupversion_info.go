// Package v1alpha1 is the KubernetesImagePuller API (che.eclipse.org/v1alpha1),
// with the same field names and string types as the existing operator's, so
// existing resources apply unchanged.
// +kubebuilder:object:generate=true
// +groupName=che.eclipse.org
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the API's group and version.
	GroupVersion = schema.GroupVersion{Group: "che.eclipse.org", Version: "v1alpha1"}
	// SchemeBuilder adds the API's types to a scheme (with apimachinery
	// only, so that the API package stays light to import).
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)
	// AddToScheme adds the API's types to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion, &KubernetesImagePuller{}, &KubernetesImagePullerList{})
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
