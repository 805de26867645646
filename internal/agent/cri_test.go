package agent

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestConnectNamesEveryPathTried(t *testing.T) {
	root := t.TempDir()
	// A file where containerd's socket would be: it exists, but answers nothing.
	if err := os.MkdirAll(filepath.Join(root, "run/containerd"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "run/containerd/containerd.sock"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Connect(context.Background(), "", root, 200*time.Millisecond)
	if err == nil {
		t.Fatal("connected to nothing")
	}
	for _, s := range Sockets {
		if !strings.Contains(err.Error(), filepath.Join(root, s)+": ") {
			t.Errorf("%s not named in %v", s, err)
		}
	}
	if !strings.Contains(err.Error(), "no such file or directory") {
		t.Errorf("missing sockets not said: %v", err)
	}
	explicit := filepath.Join(root, "elsewhere.sock")
	if _, err := Connect(context.Background(), explicit, root, 200*time.Millisecond); err == nil || !strings.Contains(err.Error(), explicit) || strings.Contains(err.Error(), "crio") {
		t.Errorf("an explicit socket: %v", err)
	}
}

func TestDockerName(t *testing.T) {
	digest := "@sha256:" + strings.Repeat("a", 64)
	for ref, want := range map[string]string{
		"busybox":                           "docker.io/library/busybox:latest",
		"docker.io/library/busybox:latest":  "docker.io/library/busybox:latest",
		"10.88.0.1:5001/e2e/app:v1":         "10.88.0.1:5001/e2e/app:v1",
		"quay.io/che/code":                  "quay.io/che/code:latest",
		"quay.io/che/code" + digest:         "quay.io/che/code" + digest,
		"quay.io/che/code:v1" + digest:      "quay.io/che/code" + digest,
		"sha256:" + strings.Repeat("b", 64): "sha256:" + strings.Repeat("b", 64),
		"Not A Reference":                   "Not A Reference",
	} {
		if got := dockerName(ref); got != want {
			t.Errorf("dockerName(%q) = %q, want %q", ref, got, want)
		}
	}
}
