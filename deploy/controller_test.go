package deploy

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestCheckControllerContainer(t *testing.T) {
	explicit := []corev1.EnvVar{{Name: "DEPLOYMENT_NAME", Value: "p"}, {Name: "POD_NAMESPACE"}, {Name: "CONFIGMAP_NAME", Value: "c"}}
	tests := []struct {
		name string
		c    corev1.Container
		ok   bool
	}{
		{"explicit env only", corev1.Container{Env: explicit}, true},
		{"no env", corev1.Container{}, true},
		{"envFrom ConfigMap", corev1.Container{EnvFrom: []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{}}}}, false},
		{"envFrom Secret", corev1.Container{EnvFrom: []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{}}}}, false},
		{"envFrom prefix only", corev1.Container{EnvFrom: []corev1.EnvFromSource{{Prefix: "X"}}}, false},
		{"another variable", corev1.Container{Env: append(explicit, corev1.EnvVar{Name: "HTTPS_PROXY"})}, false},
	}
	if values, _ := CheckControllerContainer(corev1.Container{Env: explicit}); values["CONFIGMAP_NAME"] != "c" || values["DEPLOYMENT_NAME"] != "p" {
		t.Errorf("values %v", values)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := CheckControllerContainer(tt.c); (err == nil) != tt.ok {
				t.Errorf("CheckControllerContainer: %v, want ok=%v", err, tt.ok)
			}
		})
	}
}
