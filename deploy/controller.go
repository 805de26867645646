package deploy

import (
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// ControllerEnv is every environment variable the installs give the puller
// controller. The ConfigMap is read through the API, never through the
// environment: a key such as KUBECONFIG, HTTPS_PROXY or CONFIGMAP_NAME in it
// must not be able to change the process.
var ControllerEnv = []string{"CONFIGMAP_NAME", "DEPLOYMENT_NAME", "POD_NAME", "POD_NAMESPACE"}

// CheckControllerContainer returns the values of the explicit environment
// of an installed controller container, and tells what is wrong with it:
// envFrom of any kind, or a variable that is not in ControllerEnv.
func CheckControllerContainer(c corev1.Container) (map[string]string, error) {
	values := map[string]string{}
	for _, e := range c.Env {
		values[e.Name] = e.Value
	}
	var problems []string
	for _, from := range c.EnvFrom {
		switch {
		case from.ConfigMapRef != nil:
			problems = append(problems, fmt.Sprintf("envFrom ConfigMap %q", from.ConfigMapRef.Name))
		case from.SecretRef != nil:
			problems = append(problems, fmt.Sprintf("envFrom Secret %q", from.SecretRef.Name))
		default:
			problems = append(problems, "envFrom")
		}
	}
	for _, e := range c.Env {
		if !slices.Contains(ControllerEnv, e.Name) {
			problems = append(problems, fmt.Sprintf("env %s", e.Name))
		}
	}
	if len(problems) > 0 {
		return values, fmt.Errorf("container %s: %s: expected only explicit env %s", c.Name, strings.Join(problems, ", "), strings.Join(ControllerEnv, ", "))
	}
	return values, nil
}
