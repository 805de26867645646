// Package v1alpha1 is the KubernetesImagePuller API (che.eclipse.org/v1alpha1),
// with the same field names and string types as the existing operator's, so
// existing resources apply unchanged.
// +kubebuilder:object:generate=true
// +groupName=che.eclipse.org
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the API's group and version.
	GroupVersion = schema.GroupVersion{Group: "che.eclipse.org", Version: "v1alpha1"}
	// SchemeBuilder adds the API's types to a scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}
	// AddToScheme adds the API's types to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
