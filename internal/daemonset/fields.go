package daemonset

import (
	"strings"

	"github.com/kip-image-puller/kip/internal/config"
)

// KeyOfField names the configuration key that sets a field of the built
// DaemonSet, given the field path the API server names in a rejection
// (spec.template.spec.affinity.nodeAffinity..., metadata.annotations, ...).
// It returns "" for a field no key sets.
func KeyOfField(path string) string {
	pod := strings.TrimPrefix(path, "spec.template.spec.")
	switch {
	case path == "metadata.annotations" || strings.HasPrefix(path, "metadata.annotations["):
		return config.KeyDaemonSetAnnotations
	case path == "metadata.name":
		return config.KeyDaemonSetName
	case pod == path: // not in the pod spec
		return ""
	case strings.HasPrefix(pod, "affinity"):
		return config.KeyAffinity
	case strings.HasPrefix(pod, "tolerations"):
		return config.KeyTolerations
	case strings.HasPrefix(pod, "nodeSelector"):
		return config.KeyNodeSelector
	case strings.HasPrefix(pod, "imagePullSecrets"):
		return config.KeyImagePullSecrets
	case strings.HasPrefix(pod, "initContainers"):
		return config.KeyKIPImage
	case strings.HasPrefix(pod, "containers"):
		for suffix, key := range map[string]string{
			"resources.requests.memory": config.KeyMemoryRequest, "resources.limits.memory": config.KeyMemoryLimit,
			"resources.requests.cpu": config.KeyCPURequest, "resources.limits.cpu": config.KeyCPULimit,
		} {
			if strings.HasSuffix(pod, suffix) || strings.Contains(pod, suffix+"[") {
				return key
			}
		}
		return config.KeyImages
	}
	return ""
}
