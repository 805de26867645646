// Package privilege draws kip's trust boundary: what a ConfigMap or
// KubernetesImagePuller may ask for on its own, and what needs a grant from
// a cluster admin. Agent mode (root and a runtime socket on every node) and
// node writes (the ImagesCached condition, the startup taint) are granted per
// namespace, by labels on the Namespace object, which no namespaced role
// (edit, admin) can write and which the shipped ValidatingAdmissionPolicy
// kip-namespace-grants guards against namespace creators. The runtime socket
// an agent mounts is one of a known list, or one the installer named on the
// controller's command line. It is pure: the edges read the labels, the
// flags and the nodes, and report what Restrict refuses.
package privilege

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	corev1 "k8s.io/api/core/v1"

	"github.com/kip-image-puller/kip/internal/config"
)

// The Namespace labels that grant privilege, and the one value that grants.
const (
	// LabelAgentMode lets pullers in the namespace run agent mode: one pod
	// per node, as root, with the runtime's socket.
	LabelAgentMode = "kip.dev/agent-mode"
	// LabelAgentPrivateImages lets agent mode pull with IMAGE_PULL_SECRETS.
	// An image the agent pulls counts as preloaded for the kubelet
	// (KEP-2535), and under the kubelet's default
	// imagePullCredentialsVerificationPolicy, NeverVerifyPreloadedImages,
	// any pod on the node may then run it without the secret. Grant it only
	// where the kubelets run AlwaysVerify.
	LabelAgentPrivateImages = "kip.dev/agent-private-images"
	// LabelNodeWrites lets pullers in the namespace write the nodes: the
	// condition kip.dev/ImagesCached and the removal of WARM_NODE_TAINT.
	LabelNodeWrites = "kip.dev/node-writes"
	// Allowed is the value that grants.
	Allowed = "allowed"
)

// Grants are what a cluster admin allowed the pullers of a namespace.
type Grants struct {
	AgentMode          bool
	AgentPrivateImages bool
	NodeWrites         bool
}

// FromLabels reads the grants off a Namespace's labels.
func FromLabels(l map[string]string) Grants {
	return Grants{AgentMode: l[LabelAgentMode] == Allowed, AgentPrivateImages: l[LabelAgentPrivateImages] == Allowed, NodeWrites: l[LabelNodeWrites] == Allowed}
}

// KnownSockets are the CRI sockets an agent may mount without any setting:
// containerd's, k3s's, CRI-O's and cri-dockerd's.
var KnownSockets = []string{
	"/run/containerd/containerd.sock",
	"/run/k3s/containerd/containerd.sock",
	"/run/crio/crio.sock",
	"/run/cri-dockerd.sock",
}

// ImageStores are the image stores of the known sockets' runtimes: an
// agent mounts its runtime's read-only, to measure the image filesystem
// (statfs). What is in them the runtime's socket reaches already.
var ImageStores = map[string]string{
	"/run/containerd/containerd.sock":     "/var/lib/containerd",
	"/run/k3s/containerd/containerd.sock": "/var/lib/rancher/k3s/agent/containerd",
	"/run/crio/crio.sock":                 "/var/lib/containers/storage",
	"/run/cri-dockerd.sock":               "/var/lib/docker",
}

// Policy is what the installer and the cluster admin allow one puller.
type Policy struct {
	Grants Grants
	// ExtraSockets are socket paths allowed beyond KnownSockets, named by
	// whoever installs the controller (its --cri-socket-allow flag), never
	// by the configuration. A path with a $(NODE_NAME) folder allows the
	// folder above it to be mounted, each node seeing only its own folder:
	// it must hold nothing but runtime sockets.
	ExtraSockets []string
	// Runtimes are the nodes' status.nodeInfo.containerRuntimeVersion, to
	// choose the socket when CRI_SOCKET is empty.
	Runtimes []string
	// AgentImage is the controller's own image, by digest; "" when it is
	// not known, which refuses agent mode.
	AgentImage string
	// AgentImageProblem says why AgentImage is not known.
	AgentImageProblem string
}

// Refusal is one thing the configuration asked for and did not get.
type Refusal struct {
	Key, Value string
	// Missing says what would allow it.
	Missing string
}

func (r Refusal) String() string {
	return fmt.Sprintf("%s: value %q: %s", r.Key, r.Value, r.Missing)
}

// Message joins refusals into one line for an Event or a condition.
func Message(refusals []Refusal) string {
	parts := make([]string, len(refusals))
	for i, r := range refusals {
		parts[i] = r.String()
	}
	return strings.Join(parts, "; ")
}

// controlPlaneTaints are the taints that keep workloads off control-plane
// nodes: an agent there holds the runtime of the node that runs etcd and
// the API server.
var controlPlaneTaints = []string{"node-role.kubernetes.io/control-plane", "node-role.kubernetes.io/master"}

