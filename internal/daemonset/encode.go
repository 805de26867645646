package daemonset

import (
	"encoding/json"

	appsv1 "k8s.io/api/apps/v1"
	"sigs.k8s.io/yaml"
)

// JSON renders ds the way it is applied: only the fields set, without the
// status and null timestamps that a typed object always serializes.
func JSON(ds *appsv1.DaemonSet) ([]byte, error) {
	raw, err := json.Marshal(ds)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	delete(m, "status")
	dropNullTimestamp(m)
	if spec, ok := m["spec"].(map[string]any); ok {
		if tmpl, ok := spec["template"].(map[string]any); ok {
			dropNullTimestamp(tmpl)
		}
	}
	return json.Marshal(m)
}

// YAML is JSON as YAML, as `kip render` prints it.
func YAML(ds *appsv1.DaemonSet) ([]byte, error) {
	raw, err := JSON(ds)
	if err != nil {
		return nil, err
	}
	return yaml.JSONToYAML(raw)
}

func dropNullTimestamp(obj map[string]any) {
	if meta, ok := obj["metadata"].(map[string]any); ok {
		if meta["creationTimestamp"] == nil {
			delete(meta, "creationTimestamp")
		}
	}
}
