// Package status tells, for every node and every configured image, whether
// the image is cached there, from what the kubelets report: the puller's
// DaemonSet, its pods and the nodes. It is pure (no client), and shared by
// `kip status`, the controller's Events and metrics.
package status

import (
	"fmt"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	corev1helpers "k8s.io/component-helpers/scheduling/corev1"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"
	"k8s.io/klog/v2"

	"github.com/kip-image-puller/kip/internal/daemonset"
	"github.com/kip-image-puller/kip/internal/nodewarm"
)

// State is what a node says about one image.
type State string

const (
	// Cached means a running container holds the image on the node.
	Cached State = "Cached"
	// Pulling means the pod is on the node and the image is on its way.
	Pulling State = "Pulling"
	// Failed means the image cannot be pulled or run there; Reason says why.
	Failed State = "Failed"
	// Pending means the node should hold the image but has no pod for it yet
	// (not scheduled, not created, or an older pod still rolling).
	Pending State = "Pending"
	// NotSelected means the node is not one the DaemonSet runs on.
	NotSelected State = "NotSelected"
)

// Image is one configured image: its container name and reference.
type Image struct {
	Name string `json:"name"`
	Ref  string `json:"image"`
}

// Cell is the state of one image on one node.
type Cell struct {
	State State `json:"state"`
	// PullSeconds is how long the pull took, where the agent measured it
	// (agent mode); 0 when unknown or already held.
	PullSeconds float64 `json:"pullSeconds,omitempty"`
	// Digest is the image ID the node reports for a cached image.
	Digest string `json:"digest,omitempty"`
	// Reason is the kubelet's reason for a failure (ErrImagePull,
	// ImagePullBackOff, InvalidImageName, CreateContainerError, ...).
	Reason string `json:"reason,omitempty"`
	// Message is the runtime's message, as the kubelet reports it.
	Message string `json:"message,omitempty"`
	// Since is when the container holding a cached image started.
	Since *time.Time `json:"since,omitempty"`
}

// Node is one node's row.
type Node struct {
	Name     string `json:"name"`
	Selected bool   `json:"selected"`
	Ready    bool   `json:"ready"`
	Cordoned bool   `json:"cordoned"`
	// WarmingTaint: the node carries WARM_NODE_TAINT, which goes once it
	// is warm (or WARM_NODE_TIMEOUT passed).
	WarmingTaint bool   `json:"warmingTaint,omitempty"`
	Pod          string `json:"pod,omitempty"`
	// Agent is what the node's agent says of its runtime, in agent mode.
	Agent *AgentNode `json:"agent,omitempty"`
	// KubeletBytes adds up, in daemonset mode, the sizes of the configured
	// images as the node's kubelet lists them in its status (its largest
	// images, 50 by default); 0 where the node object carries no list (the
	// controller's cache drops it).
	KubeletBytes int64 `json:"kubeletBytes,omitempty"`
	// Images maps an image name to its cell.
	Images map[string]Cell `json:"images"`
}

// Warm tells whether the node is selected and holds every image.
func (n Node) Warm() bool {
	if !n.Selected {
		return false
	}
	for _, c := range n.Images {
		if c.State != Cached {
			return false
		}
	}
	return true
}

// Failure names one image failing on one node.
type Failure struct {
	Node    string `json:"node"`
	Image   string `json:"image"`
	Reason  string `json:"reason"`
	Message string `json:"message,omitempty"`
}

// Summary is the cluster at a glance.
type Summary struct {
	NodesSelected int `json:"nodesSelected"`
	NodesWarm     int `json:"nodesWarm"`
	// NodesTainted counts the selected nodes that still carry
	// WARM_NODE_TAINT: kept from workloads while they warm.
	NodesTainted int `json:"nodesTainted,omitempty"`
	ImagesWanted int `json:"imagesWanted"`
	ImagesCached int `json:"imagesCached"`
	// Failing lists image failures on nodes that are Ready and not cordoned.
	Failing []Failure `json:"failing,omitempty"`
	// WarmSince is when the last node became fully warm, once all are.
	WarmSince *time.Time `json:"warmSince,omitempty"`
}

// Complete tells whether every selected node holds every image.
func (s Summary) Complete() bool {
	return s.NodesSelected > 0 && s.NodesWarm == s.NodesSelected
}

// Report is the per-node x per-image status of one puller.
type Report struct {
	DaemonSet string  `json:"daemonSet"`
	Namespace string  `json:"namespace"`
	Images    []Image `json:"images"`
	Nodes     []Node  `json:"nodes"`
	Summary   Summary `json:"summary"`
	// InvalidEntries are the configured IMAGES entries left out because
	// they are invalid, each with what is wrong; the others are cached.
	InvalidEntries []string `json:"invalidEntries,omitempty"`
}

