package puller

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

func TestRefreshWait(t *testing.T) {
	const hour, retry = time.Hour, 30 * time.Second
	tests := []struct {
		interval     time.Duration
		failedInARow int
		want         time.Duration
	}{
		{hour, 0, hour},
		{hour, 1, retry},
		{hour, 2, 2 * retry},
		{hour, 3, 4 * retry},
		{hour, 7, 64 * retry},
		{hour, 8, hour}, // 128 x 30 s is above the interval: capped
		{8760 * hour, 1000, 8760 * hour},
		{10 * time.Second, 1, 10 * time.Second}, // an interval below the first retry caps it too
	}
	for _, tt := range tests {
		if got := refreshWait(tt.interval, retry, tt.failedInARow); got != tt.want {
			t.Errorf("refreshWait(%v, %v, %d) = %v, want %v", tt.interval, retry, tt.failedInARow, got, tt.want)
		}
	}
}

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
		s, err := readMountedSecret(dir, tt.name)
		switch {
		case tt.problem == "" && (err != nil || s.Type != tt.typ || s.Name != tt.name):
			t.Errorf("%s: %v, %v; want type %s", tt.name, s.Type, err, tt.typ)
		case tt.problem != "" && (err == nil || !strings.Contains(err.Error(), tt.problem)):
			t.Errorf("%s: error %v, want one saying %q", tt.name, err, tt.problem)
		}
	}
}
