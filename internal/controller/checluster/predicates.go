package checluster

import (
	"slices"

	"github.com/kip-image-puller/kip/internal/operator"
	"github.com/kip-image-puller/kip/internal/predicates"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// registryURLsChanged lets through the CheCluster updates that move the
// registry URLs its default images come from.
var registryURLsChanged = predicates.UpdateChanged(func(old, cur *unstructured.Unstructured) bool {
	return !slices.Equal(operator.DefaultImageLists(old), operator.DefaultImageLists(cur))
})
