package daemonset

import (
	"fmt"
	"sort"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	psapi "k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"

	"github.com/kip-image-puller/kip/internal/config"
)

func agentConfig(t *testing.T, images int, extra ...string) *config.Config {
	t.Helper()
	var entries []string
	for i := range images {
		entries = append(entries, fmt.Sprintf("img%d=reg.example.com/img%d:v1", i, i))
	}
	data := map[string]string{config.KeyImages: strings.Join(entries, ";"), config.KeyCachingMode: config.ModeAgent}
	for i := 0; i+1 < len(extra); i += 2 {
		data[extra[i]] = extra[i+1]
	}
	return mustParse(t, data)
}

// TestAgentPodSecurity: the agent needs the runtime's socket, a hostPath
// volume that only the privileged level allows; it breaks no other rule of
// baseline, and of restricted only the ones root and hostPath imply.
func TestAgentPodSecurity(t *testing.T) {
	evaluator, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ds := Build(agentConfig(t, 3), Options{KIPImage: "k:1"})
	forbidden := func(level psapi.Level) []string {
		var out []string
		for _, r := range evaluator.EvaluatePod(psapi.LevelVersion{Level: level, Version: psapi.LatestVersion()}, &ds.Spec.Template.ObjectMeta, &ds.Spec.Template.Spec) {
			if !r.Allowed {
				out = append(out, r.ForbiddenReason)
			}
		}
		sort.Strings(out)
		return out
	}
	if got := forbidden(psapi.LevelBaseline); fmt.Sprint(got) != "[hostPath volumes]" {
		t.Errorf("baseline forbids %q, want only the hostPath volume", got)
	}
	if got := forbidden(psapi.LevelRestricted); fmt.Sprint(got) != "[restricted volume types runAsNonRoot != true runAsUser=0]" {
		t.Errorf("restricted forbids %q", got)
	}
	c := ds.Spec.Template.Spec.Containers[0]
	sc := c.SecurityContext
	if len(ds.Spec.Template.Spec.Containers) != 1 || *sc.AllowPrivilegeEscalation || !*sc.ReadOnlyRootFilesystem || fmt.Sprint(sc.Capabilities.Drop) != "[ALL]" || sc.Privileged != nil {
		t.Errorf("the agent is not locked down: %+v", sc)
	}
	for _, m := range c.VolumeMounts {
		if !m.ReadOnly {
			t.Errorf("mount %s is writable", m.MountPath)
		}
	}
}

func TestAgentMountsOnlyTheSocketFolder(t *testing.T) {
	tests := []struct {
		socket, hostPath, mountPath, arg string
	}{
		{"/tmp/kip-cluster/sockets/$(NODE_NAME)/containerd.sock", "/tmp/kip-cluster/sockets", "/host/node", "--cri-socket=/host/node/containerd.sock"},
		{"", "/run", "/host/run", ""},
		{"/run/crio/crio.sock", "/run/crio", "/host/run/crio", "--cri-socket=/host/run/crio/crio.sock"},
		{"/var/lib/rancher/k3s/agent/containerd.sock", "/var/lib/rancher/k3s/agent", "/host/var/lib/rancher/k3s/agent", "--cri-socket=/host/var/lib/rancher/k3s/agent/containerd.sock"},
	}
	for _, tt := range tests {
		ds := Build(agentConfig(t, 1, config.KeyCRISocket, tt.socket), Options{KIPImage: "k:1"})
		spec := ds.Spec.Template.Spec
		var hostPaths []string
		for _, v := range spec.Volumes {
			if v.HostPath != nil {
				hostPaths = append(hostPaths, v.HostPath.Path)
				if *v.HostPath.Type != corev1.HostPathDirectory {
					t.Errorf("%s: hostPath type %s: a missing folder must not be created", tt.socket, *v.HostPath.Type)
				}
			}
		}
		if fmt.Sprint(hostPaths) != "["+tt.hostPath+"]" || spec.Containers[0].VolumeMounts[0].MountPath != tt.mountPath {
			t.Errorf("%q: host paths %v, mounted at %s", tt.socket, hostPaths, spec.Containers[0].VolumeMounts[0].MountPath)
		}
		if m := spec.Containers[0].VolumeMounts[0]; strings.Contains(tt.socket, config.NodeNameVar) != (m.SubPathExpr == "$(NODE_NAME)") || !m.ReadOnly {
			t.Errorf("%q: mount %+v", tt.socket, m)
		}
		args := strings.Join(spec.Containers[0].Args, " ")
		if (tt.arg == "") != !strings.Contains(args, "--cri-socket") || !strings.Contains(args, tt.arg) {
			t.Errorf("%q: args %s", tt.socket, args)
		}
	}
}

// TestAgentMemoryIsConstant: 10 or 100 images, the agent asks the same.
func TestAgentMemoryIsConstant(t *testing.T) {
	few := Build(agentConfig(t, 10), Options{KIPImage: "k:1"}).Spec.Template.Spec.Containers[0].Resources
	many := Build(agentConfig(t, 100), Options{KIPImage: "k:1"}).Spec.Template.Spec.Containers[0].Resources
	if few.Requests.Memory().Cmp(*many.Requests.Memory()) != 0 || few.Limits.Memory().Cmp(*many.Limits.Memory()) != 0 {
		t.Errorf("10 images: %v, 100 images: %v", few, many)
	}
	if few.Requests.Memory().Cmp(AgentMemoryRequest) != 0 || AgentMemoryRequest.Value() > 32<<20 {
		t.Errorf("request %s, want at most 32Mi", few.Requests.Memory())
	}
}

// TestAgentDigestsOnlyOnceATagMoved: recording the digests at the first
// refresh leaves the agents' pods as they are; a moved tag rolls them with
// the digests to pull.
func TestAgentDigestsOnlyOnceATagMoved(t *testing.T) {
	digests := map[string]string{"reg.example.com/img0:v1": "sha256:" + sha("d")}
	env := func(refresh RefreshState) string {
		for _, e := range Build(agentConfig(t, 1), Options{KIPImage: "k:1", Refresh: refresh}).Spec.Template.Spec.Containers[0].Env {
			if e.Name == EnvDigests {
				return e.Value
			}
		}
		return ""
	}
	if got := env(RefreshState{Digests: digests}); got != "" {
		t.Errorf("first record: %s=%s, want none", EnvDigests, got)
	}
	if got := env(RefreshState{Digests: digests, Rollout: "r1"}); got != EncodeDigests(digests) {
		t.Errorf("after a move: %s=%q", EnvDigests, got)
	}
}

func TestAgentImagesRoundTrip(t *testing.T) {
	cfg := agentConfig(t, 3)
	ds := Build(cfg, Options{KIPImage: "k:1"})
	got, ok := AgentImages(ds)
	if !ok || fmt.Sprint(got) != fmt.Sprint(cfg.Images) {
		t.Errorf("AgentImages = %v, %v; want %v", got, ok, cfg.Images)
	}
	if ds.Name != cfg.DaemonSetName+config.AgentSuffix || ds.Spec.Template.Spec.ServiceAccountName != AgentServiceAccount {
		t.Errorf("name %s, service account %s", ds.Name, ds.Spec.Template.Spec.ServiceAccountName)
	}
	sleeping := Build(mustParse(t, map[string]string{config.KeyImages: "a=a:1"}), Options{KIPImage: "k:1"})
	if _, ok := AgentImages(sleeping); ok {
		t.Error("a DaemonSet of sleeping containers read as an agents' one")
	}
}
