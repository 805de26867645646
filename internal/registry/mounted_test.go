package registry

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestReadMountedSecret(t *testing.T) {
	dir := t.TempDir()
	write := func(name, key, data string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Join(dir, name), 0o755); err != nil {
			t.Fatal(err)
		}
		if key != "" {
			if err := os.WriteFile(filepath.Join(dir, name, key), []byte(data), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	write("json", corev1.DockerConfigJsonKey, `{"auths":{}}`)
	write("legacy", corev1.DockerConfigKey, `{}`)
	write("opaque", "password", "x")
	write("missing-secret", "", "") // an optional Secret volume that does not exist mounts empty

	tests := []struct {
		name    string
		typ     corev1.SecretType
		problem string
	}{
		{"json", corev1.SecretTypeDockerConfigJson, ""},
		{"legacy", corev1.SecretTypeDockercfg, ""},
		{"opaque", "", "not a pull secret"},
		{"missing-secret", "", "does not exist"},
		{"not-named", "", "not mounted"},
	}
	for _, tt := range tests {
		s, err := ReadMountedSecret(dir, tt.name)
		switch {
		case tt.problem == "" && (err != nil || s.Type != tt.typ || s.Name != tt.name):
			t.Errorf("%s: %v, %v; want type %s", tt.name, s.Type, err, tt.typ)
		case tt.problem != "" && (err == nil || !strings.Contains(err.Error(), tt.problem)):
			t.Errorf("%s: error %v, want one saying %q", tt.name, err, tt.problem)
		}
	}
}