// Restrict returns the configuration in force for cfg under p: cfg less
// what p does not allow, and a Refusal for each thing left out. Agent mode
// refused means daemonset mode, which needs no privilege and keeps caching;
// node writes refused means neither the condition nor the taint. When agent
// mode stays, the result's CRISocket is the socket to mount (chosen from the
// nodes' runtimes when cfg left it empty). cfg itself is not changed.
func Restrict(cfg *config.Config, p Policy) (*config.Config, []Refusal) {
	out := *cfg
	var refused []Refusal
	if cfg.NodeCondition && !p.Grants.NodeWrites {
		refused = append(refused, Refusal{Key: config.KeyNodeCondition, Value: "true",
			Missing: fmt.Sprintf("node writes need the label %s=%s on the puller's Namespace, which only a cluster admin can set; the nodes are left alone", LabelNodeWrites, Allowed)})
		out.NodeCondition = false
	}
	if cfg.WarmNodeTaint != "" && !p.Grants.NodeWrites {
		refused = append(refused, Refusal{Key: config.KeyWarmNodeTaint, Value: cfg.WarmNodeTaint,
			Missing: fmt.Sprintf("removing a taint needs the label %s=%s on the puller's Namespace, which only a cluster admin can set; the pods do not tolerate it", LabelNodeWrites, Allowed)})
		out.WarmNodeTaint = ""
	}
	if cfg.CachingMode != config.ModeAgent {
		return &out, refused
	}
	daemonSetMode := "; caching stays in daemonset mode"
	refuseAgent := func(key, value, missing string) {
		refused = append(refused, Refusal{Key: key, Value: value, Missing: missing + daemonSetMode})
		out.CachingMode = config.ModeDaemonSet
	}
	if !p.Grants.AgentMode {
		refuseAgent(config.KeyCachingMode, config.ModeAgent,
			fmt.Sprintf("agent mode runs a root pod with the runtime's socket on every node and needs the label %s=%s on the puller's Namespace, which only a cluster admin can set", LabelAgentMode, Allowed))
		return &out, refused
	}
	if p.AgentImage == "" {
		refuseAgent(config.KeyCachingMode, config.ModeAgent, "the agent runs the controller's own image by digest, which is not known: "+p.AgentImageProblem)
		return &out, refused
	}
	if len(cfg.ImagePullSecrets) > 0 && !p.Grants.AgentPrivateImages {
		refuseAgent(config.KeyImagePullSecrets, strings.Join(cfg.ImagePullSecrets, ";"), fmt.Sprintf(
			"an image the agent pulls with a secret counts as preloaded on the node (KEP-2535), and while the kubelets keep imagePullCredentialsVerificationPolicy NeverVerifyPreloadedImages any pod there runs it without the secret; "+
				"the DaemonSet's containers are pulled by the kubelet, which checks each pod's credentials. A cluster admin whose kubelets run AlwaysVerify grants private images to agent mode with the label %s=%s on the puller's Namespace",
			LabelAgentPrivateImages, Allowed))
		return &out, refused
	}
	if t, ok := controlPlaneToleration(cfg.Tolerations); ok {
		refuseAgent(config.KeyTolerations, t,
			"in agent mode, no toleration of the control-plane taints "+strings.Join(controlPlaneTaints, ", ")+": an agent there would hold the runtime of the node that runs etcd and the API server")
		return &out, refused
	}
	socket := cfg.CRISocket
	if socket == "" {
		socket = SocketFor(p.Runtimes)
	}
	if !SocketAllowed(socket, p.ExtraSockets) {
		refuseAgent(config.KeyCRISocket, cfg.CRISocket, fmt.Sprintf("one of the known runtime sockets %s, or one the controller's installer allows with --cri-socket-allow",
			strings.Join(KnownSockets, ", ")))
		return &out, refused
	}
	out.CRISocket = socket
	return &out, refused
}

// controlPlaneToleration returns a toleration that lets a pod onto a
// control-plane node, printed, if there is one.
func controlPlaneToleration(ts []corev1.Toleration) (string, bool) {
	for _, t := range ts {
		if t.Effect != "" && t.Effect != corev1.TaintEffectNoSchedule {
			continue // the control-plane taints are NoSchedule
		}
		if (t.Key == "" && t.Operator == corev1.TolerationOpExists) || slices.Contains(controlPlaneTaints, t.Key) {
			return fmt.Sprintf("key %q operator %q effect %q", t.Key, t.Operator, t.Effect), true
		}
	}
	return "", false
}

// SocketAllowed tells whether an agent may mount socket: one of
// KnownSockets, or the socket of one of extra, exactly.
func SocketAllowed(socket string, extra []string) bool {
	if slices.Contains(KnownSockets, socket) {
		return true
	}
	for _, e := range extra {
		if s, _ := splitAllowed(e); s == socket {
			return true
		}
	}
	return false
}

