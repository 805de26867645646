package checluster

import (
	"slices"

	"github.com/kip-image-puller/kip/internal/operator"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
)

// registryURLsChanged lets through the CheCluster updates that move the
// registry URLs its default images come from.
var registryURLsChanged = predicate.Funcs{
	UpdateFunc: func(e event.UpdateEvent) bool {
		old, okOld := e.ObjectOld.(*unstructured.Unstructured)
		cur, okNew := e.ObjectNew.(*unstructured.Unstructured)
		if !okOld || !okNew {
			return true
		}
		return !slices.Equal(operator.DefaultImageLists(old), operator.DefaultImageLists(cur))
	},
}
