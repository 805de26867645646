package daemonset

import (
	"testing"

	"github.com/kip-image-puller/kip/internal/config"
)

func TestKeyOfField(t *testing.T) {
	tests := map[string]string{
		"spec.template.spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0]": config.KeyAffinity,
		"spec.template.spec.tolerations[1].operator":                 config.KeyTolerations,
		"spec.template.spec.nodeSelector":                            config.KeyNodeSelector,
		"spec.template.spec.imagePullSecrets[0].name":                config.KeyImagePullSecrets,
		"spec.template.spec.initContainers[0].image":                 config.KeyKIPImage,
		"spec.template.spec.containers[3].image":                     config.KeyImages,
		"spec.template.spec.containers[0].name":                      config.KeyImages,
		"spec.template.spec.containers[0].resources.requests.memory": config.KeyMemoryRequest,
		"spec.template.spec.containers[0].resources.limits.cpu":      config.KeyCPULimit,
		"metadata.annotations":                                       config.KeyDaemonSetAnnotations,
		"metadata.name":                                              config.KeyDaemonSetName,
		"spec.selector":                                              "",
		"spec.template.spec.securityContext.runAsUser":               "",
	}
	for path, want := range tests {
		if got := KeyOfField(path); got != want {
			t.Errorf("KeyOfField(%q) = %q, want %q", path, got, want)
		}
	}
}
