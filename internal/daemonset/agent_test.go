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

// TestAgentMountsOnlyTheSocket: the socket itself, as a hostPath of type
// Socket (a missing one fails the pod rather than being created as a
// folder); a $(NODE_NAME) socket, only the node's own folder; never /run.
// Beside it, read-only, the image store of a known socket's runtime, to
// measure its filesystem; none for another socket.
func TestAgentMountsOnlyTheSocket(t *testing.T) {
	tests := []struct {
		socket, hostPath, hostType, mountPath, arg, store string
	}{
		{"/tmp/kip-cluster/sockets/$(NODE_NAME)/containerd.sock", "/tmp/kip-cluster/sockets", "Directory", "/host/node", "--cri-socket=/host/node/containerd.sock", ""},
		{"", "/run/containerd/containerd.sock", "Socket", "/host/run/containerd/containerd.sock", "--cri-socket=/host/run/containerd/containerd.sock", "/var/lib/containerd"},
		{"/run/crio/crio.sock", "/run/crio/crio.sock", "Socket", "/host/run/crio/crio.sock", "--cri-socket=/host/run/crio/crio.sock", "/var/lib/containers/storage"},
		{"/var/lib/rancher/k3s/agent/containerd.sock", "/var/lib/rancher/k3s/agent/containerd.sock", "Socket", "/host/var/lib/rancher/k3s/agent/containerd.sock", "--cri-socket=/host/var/lib/rancher/k3s/agent/containerd.sock", ""},
	}
	for _, tt := range tests {
		ds := Build(agentConfig(t, 1, config.KeyCRISocket, tt.socket), Options{KIPImage: "k:1"})
		spec := ds.Spec.Template.Spec
		var hostPaths []string
		for _, v := range spec.Volumes {
			if v.HostPath == nil {
				continue
			}
			want := tt.hostType
			if v.Name == "imagefs" {
				want = "Directory"
			} else {
				hostPaths = append(hostPaths, v.HostPath.Path)
			}
			if string(*v.HostPath.Type) != want {
				t.Errorf("%s: %s hostPath type %s, want %s", tt.socket, v.Name, *v.HostPath.Type, want)
			}
			if v.HostPath.Path == "/run" || v.HostPath.Path == "/var/run" {
				t.Errorf("%s: mounts %s whole", tt.socket, v.HostPath.Path)
			}
			if v.Name == "imagefs" && v.HostPath.Path != tt.store {
				t.Errorf("%q: image store %s, want %q", tt.socket, v.HostPath.Path, tt.store)
			}
		}
		if fmt.Sprint(hostPaths) != "["+tt.hostPath+"]" || spec.Containers[0].VolumeMounts[0].MountPath != tt.mountPath {
			t.Errorf("%q: host paths %v, mounted at %s", tt.socket, hostPaths, spec.Containers[0].VolumeMounts[0].MountPath)
		}
		if m := spec.Containers[0].VolumeMounts[0]; strings.Contains(tt.socket, config.NodeNameVar) != (m.SubPathExpr == "$(NODE_NAME)") || !m.ReadOnly {
			t.Errorf("%q: mount %+v", tt.socket, m)
		}
		args := strings.Join(spec.Containers[0].Args, " ")
		if !strings.Contains(args, tt.arg) {
			t.Errorf("%q: args %s, want %s", tt.socket, args, tt.arg)
		}
		if measured := strings.Contains(args, "--image-fs="+AgentImageFs); measured != (tt.store != "") {
			t.Errorf("%q: args %s; want --image-fs only with a store", tt.socket, args)
		}
	}
}

// TestAgentMountsThePairedStore: an extra socket the installer paired with
// its image store gets that store, read-only; with $(NODE_NAME), only the
// node's own.
func TestAgentMountsThePairedStore(t *testing.T) {
	const socket = "/srv/sockets/$(NODE_NAME)/containerd.sock"
	allowed := []string{socket + "=/srv/nodes/$(NODE_NAME)/containerd/root"}
	ds := Build(agentConfig(t, 1, config.KeyCRISocket, socket), Options{KIPImage: "k:1", AllowedSockets: allowed})
	spec := ds.Spec.Template.Spec
	var store *corev1.Volume
	for i, v := range spec.Volumes {
		if v.Name == "imagefs" {
			store = &spec.Volumes[i]
		}
	}
	if store == nil || store.HostPath.Path != "/srv/nodes" || *store.HostPath.Type != corev1.HostPathDirectory {
		t.Fatalf("store volume %+v", store)
	}
	var mount *corev1.VolumeMount
	for i, m := range spec.Containers[0].VolumeMounts {
		if m.Name == "imagefs" {
			mount = &spec.Containers[0].VolumeMounts[i]
		}
	}
	if mount == nil || mount.SubPathExpr != "$(NODE_NAME)/containerd/root" || !mount.ReadOnly || mount.MountPath != AgentImageFs {
		t.Errorf("store mount %+v", mount)
	}
	if without := Build(agentConfig(t, 1, config.KeyCRISocket, socket), Options{KIPImage: "k:1", AllowedSockets: []string{socket}}); len(without.Spec.Template.Spec.Volumes) != 1 {
		t.Errorf("a socket allowed without a store: volumes %+v", without.Spec.Template.Spec.Volumes)
	}
}

// TestAgentImageIsNeverKIPImage: KIP_IMAGE chooses the init container of
// daemonset mode only; the agent runs the image the controller gives.
func TestAgentImageIsNeverKIPImage(t *testing.T) {
	cfg := agentConfig(t, 1, config.KeyKIPImage, "attacker.example.com/root:1")
	const own = "reg.example.com/kip@sha256:0123456789012345678901234567890123456789012345678901234567890123"
	if got := Build(cfg, Options{KIPImage: "k:1", AgentImage: own}).Spec.Template.Spec.Containers[0].Image; got != own {
		t.Errorf("agent image %q, want the controller's %q", got, own)
	}
	if got := Build(cfg, Options{KIPImage: "k:1"}).Spec.Template.Spec.Containers[0].Image; got != "k:1" {
		t.Errorf("agent image %q without AgentImage, want the built-in k:1", got)
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
