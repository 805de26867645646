package operator

import (
	"reflect"
	"strings"
	"testing"

	"github.com/kip-image-puller/kip/api/v1alpha1"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func TestFromCheCluster(t *testing.T) {
	cases := []struct {
		name    string
		obj     map[string]any
		want    CheClusterPuller
		wantErr string
	}{
		{name: "absent", obj: map[string]any{}, want: CheClusterPuller{}},
		{
			name: "enabled with a spec",
			obj:  map[string]any{"spec": map[string]any{"components": map[string]any{"imagePuller": map[string]any{"enable": true, "spec": map[string]any{"images": "a=reg/a:1", "cachingCPULimit": "1"}}}}},
			want: CheClusterPuller{Enabled: true, Spec: v1alpha1.KubernetesImagePullerSpec{Images: "a=reg/a:1", CachingCPULimit: "1"}},
		},
		{
			name:    "enable of the wrong type",
			obj:     map[string]any{"spec": map[string]any{"components": map[string]any{"imagePuller": map[string]any{"enable": "yes"}}}},
			wantErr: "spec.components.imagePuller.enable",
		},
		{
			name:    "unknown spec field",
			obj:     map[string]any{"spec": map[string]any{"components": map[string]any{"imagePuller": map[string]any{"enable": true, "spec": map[string]any{"imagez": "x"}}}}},
			wantErr: "spec.components.imagePuller.spec",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := FromCheCluster(&unstructured.Unstructured{Object: tc.obj})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want one naming %s", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("got %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func TestDefaultImageLists(t *testing.T) {
	cases := []struct {
		plugin, devfile string
		want            []string
	}{
		{"https://che.example.com/plugin-registry/v3", "https://che.example.com/devfile-registry",
			[]string{"https://che.example.com/plugin-registry/v3/external_images.txt", "https://che.example.com/devfile-registry/devfiles/external_images.txt"}},
		{"https://che.example.com/plugin-registry/", "", []string{"https://che.example.com/plugin-registry/v3/external_images.txt"}},
		{"", "", nil},
	}
	for _, tc := range cases {
		cc := &unstructured.Unstructured{Object: map[string]any{"status": map[string]any{"pluginRegistryURL": tc.plugin, "devfileRegistryURL": tc.devfile}}}
		if got := DefaultImageLists(cc); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q, %q: %v, want %v", tc.plugin, tc.devfile, got, tc.want)
		}
	}
}
