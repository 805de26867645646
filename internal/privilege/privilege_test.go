package privilege

import (
	"strings"
	"testing"

	"github.com/kip-image-puller/kip/internal/config"
)

func parse(t *testing.T, kv ...string) *config.Config {
	t.Helper()
	data := map[string]string{config.KeyImages: "a=reg.example.com/a:1"}
	for i := 0; i+1 < len(kv); i += 2 {
		data[kv[i]] = kv[i+1]
	}
	cfg, _, err := config.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

const digestImage = "reg.example.com/kip@sha256:0123456789012345678901234567890123456789012345678901234567890123"

var (
	everything = Policy{Grants: Grants{AgentMode: true, AgentPrivateImages: true, NodeWrites: true}, AgentImage: digestImage}
	nothing    = Policy{AgentImage: digestImage}
)

func TestRestrict(t *testing.T) {
	agent := []string{config.KeyCachingMode, config.ModeAgent}
	nodes := []string{config.KeyNodeCondition, "true", config.KeyWarmNodeTaint, "kip.dev/warming"}
	tests := []struct {
		name   string
		cfg    []string
		policy Policy
		// mode, condition, taint and socket in force
		mode, taint, socket string
		condition           bool
		refused             []string // keys, in order
		says                string   // in the message
	}{
		{name: "daemonset mode asks for nothing", policy: nothing, mode: config.ModeDaemonSet},
		{name: "agent mode, granted", cfg: agent, policy: everything, mode: config.ModeAgent, socket: KnownSockets[0]},
		{name: "agent mode, not granted", cfg: agent, policy: nothing, mode: config.ModeDaemonSet,
			refused: []string{config.KeyCachingMode}, says: "kip.dev/agent-mode=allowed"},
		{name: "agent mode, only node writes granted", cfg: agent, policy: Policy{Grants: Grants{NodeWrites: true}, AgentImage: digestImage}, mode: config.ModeDaemonSet,
			refused: []string{config.KeyCachingMode}, says: "caching stays in daemonset mode"},
		{name: "agent mode without the controller's digest", cfg: agent, policy: Policy{Grants: everything.Grants, AgentImageProblem: "no pod"}, mode: config.ModeDaemonSet,
			refused: []string{config.KeyCachingMode}, says: "not known: no pod"},
		{name: "node writes, granted", cfg: nodes, policy: everything, mode: config.ModeDaemonSet, condition: true, taint: "kip.dev/warming"},
		{name: "node writes, not granted", cfg: nodes, policy: Policy{Grants: Grants{AgentMode: true}}, mode: config.ModeDaemonSet,
			refused: []string{config.KeyNodeCondition, config.KeyWarmNodeTaint}, says: "kip.dev/node-writes=allowed"},
		{name: "both, neither granted", cfg: append(append([]string{}, agent...), nodes...), policy: nothing, mode: config.ModeDaemonSet,
			refused: []string{config.KeyNodeCondition, config.KeyWarmNodeTaint, config.KeyCachingMode}},
		{name: "a socket under /etc", cfg: append([]string{config.KeyCRISocket, "/etc/kubernetes/pki/x.sock"}, agent...), policy: everything, mode: config.ModeDaemonSet,
			refused: []string{config.KeyCRISocket}, says: "--cri-socket-allow"},
		{name: "a known socket", cfg: append([]string{config.KeyCRISocket, "/run/crio/crio.sock"}, agent...), policy: everything, mode: config.ModeAgent, socket: "/run/crio/crio.sock"},
		{name: "a node-named socket the installer allowed", cfg: append([]string{config.KeyCRISocket, "/k/sockets/$(NODE_NAME)/c.sock"}, agent...),
			policy: Policy{Grants: everything.Grants, AgentImage: digestImage, ExtraSockets: []string{"/k/sockets/$(NODE_NAME)/c.sock"}}, mode: config.ModeAgent, socket: "/k/sockets/$(NODE_NAME)/c.sock"},
		{name: "a node-named socket in another folder than the installer allowed", cfg: append([]string{config.KeyCRISocket, "/k/$(NODE_NAME)/c.sock"}, agent...),
			policy: Policy{Grants: everything.Grants, AgentImage: digestImage, ExtraSockets: []string{"/k/sockets/$(NODE_NAME)/c.sock"}}, mode: config.ModeDaemonSet, refused: []string{config.KeyCRISocket}},
		{name: "the socket of the nodes' runtime", cfg: agent, policy: Policy{Grants: everything.Grants, AgentImage: digestImage, Runtimes: []string{"cri-o://1.31.0", "cri-o://1.31.0", "containerd://2.0.0"}},
			mode: config.ModeAgent, socket: "/run/crio/crio.sock"},
		{name: "agents on the control plane", cfg: append([]string{config.KeyTolerations, `[{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"}]`}, agent...),
			policy: everything, mode: config.ModeDaemonSet, refused: []string{config.KeyTolerations}, says: "control-plane"},
		{name: "agents tolerating everything", cfg: append([]string{config.KeyTolerations, `[{"operator": "Exists"}]`}, agent...),
			policy: everything, mode: config.ModeDaemonSet, refused: []string{config.KeyTolerations}},
		{name: "agents tolerating a NoExecute taint of every key", cfg: append([]string{config.KeyTolerations, `[{"operator": "Exists", "effect": "NoExecute"}]`}, agent...),
			policy: everything, mode: config.ModeAgent, socket: KnownSockets[0]},
		{name: "private images in agent mode, granted", cfg: append([]string{config.KeyImagePullSecrets, "regcred"}, agent...), policy: everything, mode: config.ModeAgent, socket: KnownSockets[0]},
		{name: "private images in agent mode, not granted", cfg: append([]string{config.KeyImagePullSecrets, "regcred;other"}, agent...),
			policy: Policy{Grants: Grants{AgentMode: true, NodeWrites: true}, AgentImage: digestImage}, mode: config.ModeDaemonSet,
			refused: []string{config.KeyImagePullSecrets}, says: `IMAGE_PULL_SECRETS: value "regcred;other": an image the agent pulls with a secret counts as preloaded`},
		{name: "private images name AlwaysVerify and the label", cfg: append([]string{config.KeyImagePullSecrets, "regcred"}, agent...),
			policy: Policy{Grants: Grants{AgentMode: true}, AgentImage: digestImage}, mode: config.ModeDaemonSet,
			refused: []string{config.KeyImagePullSecrets}, says: "AlwaysVerify grants private images to agent mode with the label kip.dev/agent-private-images=allowed"},
		{name: "private images in daemonset mode need no grant", cfg: []string{config.KeyImagePullSecrets, "regcred"}, policy: nothing, mode: config.ModeDaemonSet},
		{name: "the control plane is fine in daemonset mode", cfg: []string{config.KeyTolerations, `[{"operator": "Exists"}]`}, policy: nothing, mode: config.ModeDaemonSet},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := parse(t, tt.cfg...)
			before := *cfg
			got, refused := Restrict(cfg, tt.policy)
			if got.CachingMode != tt.mode || got.NodeCondition != tt.condition || got.WarmNodeTaint != tt.taint {
				t.Errorf("in force: mode %s, condition %v, taint %q; want %s, %v, %q", got.CachingMode, got.NodeCondition, got.WarmNodeTaint, tt.mode, tt.condition, tt.taint)
			}
			if tt.mode == config.ModeAgent && got.CRISocket != tt.socket {
				t.Errorf("socket %q, want %q", got.CRISocket, tt.socket)
			}
			var keys []string
			for _, r := range refused {
				keys = append(keys, r.Key)
			}
			if strings.Join(keys, ",") != strings.Join(tt.refused, ",") {
				t.Errorf("refused %v, want %v", refused, tt.refused)
			}
			if !strings.Contains(Message(refused), tt.says) {
				t.Errorf("message %q does not say %q", Message(refused), tt.says)
			}
			if cfg.CachingMode != before.CachingMode || cfg.NodeCondition != before.NodeCondition || cfg.CRISocket != before.CRISocket {
				t.Errorf("Restrict changed its input")
			}
		})
	}
}

