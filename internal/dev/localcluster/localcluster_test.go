package localcluster

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	psapi "k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
	"sigs.k8s.io/yaml"
)

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := strings.Join([]string{
		"# Source this file to use the local cluster.",
		"export KUBECONFIG=" + dir + "/kubeconfig",
		"export KIP_KUBE_BIN=/cache/kube",
		"export KIP_REGISTRY=10.88.0.1:5001",
		"export KIP_REGISTRY_PUSH=127.0.0.1:5001",
		"export KIP_AUTH_REGISTRY=10.88.0.1:5002",
		"export KIP_AUTH_REGISTRY_PUSH=127.0.0.1:5002",
		"export KIP_AUTH_REGISTRY_USER=kip",
		"export KIP_AUTH_REGISTRY_PASSWORD_FILE=" + pw,
		"export KIP_NODES=3",
		"export KIP_REMOTE_REGISTRY=10.88.0.1:5003",
		"export KIP_REMOTE_REGISTRY_PUSH=127.0.0.1:5003",
		`export KIP_CONTAINERD2_NODES="node3 "`,
	}, "\n")
	if err := os.WriteFile(filepath.Join(dir, "env"), []byte(env), 0o600); err != nil {
		t.Fatal(err)
	}
	e, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if e.Kubectl != "/cache/kube/kubectl" || e.Registry != "10.88.0.1:5001" || e.RegistryPush != "127.0.0.1:5001" ||
		e.AuthUser != "kip" || e.AuthPassword != "s3cret" || !slices.Equal(e.Nodes, []string{"node1", "node2", "node3"}) {
		t.Errorf("Load = %+v", e)
	}
	if got := e.Socket("node2"); got != filepath.Join(dir, "sockets", "node2", "containerd.sock") {
		t.Errorf("Socket = %s", got)
	}
	if got := e.SocketPattern(); got != filepath.Join(dir, "sockets", "$(NODE_NAME)", "containerd.sock") {
		t.Errorf("SocketPattern = %s", got)
	}
	if e.RemoteRegistry != "10.88.0.1:5003" || e.RemoteRegistryPush != "127.0.0.1:5003" {
		t.Errorf("remote registry %s, pushed to at %s", e.RemoteRegistry, e.RemoteRegistryPush)
	}
	if !slices.Equal(e.PinningNodes, []string{"node3"}) {
		t.Errorf("PinningNodes = %v", e.PinningNodes)
	}
	if _, err := Load(filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "make cluster-up") {
		t.Errorf("Load of a missing cluster: %v", err)
	}
}

func TestMissing(t *testing.T) {
	held := map[string]map[string]bool{
		"node1": {"r/a:1": true, "r/b:1": true},
		"node2": {"r/a:1": true},
	}
	got := Missing(held, []string{"node1", "node2"}, []string{"r/a:1", "r/b:1"})
	if !slices.Equal(got, []string{"node2:r/b:1"}) {
		t.Errorf("Missing = %v", got)
	}
}

func TestWorkspacePodIsRestricted(t *testing.T) {
	var pod corev1.Pod
	if err := yaml.UnmarshalStrict([]byte(WorkspacePod("w", "node1", "r/a:1")), &pod); err != nil {
		t.Fatal(err)
	}
	ev, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range ev.EvaluatePod(psapi.LevelVersion{Level: psapi.LevelRestricted, Version: psapi.LatestVersion()}, &pod.ObjectMeta, &pod.Spec) {
		if !r.Allowed {
			t.Errorf("%s: %s", r.ForbiddenReason, r.ForbiddenDetail)
		}
	}
}