// Waiting reasons of the kubelet that mean the image will not come by
// itself; the others (ContainerCreating, PodInitializing) mean it is coming.
var failureReasons = map[string]bool{
	"ErrImagePull":               true,
	"ImagePullBackOff":           true,
	"InvalidImageName":           true,
	"ErrImageNeverPull":          true,
	"RegistryUnavailable":        true,
	"SignatureValidationFailed":  true,
	"CreateContainerError":       true,
	"CreateContainerConfigError": true,
	"RunContainerError":          true,
	"CrashLoopBackOff":           true,
	"PreCreateHookError":         true,
	"PreStartHookError":          true,
}

// Compute builds the report of ds from its pods and the cluster's nodes.
// Pods that ds does not own, and pods on nodes that no longer exist, are
// ignored.
func Compute(ds *appsv1.DaemonSet, pods []corev1.Pod, nodes []corev1.Node) Report {
	r := Report{DaemonSet: ds.Name, Namespace: ds.Namespace}
	agentMode := daemonset.IsAgents(ds)
	if agentMode {
		// The controller wrote the annotation: unreadable, it lists nothing.
		agentImages, _ := daemonset.AgentImages(ds)
		for _, img := range agentImages {
			r.Images = append(r.Images, Image{Name: img.Name, Ref: img.Ref})
		}
	} else {
		for _, c := range ds.Spec.Template.Spec.Containers {
			r.Images = append(r.Images, Image{Name: c.Name, Ref: c.Image})
		}
	}
	podOn := podsByNode(ds, pods)
	// The controller wrote the annotation: unreadable, it names no taint.
	settings, _ := nodewarm.DecodeSettings(ds.Annotations[nodewarm.AnnotationSettings])
	taint := settings.Taint
	sorted := append([]corev1.Node(nil), nodes...)
	slices.SortFunc(sorted, func(a, b corev1.Node) int { return strings.Compare(a.Name, b.Name) })

	var lastWarm time.Time
	prints := refPrints{}
	var kubeletNames map[string]bool // daemonset mode's only
	if !agentMode {
		kubeletNames = kubeletNamesOf(r.Images)
	}
	for i := range sorted {
		node := &sorted[i]
		n := Node{
			Name:     node.Name,
			Selected: Selects(&ds.Spec.Template.Spec, node),
			Ready:    NodeReady(node),
			Cordoned: node.Spec.Unschedulable,
			Images:   map[string]Cell{},
		}
		n.WarmingTaint = taint != "" && nodewarm.HasTaint(node, taint)
		pod := podOn[node.Name]
		var facts podFacts
		var agent agentFacts
		if pod != nil {
			n.Pod = pod.Name
			n.Selected = true // a pod runs there: the DaemonSet controller chose it
			facts = factsOf(pod)
			if agentMode {
				agent = agentFactsOf(pod)
				n.Agent = agent.node()
			}
		}
		if n.Selected && !agentMode {
			n.KubeletBytes = kubeletBytes(node, kubeletNames)
		}
		for _, img := range r.Images {
			switch {
			case !n.Selected:
				n.Images[img.Name] = Cell{State: NotSelected}
			case pod == nil:
				n.Images[img.Name] = Cell{State: Pending, Reason: "NoPod"}
			case agentMode:
				n.Images[img.Name] = agentCell(facts, agent, img, prints)
			default:
				n.Images[img.Name] = cellOf(facts, img)
			}
		}
		if n.Selected {
			r.Summary.NodesSelected++
			if n.WarmingTaint {
				r.Summary.NodesTainted++
			}
			r.Summary.ImagesWanted += len(r.Images)
			counts := n.Ready && !n.Cordoned
			for _, img := range r.Images {
				c := n.Images[img.Name]
				switch {
				case c.State == Cached:
					r.Summary.ImagesCached++
				case c.State == Failed && counts:
					r.Summary.Failing = append(r.Summary.Failing, Failure{Node: n.Name, Image: img.Name, Reason: c.Reason, Message: c.Message})
				}
			}
			if n.Warm() {
				r.Summary.NodesWarm++
				if t := warmSince(n); t.After(lastWarm) {
					lastWarm = t
				}
			}
		}
		r.Nodes = append(r.Nodes, n)
	}
	if r.Summary.Complete() && !lastWarm.IsZero() {
		r.Summary.WarmSince = &lastWarm
	}
	return r
}

// podsByNode picks, per node, the newest pod of ds.
func podsByNode(ds *appsv1.DaemonSet, pods []corev1.Pod) map[string]*corev1.Pod {
	out := map[string]*corev1.Pod{}
	for i := range pods {
		p := &pods[i]
		if !ownedBy(p, ds) || p.Spec.NodeName == "" || p.DeletionTimestamp != nil {
			continue
		}
		if cur, ok := out[p.Spec.NodeName]; !ok || p.CreationTimestamp.After(cur.CreationTimestamp.Time) {
			out[p.Spec.NodeName] = p
		}
	}
	return out
}

func ownedBy(p *corev1.Pod, ds *appsv1.DaemonSet) bool {
	for _, o := range p.OwnerReferences {
		if o.Kind == "DaemonSet" && o.Name == ds.Name && (ds.UID == "" || o.UID == ds.UID) {
			return true
		}
	}
	return false
}