func TestFromLabels(t *testing.T) {
	tests := []struct {
		labels map[string]string
		want   Grants
	}{
		{nil, Grants{}},
		{map[string]string{LabelAgentMode: "allowed"}, Grants{AgentMode: true}},
		{map[string]string{LabelAgentMode: "true", LabelNodeWrites: "yes"}, Grants{}},
		{map[string]string{LabelAgentMode: "allowed", LabelNodeWrites: "allowed"}, Grants{AgentMode: true, NodeWrites: true}},
		{map[string]string{LabelAgentPrivateImages: "allowed"}, Grants{AgentPrivateImages: true}},
	}
	for _, tt := range tests {
		if got := FromLabels(tt.labels); got != tt.want {
			t.Errorf("FromLabels(%v) = %+v, want %+v", tt.labels, got, tt.want)
		}
	}
}

func TestSocketFor(t *testing.T) {
	tests := []struct {
		runtimes []string
		want     string
	}{
		{nil, "/run/containerd/containerd.sock"},
		{[]string{"containerd://2.4.2"}, "/run/containerd/containerd.sock"},
		{[]string{"containerd://1.7.21-k3s1"}, "/run/k3s/containerd/containerd.sock"},
		{[]string{"cri-o://1.31.0"}, "/run/crio/crio.sock"},
		{[]string{"docker://27.0.1"}, "/run/cri-dockerd.sock"},
		{[]string{"containerd://2.0.0", "cri-o://1.31.0", "cri-o://1.31.1"}, "/run/crio/crio.sock"},
		{[]string{"cri-o://1.31.0", "containerd://2.0.0"}, "/run/containerd/containerd.sock"}, // a tie: containerd's, the first known
	}
	for _, tt := range tests {
		if got := SocketFor(tt.runtimes); got != tt.want {
			t.Errorf("SocketFor(%v) = %q, want %q", tt.runtimes, got, tt.want)
		}
	}
}