// ImageStore is the image store of socket's runtime, which the agent
// mounts read-only to measure its filesystem: a known socket's, or the one
// the installer paired with an extra socket (SOCKET=STORE); "" for none.
func ImageStore(socket string, extra []string) string {
	if store, known := ImageStores[socket]; known {
		return store
	}
	for _, e := range extra {
		if s, store := splitAllowed(e); s == socket {
			return store
		}
	}
	return ""
}

// splitAllowed splits a --cri-socket-allow value, SOCKET or SOCKET=STORE.
func splitAllowed(value string) (socket, store string) {
	socket, store, _ = strings.Cut(value, "=")
	return socket, store
}

// CheckExtraSockets checks the installer's --cri-socket-allow values: each
// the path of a socket as CRI_SOCKET takes it, and a $(NODE_NAME) folder
// never directly under /run or /var/run, which hold far more than sockets;
// then, after an =, optionally the runtime's image store, an absolute
// folder with a $(NODE_NAME) folder where the socket has one.
func CheckExtraSockets(extra []string) error {
	for _, e := range extra {
		s, store := splitAllowed(e)
		if !config.ValidSocket(s) {
			return fmt.Errorf("--cri-socket-allow %q: the absolute, clean path of a runtime socket, such as /run/containerd/containerd.sock, where one folder may be $(NODE_NAME), then optionally =STORE, its runtime's image store", e)
		}
		prefix, _, named := config.SplitNodeSocket(s)
		if named && (prefix == "/run" || prefix == "/var/run") {
			return fmt.Errorf("--cri-socket-allow %q: the folder above $(NODE_NAME) is mounted, and %s holds far more than runtime sockets", e, prefix)
		}
		if !strings.Contains(e, "=") {
			continue
		}
		// A store is a folder where a socket is a file: the same rules,
		// with the node's name where the socket has it.
		mounted, _, storeNamed := config.SplitNodeSocket(store)
		if !storeNamed {
			mounted = store
		}
		if !config.ValidSocket(store) || storeNamed != named || underSystemFolder(mounted) {
			return fmt.Errorf("--cri-socket-allow %q: after =, the runtime's image store, an absolute, clean folder outside /run, /etc, /proc, /sys and /dev, with a $(NODE_NAME) folder exactly when the socket has one", e)
		}
	}
	return nil
}

// systemFolders hold the host's configuration, its sockets and its kernel's
// views: never an image store.
var systemFolders = []string{"/run", "/var/run", "/etc", "/proc", "/sys", "/dev"}

func underSystemFolder(p string) bool {
	return slices.ContainsFunc(systemFolders, func(f string) bool { return p == f || strings.HasPrefix(p, f+"/") })
}

// SocketFor chooses the known socket of the runtime most nodes report
// (containerRuntimeVersion such as containerd://2.1.0, cri-o://1.31.0,
// containerd://1.7.21-k3s1, docker://27.0.1); containerd's when no node is
// known. A node of another runtime gets an agent that cannot start (its
// socket is not there), which `kip status` names.
func SocketFor(runtimes []string) string {
	count := map[string]int{}
	for _, v := range runtimes {
		count[socketOf(v)]++
	}
	best := KnownSockets[0]
	keys := make([]string, 0, len(count))
	for k := range count {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if count[k] > count[best] {
			best = k
		}
	}
	return best
}

func socketOf(runtimeVersion string) string {
	kind, version, _ := strings.Cut(runtimeVersion, "://")
	switch {
	case kind == "containerd" && strings.Contains(version, "k3s"):
		return KnownSockets[1]
	case kind == "cri-o":
		return KnownSockets[2]
	case kind == "docker":
		return KnownSockets[3]
	default:
		return KnownSockets[0]
	}
}

// ImageByDigest is image pinned to the digest the runtime reported for it
// (a container status's imageID, such as
// registry.example.com/kip@sha256:..., or docker-pullable://...): the
// agent runs exactly the code the controller runs.
func ImageByDigest(image, imageID string) (string, error) {
	ref, err := name.ParseReference(image, name.WeakValidation)
	if err != nil {
		return "", fmt.Errorf("the controller's image %q: %w", image, err)
	}
	if d, ok := ref.(name.Digest); ok {
		return d.String(), nil
	}
	_, digest, found := strings.Cut(imageID, "@")
	if !found {
		digest = strings.TrimPrefix(imageID, "sha256:")
		if len(digest) != 64 || strings.Contains(imageID, "/") {
			return "", fmt.Errorf("the runtime reported no digest for the controller's image %q (imageID %q)", image, imageID)
		}
		// A bare image ID is the config's digest, not the manifest's: it
		// cannot be pulled by.
		return "", fmt.Errorf("the runtime reported only an image ID for the controller's image %q (%q), not a repository digest", image, imageID)
	}
	d, err := name.NewDigest(ref.Context().String()+"@"+digest, name.WeakValidation)
	if err != nil {
		return "", fmt.Errorf("the controller's image %q with digest %q: %w", image, digest, err)
	}
	return d.String(), nil
}
