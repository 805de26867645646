// Package operator turns KubernetesImagePuller resources into the puller's
// configuration and objects. This file is its pure core: the mapping from a
// resource's spec to the ConfigMap data of the configuration contract.
package operator

import (
	"strings"

	"github.com/kip-image-puller/kip/api/v1alpha1"
	"github.com/kip-image-puller/kip/internal/config"
)

// ConfigMapName is the ConfigMap a resource configures.
func ConfigMapName(spec v1alpha1.KubernetesImagePullerSpec) string {
	if v := strings.TrimSpace(spec.ConfigMapName); v != "" {
		return v
	}
	return config.DefaultConfigMapName
}

// ConfigData is the ConfigMap data for a resource in namespace. Empty spec
// fields are left out, so the contract's documented defaults apply; the
// namespace is always the resource's own.
func ConfigData(spec v1alpha1.KubernetesImagePullerSpec, namespace string) map[string]string {
	data := map[string]string{config.KeyNamespace: namespace}
	for key, value := range map[string]string{
		config.KeyImages:               spec.Images,
		config.KeyCachingIntervalHours: spec.CachingIntervalHours,
		config.KeyMemoryRequest:        spec.CachingMemoryRequest,
		config.KeyMemoryLimit:          spec.CachingMemoryLimit,
		config.KeyCPURequest:           spec.CachingCPURequest,
		config.KeyCPULimit:             spec.CachingCPULimit,
		config.KeyDaemonSetName:        spec.DaemonsetName,
		config.KeyDeploymentName:       spec.DeploymentName,
		config.KeyNodeSelector:         spec.NodeSelector,
		config.KeyImagePullSecrets:     spec.ImagePullSecrets,
		config.KeyAffinity:             spec.Affinity,
		config.KeyTolerations:          spec.Tolerations,
		config.KeyKIPImage:             spec.ImagePullerImage,
	} {
		if v := strings.TrimSpace(value); v != "" {
			data[key] = v
		}
	}
	return data
}