func TestCheckExtraSockets(t *testing.T) {
	tests := []struct {
		extra []string
		bad   string
	}{
		{nil, ""},
		{[]string{"/tmp/kip-cluster/sockets/$(NODE_NAME)/containerd.sock", "/var/run/custom/cri.sock"}, ""},
		{[]string{"/run/$(NODE_NAME)/containerd.sock"}, "/run holds far more"},
		{[]string{"/var/run/$(NODE_NAME)/containerd.sock"}, "/var/run holds far more"},
		{[]string{"run/x.sock"}, "absolute"},
		{[]string{"/x.sock"}, "absolute"},
		{[]string{"/run/../etc/x.sock"}, "absolute"},
		{[]string{"/tmp/k/sockets/$(NODE_NAME)/containerd.sock=/tmp/k/nodes/$(NODE_NAME)/containerd/root"}, ""},
		{[]string{"/srv/cri.sock=/srv/images"}, ""},
		{[]string{"/srv/cri.sock=/etc/kubernetes"}, "image store"},
		{[]string{"/srv/cri.sock=/etc"}, "image store"},
		{[]string{"/srv/cri.sock=/proc/1/root"}, "image store"},
		{[]string{"/srv/cri.sock=/run/containerd"}, "image store"},
		{[]string{"/srv/cri.sock=images"}, "image store"},
		{[]string{"/srv/cri.sock="}, "image store"},
		{[]string{"/srv/cri.sock=/srv/../etc"}, "image store"},
		{[]string{"/s/$(NODE_NAME)/cri.sock=/srv/images"}, "exactly when the socket has one"},
		{[]string{"/srv/cri.sock=/srv/$(NODE_NAME)/images"}, "exactly when the socket has one"},
		{[]string{"/s/$(NODE_NAME)/cri.sock=/etc/$(NODE_NAME)/x"}, "image store"},
	}
	for _, tt := range tests {
		err := CheckExtraSockets(tt.extra)
		if (err == nil) != (tt.bad == "") || (err != nil && !strings.Contains(err.Error(), tt.bad)) {
			t.Errorf("CheckExtraSockets(%v) = %v, want %q", tt.extra, err, tt.bad)
		}
	}
}

// TestImageStore: a known socket's runtime's store, or the one the
// installer paired with an extra socket; none otherwise.
func TestImageStore(t *testing.T) {
	extra := []string{"/srv/a.sock=/srv/a-images", "/srv/b.sock", "/s/$(NODE_NAME)/c.sock=/n/$(NODE_NAME)/root"}
	for socket, want := range map[string]string{
		"/run/containerd/containerd.sock": "/var/lib/containerd",
		"/run/crio/crio.sock":             "/var/lib/containers/storage",
		"/srv/a.sock":                     "/srv/a-images",
		"/srv/b.sock":                     "",
		"/s/$(NODE_NAME)/c.sock":          "/n/$(NODE_NAME)/root",
		"/srv/unknown.sock":               "",
	} {
		if got := ImageStore(socket, extra); got != want {
			t.Errorf("ImageStore(%s) = %q, want %q", socket, got, want)
		}
	}
	for socket, want := range map[string]bool{"/srv/a.sock": true, "/srv/b.sock": true, "/s/$(NODE_NAME)/c.sock": true, "/srv/a-images": false, "/srv/a.sock=/srv/a-images": false} {
		if got := SocketAllowed(socket, extra); got != want {
			t.Errorf("SocketAllowed(%s) = %v, want %v", socket, got, want)
		}
	}
}

func TestImageByDigest(t *testing.T) {
	const digest = "sha256:0123456789012345678901234567890123456789012345678901234567890123"
	tests := []struct {
		image, imageID, want, bad string
	}{
		{"127.0.0.1:5001/kip:dev", "127.0.0.1:5001/kip@" + digest, "127.0.0.1:5001/kip@" + digest, ""},
		{"ghcr.io/kip-image-puller/kip:v1", "docker-pullable://ghcr.io/kip-image-puller/kip@" + digest, "ghcr.io/kip-image-puller/kip@" + digest, ""},
		// The repository the Deployment names, whatever name the runtime kept.
		{"mirror.example.com/kip:v1", "ghcr.io/kip-image-puller/kip@" + digest, "mirror.example.com/kip@" + digest, ""},
		{"reg.example.com/kip@" + digest, "", "reg.example.com/kip@" + digest, ""},
		{"reg.example.com/kip:v1", digest, "", "only an image ID"},
		{"reg.example.com/kip:v1", "", "", "no digest"},
		{"reg.example.com/kip:v1", "reg.example.com/kip@sha256:short", "", "with digest"},
		{"Not An Image", "", "", "the controller's image"},
	}
	for _, tt := range tests {
		got, err := ImageByDigest(tt.image, tt.imageID)
		if got != tt.want || (err == nil) != (tt.bad == "") || (err != nil && !strings.Contains(err.Error(), tt.bad)) {
			t.Errorf("ImageByDigest(%q, %q) = %q, %v; want %q, %q", tt.image, tt.imageID, got, err, tt.want, tt.bad)
		}
	}
}
