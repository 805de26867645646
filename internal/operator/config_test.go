package operator

import (
	"errors"
	"slices"
	"testing"

	"github.com/kip-image-puller/kip/api/v1alpha1"
	"github.com/kip-image-puller/kip/internal/config"
)

func TestConfigData(t *testing.T) {
	cases := []struct {
		name    string
		spec    v1alpha1.KubernetesImagePullerSpec
		want    map[string]string
		errKeys []string
	}{
		{
			name: "the documented example, defaults for the rest",
			spec: v1alpha1.KubernetesImagePullerSpec{Images: "java=quay.io/eclipse/che-java11-maven:next;node=node:22"},
			want: map[string]string{config.KeyImages: "java=quay.io/eclipse/che-java11-maven:next;node=node:22", config.KeyNamespace: "tools"},
		},
		{
			name: "every field to its key",
			spec: v1alpha1.KubernetesImagePullerSpec{
				ConfigMapName: "cm", DeploymentName: "dep", DaemonsetName: "ds", Images: "a=a:1",
				CachingIntervalHours: "3", CachingMemoryRequest: "5Mi", CachingMemoryLimit: "15Mi",
				CachingCPURequest: "10m", CachingCPULimit: "100m", NodeSelector: `{"a": "b"}`,
				ImagePullSecrets: "s1;s2", Affinity: "{}", Tolerations: "[]", ImagePullerImage: "reg/kip:v1",
			},
			want: map[string]string{
				config.KeyImages: "a=a:1", config.KeyCachingIntervalHours: "3", config.KeyMemoryRequest: "5Mi",
				config.KeyMemoryLimit: "15Mi", config.KeyCPURequest: "10m", config.KeyCPULimit: "100m",
				config.KeyDaemonSetName: "ds", config.KeyDeploymentName: "dep", config.KeyNamespace: "tools",
				config.KeyNodeSelector: `{"a": "b"}`, config.KeyImagePullSecrets: "s1;s2", config.KeyAffinity: "{}",
				config.KeyTolerations: "[]", config.KeyKIPImage: "reg/kip:v1",
			},
		},
		{
			name:    "affinity the API server would refuse is an invalid spec",
			spec:    v1alpha1.KubernetesImagePullerSpec{Images: "a=reg/a:1", Affinity: `{"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [{"labelSelector": {}}]}}`},
			errKeys: []string{"spec.affinity (AFFINITY)"},
		},
		{
			name:    "invalid fields surface as the contract's errors, named by spec field",
			spec:    v1alpha1.KubernetesImagePullerSpec{Images: "Bad=x", CachingMemoryLimit: "lots", ConfigMapName: "Not_A_Name"},
			errKeys: []string{"spec.images (IMAGES)", "spec.cachingMemoryLimit (CACHING_MEMORY_LIMIT)", "spec.configMapName"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			data := ConfigData(tc.spec, "tools")
			_, err := Validate(tc.spec, "tools")
			if tc.errKeys != nil {
				var cfgErr *config.Error
				ok := errors.As(err, &cfgErr)
				if !ok {
					t.Fatalf("err = %v, want *config.Error", err)
				}
				keys := cfgErr.Keys()
				if !slices.Equal(keys, tc.errKeys) {
					t.Errorf("error keys %v, want %v", keys, tc.errKeys)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(data) != len(tc.want) {
				t.Errorf("data %v, want %v", data, tc.want)
			}
			for k, v := range tc.want {
				if data[k] != v {
					t.Errorf("%s = %q, want %q", k, data[k], v)
				}
			}
		})
	}
	if got := ConfigMapName(v1alpha1.KubernetesImagePullerSpec{}); got != config.DefaultConfigMapName {
		t.Errorf("default ConfigMap name %q", got)
	}
}
