package daemonset

import (
	"fmt"
	"sort"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
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

// TestAgentListIsNotInThePodTemplate: a new list, or newly recorded
// digests, change the DaemonSet's annotations and leave its pod template
// as it is, so the running agents take them up without a restart.
func TestAgentListIsNotInThePodTemplate(t *testing.T) {
	digests := map[string]string{"reg.example.com/img0:v1": "sha256:" + sha("d")}
	before := Build(agentConfig(t, 1), Options{KIPImage: "k:1"})
	after := Build(agentConfig(t, 2), Options{KIPImage: "k:1", Refresh: RefreshState{Digests: digests, Rollout: "r1"}})
	if !equality.Semantic.DeepEqual(before.Spec.Template, after.Spec.Template) {
		t.Errorf("the pod template changed with the list:\n%v\n%v", before.Spec.Template, after.Spec.Template)
	}
	if before.Annotations[AnnotationImages] == after.Annotations[AnnotationImages] {
		t.Errorf("%s did not change: %q", AnnotationImages, after.Annotations[AnnotationImages])
	}
	if got := RecordedRefresh(after).Digests; fmt.Sprint(got) != fmt.Sprint(digests) {
		t.Errorf("recorded digests %v, want %v", got, digests)
	}
}

func TestAgentImagesRoundTrip(t *testing.T) {
	cfg := agentConfig(t, 3)
	ds := Build(cfg, Options{KIPImage: "k:1"})
	got, err := AgentImages(ds)
	if err != nil || fmt.Sprint(got) != fmt.Sprint(cfg.Images) || !IsAgents(ds) {
		t.Errorf("AgentImages = %v, %v; want %v", got, err, cfg.Images)
	}
	if ds.Name != cfg.DaemonSetName+config.AgentSuffix || ds.Spec.Template.Spec.ServiceAccountName != AgentServiceAccount {
		t.Errorf("name %s, service account %s", ds.Name, ds.Spec.Template.Spec.ServiceAccountName)
	}
	sleeping := Build(mustParse(t, map[string]string{config.KeyImages: "a=a:1"}), Options{KIPImage: "k:1"})
	if IsAgents(sleeping) {
		t.Error("a DaemonSet of sleeping containers read as an agents' one")
	}
	if _, err := AgentImages(sleeping); err == nil || !strings.Contains(err.Error(), AnnotationImages) {
		t.Errorf("AgentImages of a DaemonSet without the annotation: %v", err)
	}
	ds.Annotations[AnnotationImages] = "a=;"
	if _, err := AgentImages(ds); err == nil || !strings.Contains(err.Error(), AnnotationImages) {
		t.Errorf("AgentImages of an unreadable annotation: %v", err)
	}
}
