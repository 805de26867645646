package daemonset

import (
	"github.com/kip-image-puller/kip/internal/ssa"

	appsv1 "k8s.io/api/apps/v1"
	"sigs.k8s.io/yaml"
)

// JSON renders ds the way it is applied: only the fields set, without the
// status and null timestamps that a typed object always serializes.
func JSON(ds *appsv1.DaemonSet) ([]byte, error) {
	return ssa.JSON(ds)
}

// YAML is JSON as YAML, as `kip render` prints it.
func YAML(ds *appsv1.DaemonSet) ([]byte, error) {
	raw, err := JSON(ds)
	if err != nil {
		return nil, err
	}
	return yaml.JSONToYAML(raw)
}
