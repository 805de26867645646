package checluster

import (
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/event"
)

func TestRegistryURLsChanged(t *testing.T) {
	cc := func(status map[string]any) *unstructured.Unstructured {
		return &unstructured.Unstructured{Object: map[string]any{"status": status}}
	}
	base := map[string]any{"pluginRegistryURL": "https://che/plugin-registry/v3", "chePhase": "Active"}
	cases := []struct {
		name string
		cur  map[string]any
		want bool
	}{
		{"phase only", map[string]any{"pluginRegistryURL": "https://che/plugin-registry/v3", "chePhase": "Inactive"}, false},
		{"plugin registry moved", map[string]any{"pluginRegistryURL": "https://other/plugin-registry/v3"}, true},
		{"devfile registry appears", map[string]any{"pluginRegistryURL": "https://che/plugin-registry/v3", "devfileRegistryURL": "https://che/devfile-registry"}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := registryURLsChanged.Update(event.UpdateEvent{ObjectOld: cc(base), ObjectNew: cc(tc.cur)}); got != tc.want {
				t.Errorf("passes = %v, want %v", got, tc.want)
			}
		})
	}
}