// Selects tells whether pods of spec belong on node: node selector,
// required node affinity and taints, as the scheduler checks them.
func Selects(spec *corev1.PodSpec, node *corev1.Node) bool {
	pod := &corev1.Pod{Spec: *spec}
	if ok, _ := nodeaffinity.GetRequiredNodeAffinity(pod).Match(node); !ok {
		return false
	}
	_, untolerated := corev1helpers.FindMatchingUntoleratedTaint(klog.Background(), node.Spec.Taints, spec.Tolerations, func(t *corev1.Taint) bool {
		return t.Effect == corev1.TaintEffectNoSchedule || t.Effect == corev1.TaintEffectNoExecute
	}, false)
	return !untolerated
}

// NodeReady tells whether the node's Ready condition is True.
func NodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// cellOf reads one image's state from its pod's facts.
func cellOf(f podFacts, img Image) Cell {
	// A pod of an older template that runs another image under this name
	// is about to be replaced: the wanted image is not there yet.
	if image, ok := f.images[img.Name]; ok && image != img.Ref {
		return Cell{State: Pending, Reason: "Rollout"}
	}
	// The images are pulled only after the init container has installed the sleeper.
	for _, c := range f.init {
		if cell, failed := containerFailure(c, "Init:"); failed {
			return cell
		}
	}
	if c, ok := f.containers[img.Name]; ok {
		switch {
		case c.state == 'R':
			since := c.started
			return Cell{State: Cached, Digest: c.imageID, Since: &since}
		case c.state == 'W' && failureReasons[c.reason]:
			return Cell{State: Failed, Reason: c.reason, Message: c.message}
		case c.state == 'T' && c.exitCode != 0:
			return Cell{State: Failed, Reason: orDefault(c.reason, "Error"), Message: c.message}
		}
		return Cell{State: Pulling}
	}
	if f.pending {
		return Cell{State: Pulling}
	}
	return Cell{State: Pending, Reason: "NoStatus"}
}

// containerFailure is the Failed cell of a container that will not run by
// itself (a waiting reason that does not pass, or an exit with an error),
// its reason prefixed by whose container it is.
func containerFailure(c containerFact, prefix string) (Cell, bool) {
	if c.state == 'W' && failureReasons[c.reason] {
		return Cell{State: Failed, Reason: prefix + c.reason, Message: c.message}, true
	}
	if c.state == 'T' && c.exitCode != 0 {
		return Cell{State: Failed, Reason: prefix + orDefault(c.reason, "Error"), Message: c.message}, true
	}
	return Cell{}, false
}

func warmSince(n Node) time.Time {
	var last time.Time
	for _, c := range n.Images {
		if c.Since != nil && c.Since.After(last) {
			last = *c.Since
		}
	}
	return last
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// maxMessage bounds a runtime message in the one-line summary. Runtime
// messages chain their causes, the root cause last, so the end is kept.
const maxMessage = 80

// Line is the one-line summary, for example
// "27/30 images cached on 3/3 nodes (2 warm); 1 failing: app7 on node2 (ImagePullBackOff: 401 Unauthorized)".
func (r Report) Line() string {
	s := r.Summary
	ready := 0
	for _, n := range r.Nodes {
		if n.Selected && n.Ready {
			ready++
		}
	}
	line := fmt.Sprintf("%d/%d images cached on %d/%d nodes (%d warm)", s.ImagesCached, s.ImagesWanted, ready, s.NodesSelected, s.NodesWarm)
	if s.NodesTainted > 0 {
		line += fmt.Sprintf(", %d tainted while warming", s.NodesTainted)
	}
	if len(s.Failing) == 0 {
		return line
	}
	var parts []string
	for _, f := range s.Failing {
		why := f.Reason
		if msg := strings.TrimSpace(f.Message); msg != "" {
			if len(msg) > maxMessage {
				msg = "..." + msg[len(msg)-maxMessage:]
			}
			why += ": " + msg
		}
		parts = append(parts, fmt.Sprintf("%s on %s (%s)", f.Image, f.Node, why))
	}
	return fmt.Sprintf("%s; %d failing: %s", line, len(s.Failing), strings.Join(parts, ", "))
}

// kubeletNamesOf are the names a kubelet may give the configured images
// in its node's status: as configured, and Docker Hub's in full.
func kubeletNamesOf(images []Image) map[string]bool {
	names := map[string]bool{}
	for _, img := range images {
		names[img.Ref] = true
		if !strings.Contains(strings.SplitN(img.Ref, "/", 2)[0], ".") {
			names["docker.io/"+img.Ref] = true
			names["docker.io/library/"+img.Ref] = true
		}
	}
	return names
}

// kubeletBytes adds up the sizes the node's status gives the images that
// names (kubeletNamesOf) names, each image once.
func kubeletBytes(node *corev1.Node, names map[string]bool) int64 {
	var total int64
	for _, ci := range node.Status.Images {
		if slices.ContainsFunc(ci.Names, func(n string) bool { return names[n] }) {
			total += ci.SizeBytes
		}
	}
	return total
}
