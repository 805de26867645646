//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	imagesapi "github.com/containerd/containerd/api/services/images/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kip-image-puller/kip/internal/agent"
	"github.com/kip-image-puller/kip/internal/config"
	"github.com/kip-image-puller/kip/internal/daemonset"
	"github.com/kip-image-puller/kip/internal/dev/cri"
	"github.com/kip-image-puller/kip/internal/privilege"
	"github.com/kip-image-puller/kip/internal/status"
)

// agentStatus reads `kip status -o json` until cond holds.
func agentStatus(t *testing.T, ns, what string, cond func(status.Report) (bool, string)) status.Report {
	t.Helper()
	var r status.Report
	eventually(t, 3*time.Minute, what, func() (bool, string) {
		out, code := kipStatus(t, ns, "-o", "json")
		r = status.Report{}
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			return false, fmt.Sprintf("exit %d: %v", code, err)
		}
		return cond(r)
	})
	return r
}

// TestAgentMode installs the puller with CACHING_MODE=agent: every node
// holds every image, pulled through its CRI, a private one with its pull
// secret while a broken secret is named and left out; a missing image is
// named per node with the runtime's reason; node3's containerd 2 pins every
// image, and on Debian's 1.6.20 the status says the images are not pinned
// and why; an image removed from a node's runtime comes back by itself.
func TestAgentMode(t *testing.T) {
	// Granted private images too: a cluster admin whose kubelets verify
	// every image's credentials (AlwaysVerify) would grant it.
	ns := namespaceAt(t, "privileged", privilege.LabelAgentPrivateImages)
	entries := append(pushSamples(t, "agent", 2, false), pushSamples(t, "private", 1, true)...)
	createPullSecret(t, ns, "regcred")
	// Not a pull secret: the API server refuses a malformed one.
	broken := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "broken", Namespace: ns}, Data: map[string][]byte{"password": []byte("x")}}
	if err := cluster.c.Create(t.Context(), broken); err != nil {
		t.Fatal(err)
	}
	missing := "missing=" + cluster.Registry + "/e2e/not-pushed:v1"
	pinning := pinningNodes(t)
	install(t, ns, map[string]string{
		"IMAGES": strings.Join(append(append([]string{}, entries...), missing), ";"), "CACHING_MODE": "agent",
		"CRI_SOCKET": cluster.SocketPattern(), "HEAL_INTERVAL": "10s", "IMAGE_PULL_SECRETS": "broken;regcred",
	})
	waitCached(t, entries, cluster.Nodes, nil)
	r := agentStatus(t, ns, "kip status: the images Cached, the missing one Failed, on every node", func(r status.Report) (bool, string) {
		if r.DaemonSet != dsName+config.AgentSuffix || len(r.Nodes) != len(cluster.Nodes) {
			return false, fmt.Sprintf("DaemonSet %q, %d nodes", r.DaemonSet, len(r.Nodes))
		}
		for _, n := range r.Nodes {
			for name, c := range n.Images {
				want := status.Cached
				if name == "missing" {
					want = status.Failed
				}
				if c.State != want {
					return false, fmt.Sprintf("%s: %s is %s", n.Name, name, c.State)
				}
			}
			if n.Agent == nil {
				return false, n.Name + ": no agent report"
			}
			if len(n.Agent.SecretProblems) != 1 || !strings.HasPrefix(n.Agent.SecretProblems[0], "broken: ") {
				return false, fmt.Sprintf("%s: secret problems %v, want the broken one named", n.Name, n.Agent.SecretProblems)
			}
			// The CRI shows a pin a moment after containerd took it: the
			// agent reports it then, at its next look (HEAL_INTERVAL).
			if slices.Contains(pinning, n.Name) && n.Agent.Pinning != "" {
				return false, fmt.Sprintf("%s: %s", n.Name, n.Agent.Pinning)
			}
		}
		return len(r.Summary.Failing) == len(cluster.Nodes), r.Line()
	})
	for _, f := range r.Summary.Failing {
		if f.Image != "missing" || !strings.Contains(f.Message, "not found") {
			t.Errorf("failing %+v: want the missing image, with the runtime's reason", f)
		}
	}
	for _, n := range r.Nodes {
		if slices.Contains(pinning, n.Name) {
			if !strings.HasPrefix(n.Agent.Runtime, "containerd 2.") || n.Agent.Pinning != "" {
				t.Errorf("%s: agent %+v: want containerd 2, every image pinned", n.Name, *n.Agent)
			}
			continue
		}
		if !strings.HasPrefix(n.Agent.Runtime, "containerd 1.6.20") || !strings.Contains(n.Agent.Pinning, "1.6.22+") {
			t.Errorf("%s: agent %+v: want containerd 1.6.20 named, and why it does not pin", n.Name, *n.Agent)
		}
	}
	// Through each node's CRI, as `crictl images --pinned` shows it.
	for _, node := range cluster.Nodes {
		pinned := pinnedOn(t, node)
		for _, ref := range refsOf(entries) {
			if want := slices.Contains(pinning, node); pinned[ref] != want {
				t.Errorf("%s: %s pinned %v, want %v", node, ref, pinned[ref], want)
			}
		}
	}
	// Another tool pins the image that leaves IMAGES later, on one node,
	// by another of its names: kip's unpin must leave that pin in place.
	leaves := refsOf(entries[1:2])[0]
	foreignPin(t, pinning[0], leaves)
	table, _ := kipStatus(t, ns)
	t.Logf("kip status, agent mode:\n%s", table)
	var sleeping appsv1.DaemonSet
	if err := cluster.c.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: dsName}, &sleeping); err == nil {
		t.Errorf("agent mode runs the DaemonSet of sleeping containers too")
	}

	// Healing: an image removed from node1's runtime is pulled again.
	c, err := cri.Dial(cluster.Socket("node1"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	lost := refsOf(entries[:1])
	if err := c.RemoveImages(context.Background(), lost); err != nil {
		t.Fatal(err)
	}
	removed := time.Now()
	if err := cluster.WaitCached(context.Background(), []string{"node1"}, lost, time.Minute); err != nil {
		t.Fatal(err)
	}
	t.Logf("the image removed from node1 was back after %s (HEAL_INTERVAL=10s)", time.Since(removed).Round(time.Second))
	agentStatus(t, ns, "node1's agent counts the heal", func(r status.Report) (bool, string) {
		for _, n := range r.Nodes {
			if n.Name == "node1" && n.Agent != nil {
				return n.Agent.Heals >= 1, fmt.Sprintf("heals %d", n.Agent.Heals)
			}
		}
		return false, "no node1"
	})

	// A new list reaches the running agents: no restart, the new image
	// pulled and pinned, the pin of the image that left released.
	pods := agentPods(t, ns)
	fresh := pushSamples(t, "agentnew", 1, false)
	kept := []string{entries[0], entries[2]}
	start := time.Now()
	patchConfigMap(t, ns, map[string]string{"IMAGES": strings.Join(append(append([]string{}, kept...), fresh...), ";")})
	waitCached(t, fresh, cluster.Nodes, nil)
	t.Logf("a new image in IMAGES was on every node %s after the ConfigMap changed, with the agents running on", time.Since(start).Round(100*time.Millisecond))
	agentStatus(t, ns, "kip status: the new list cached everywhere, nothing failing", func(r status.Report) (bool, string) {
		return r.Summary.ImagesCached == r.Summary.ImagesWanted && r.Summary.ImagesWanted == 3*len(cluster.Nodes) && len(r.Summary.Failing) == 0, r.Line()
	})
	if after := agentPods(t, ns); !slices.Equal(podUIDs(after), podUIDs(pods)) || restarts(after) != restarts(pods) {
		t.Errorf("the agents restarted for a new list: pods %v -> %v, restarts %d -> %d", podUIDs(pods), podUIDs(after), restarts(pods), restarts(after))
	}
	for _, node := range pinning {
		eventually(t, time.Minute, node+": the new image pinned, the one that left unpinned", func() (bool, string) {
			pinned := pinnedOn(t, node)
			for _, ref := range refsOf(append(kept, fresh...)) {
				if !pinned[ref] {
					return false, ref + " not pinned"
				}
			}
			if node == pinning[0] {
				return pinned[leaves], leaves + ": the other tool's pin was removed"
			}
			return !pinned[leaves], leaves + " still pinned"
		})
	}
}

// foreignPin pins the image ref names on node by its digest name
// (repo@sha256:...), as another tool would (`ctr -n k8s.io images label
// REF io.cri-containerd.pinned=pinned`), through containerd's images API on
// the node's socket. The image is pinned by kip already: a kip that
// labelled every name of an image would have marked that name as its own,
// and its unpin would remove this pin.
func foreignPin(t *testing.T, node, ref string) {
	t.Helper()
	conn, err := grpc.NewClient("unix://"+cluster.Socket(node), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	ctx := metadata.AppendToOutgoingContext(t.Context(), "containerd-namespace", agent.CRINamespace)
	images := imagesapi.NewImagesClient(conn)
	got, err := images.Get(ctx, &imagesapi.GetImageRequest{Name: ref})
	if err != nil {
		t.Fatalf("%s: %s: %v", node, ref, err)
	}
	digest := got.GetImage().GetTarget().GetDigest()
	list, err := images.List(ctx, &imagesapi.ListImagesRequest{Filters: []string{"target.digest==" + digest}})
	if err != nil {
		t.Fatal(err)
	}
	var img *imagesapi.Image // whole: containerd 2.4 fails on an update without the target
	for _, i := range list.GetImages() {
		if strings.HasSuffix(i.GetName(), "@"+digest) {
			img = i
		}
	}
	if img == nil {
		t.Fatalf("%s: no digest name of %s among %d records", node, ref, len(list.GetImages()))
	}
	if img.Labels[agent.PinnedByLabel] != "" {
		t.Fatalf("%s: kip marked %s, a name it did not configure, as pinned by kip", node, img.GetName())
	}
	if img.Labels == nil {
		img.Labels = map[string]string{}
	}
	img.Labels[agent.PinLabel] = agent.PinValue
	if _, err := images.Update(ctx, &imagesapi.UpdateImageRequest{
		Image: img, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"labels." + agent.PinLabel}},
	}); err != nil {
		t.Fatalf("%s: pin %s as another tool: %v", node, img.GetName(), err)
	}
	if !pinnedOn(t, node)[ref] {
		t.Fatalf("%s: %s not pinned after the other tool's label", node, ref)
	}
}

// agentPods are the agents' pods in ns.
func agentPods(t *testing.T, ns string) []corev1.Pod {
	t.Helper()
	var pods corev1.PodList
	if err := cluster.c.List(context.Background(), &pods, client.InNamespace(ns),
		client.MatchingLabels{"app.kubernetes.io/instance": dsName + config.AgentSuffix, "app.kubernetes.io/component": daemonset.AgentComponent}); err != nil {
		t.Fatal(err)
	}
	return pods.Items
}

// restarts sums the pods' container restarts.
func restarts(pods []corev1.Pod) int32 {
	var n int32
	for _, p := range pods {
		for _, c := range p.Status.ContainerStatuses {
			n += c.RestartCount
		}
	}
	return n
}

// TestMaxNodesPullingOne: with MAX_NODES_PULLING=1 the nodes take turns:
// the windows in which each node's agent pulled (from its report: each
// pull's end and duration) do not overlap.
func TestMaxNodesPullingOne(t *testing.T) {
	ns := namespaceAt(t, "privileged")
	entries := pushSamples(t, "turns", 4, false)
	install(t, ns, map[string]string{"IMAGES": strings.Join(entries, ";"), "CACHING_MODE": "agent",
		"CRI_SOCKET": cluster.SocketPattern(), "MAX_NODES_PULLING": "1"})
	waitCached(t, entries, cluster.Nodes, nil)
	r := agentStatus(t, ns, "every node's agent reports its pulls", func(r status.Report) (bool, string) {
		return r.Summary.Complete() && len(r.Nodes) == len(cluster.Nodes), r.Line()
	})
	type window struct {
		node       string
		start, end time.Time
	}
	var windows []window
	for _, n := range r.Nodes {
		w := window{node: n.Name}
		for img, c := range n.Images {
			if c.Since == nil || c.PullSeconds <= 0 {
				t.Fatalf("%s: %s has no pull measured: %+v", n.Name, img, c)
			}
			start := c.Since.Add(-time.Duration(c.PullSeconds * float64(time.Second)))
			if w.start.IsZero() || start.Before(w.start) {
				w.start = start
			}
			if c.Since.After(w.end) {
				w.end = *c.Since
			}
		}
		windows = append(windows, w)
	}
	slices.SortFunc(windows, func(a, b window) int { return a.start.Compare(b.start) })
	for i := 1; i < len(windows); i++ {
		if windows[i].start.Before(windows[i-1].end) {
			t.Errorf("%s pulled from %s while %s pulled until %s", windows[i].node, windows[i].start.Format("15:04:05.000"), windows[i-1].node, windows[i-1].end.Format("15:04:05.000"))
		}
	}
	for _, w := range windows {
		t.Logf("%s pulled from %s to %s", w.node, w.start.Format("15:04:05.000"), w.end.Format("15:04:05.000"))
	}
}

// pinningNodes are the nodes whose runtime honours the pin label.
func pinningNodes(t *testing.T) []string {
	t.Helper()
	if len(cluster.PinningNodes) == 0 {
		t.Fatal("no node of the local cluster runs containerd 2: bring it up with CONTAINERD2_NODES=3 (the e2e harness does, unless KIP_E2E_REUSE keeps a cluster without)")
	}
	return cluster.PinningNodes
}

// pinnedOn reads, through node's CRI, the references of its pinned images.
func pinnedOn(t *testing.T, node string) map[string]bool {
	t.Helper()
	c, err := cri.Dial(cluster.Socket(node))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	_, pinned, err := c.HeldAndPinned(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return pinned
}

// TestPinnedImagesSurviveImageGC: on a node whose runtime pins, the images
// agent mode pinned survive the kubelet's real image garbage collection,
// which removes an unused, unpinned control image on the same node. (The
// kubelet runs under disk pressure for the test: its eviction manager then
// frees unused images within seconds, by the same rule as the periodic GC.)
func TestPinnedImagesSurviveImageGC(t *testing.T) {
	node := pinningNodes(t)[0]
	var num string
	if _, err := fmt.Sscanf(node, "node%s", &num); err != nil {
		t.Fatal(err)
	}
	ns := namespaceAt(t, "privileged")
	entries := pushSamples(t, "kept", 2, false)
	install(t, ns, map[string]string{"IMAGES": strings.Join(entries, ";"), "CACHING_MODE": "agent", "CRI_SOCKET": cluster.SocketPattern()})
	waitCached(t, entries, cluster.Nodes, nil)
	eventually(t, time.Minute, "the images pinned on "+node, func() (bool, string) {
		pinned := pinnedOn(t, node)
		for _, ref := range refsOf(entries) {
			if !pinned[ref] {
				return false, ref + " not pinned yet"
			}
		}
		return true, ""
	})
	control := refsOf(pushSamples(t, "control", 1, false))
	c, err := cri.Dial(cluster.Socket(node))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	pull(t, c, control)

	t.Cleanup(func() {
		if err := sh(cluster.root, "hack/cluster.sh", "restart-kubelet", num); err != nil {
			t.Errorf("restore %s's kubelet: %v", node, err)
		}
	})
	if err := sh(cluster.root, "hack/cluster.sh", "restart-kubelet", num, "gc"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	eventually(t, 2*time.Minute, "the kubelet's image GC removes the unpinned control image from "+node, func() (bool, string) {
		held, err := c.ImageRefs(context.Background())
		if err != nil {
			return false, err.Error()
		}
		return !cri.Has(held, control[0]), control[0] + " still held"
	})
	t.Logf("the kubelet removed the unpinned control image from %s after %s", node, time.Since(start).Round(time.Second))
	held, pinned, err := c.HeldAndPinned(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, ref := range refsOf(entries) {
		if !held[ref] || !pinned[ref] {
			t.Errorf("%s after the image GC: held %v, pinned %v", ref, held[ref], pinned[ref])
		}
	}
}

// TestModeSwitchKeepsEveryImage switches daemonset -> agent -> daemonset
// mode and checks, twice a second throughout, through each node's CRI that
// every node holds every image, and that one of the two DaemonSets is ready
// on every node: the new mode holds the images before the old one lets go.
// Back in daemonset mode, nothing stays pinned.
func TestModeSwitchKeepsEveryImage(t *testing.T) {
	ns := namespaceAt(t, "privileged")
	entries := pushSamples(t, "switch", 2, false)
	images := strings.Join(entries, ";")
	install(t, ns, map[string]string{"IMAGES": images, "CRI_SOCKET": cluster.SocketPattern()})
	waitRolledOut(t, ns, len(cluster.Nodes))
	waitCached(t, entries, cluster.Nodes, nil)

	ctx, stop := context.WithCancel(context.Background())
	var mu sync.Mutex
	var gaps []string
	checks := 0
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			problem := protectionGap(ctx, ns, refsOf(entries))
			mu.Lock()
			checks++
			if problem != "" {
				gaps = append(gaps, time.Now().Format("15:04:05.000")+" "+problem)
			}
			mu.Unlock()
			select {
			case <-ctx.Done():
			case <-time.After(500 * time.Millisecond):
			}
		}
	}()
	for _, mode := range []string{config.ModeAgent, config.ModeDaemonSet} {
		start := time.Now()
		patchConfigMap(t, ns, map[string]string{"CACHING_MODE": mode})
		active, retired := config.ActiveDaemonSetName(dsName, mode), dsName
		if mode == config.ModeDaemonSet {
			retired = dsName + config.AgentSuffix
		}
		eventually(t, 3*time.Minute, "the "+mode+" DaemonSet ready and the other one retired", func() (bool, string) {
			var ds appsv1.DaemonSet
			if err := cluster.c.Get(ctx, types.NamespacedName{Namespace: ns, Name: active}, &ds); err != nil {
				return false, err.Error()
			}
			if !daemonset.RolledOut(&ds) {
				return false, fmt.Sprintf("%s: %+v", active, ds.Status)
			}
			err := cluster.c.Get(ctx, types.NamespacedName{Namespace: ns, Name: retired}, &appsv1.DaemonSet{})
			return err != nil && strings.Contains(err.Error(), "not found"), fmt.Sprintf("%s: %v", retired, err)
		})
		t.Logf("switched to %s mode in %s", mode, time.Since(start).Round(time.Second))
	}
	stop()
	<-done
	mu.Lock()
	defer mu.Unlock()
	if len(gaps) > 0 {
		t.Errorf("%d of %d checks found a gap in the protection: %v", len(gaps), checks, gaps)
	}
	t.Logf("%d checks of every node's runtime and of the DaemonSets during the two switches: no gap", checks)

	// Back in daemonset mode, the sleeping containers hold the images: the
	// agents, removed with their DaemonSet, unpinned what they had pinned.
	for _, node := range pinningNodes(t) {
		eventually(t, time.Minute, node+": nothing pinned once the agents are gone", func() (bool, string) {
			pinned := pinnedOn(t, node)
			for _, ref := range refsOf(entries) {
				if pinned[ref] {
					return false, ref + " still pinned"
				}
			}
			return true, ""
		})
	}
}

// protectionGap says what is missing, at this moment, for every node to hold
// every image under protection: "" when nothing is.
func protectionGap(ctx context.Context, ns string, refs []string) string {
	held, err := cluster.NodeImages(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return "" // the check ended
		}
		return "node images: " + err.Error()
	}
	for _, node := range cluster.Nodes {
		for _, ref := range refs {
			if !cri.Has(held[node], ref) {
				return node + " lacks " + ref
			}
		}
	}
	ready := 0
	for _, name := range []string{dsName, dsName + config.AgentSuffix} {
		var ds appsv1.DaemonSet
		if err := cluster.c.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &ds); err == nil &&
			int(ds.Status.NumberReady) == len(cluster.Nodes) && ds.Status.DesiredNumberScheduled == ds.Status.NumberReady {
			ready++
		}
	}
	if ready == 0 && ctx.Err() == nil {
		return "no DaemonSet ready on every node"
	}
	return ""
}

// TestRefusedPodsAreNamed: pods that admission refuses are named, in both
// modes: agent mode in a namespace that enforces the restricted Pod
// Security Standard (the agent needs a hostPath), and daemonset mode under
// a ResourceQuota with no room for its pods. kip status says FailedCreate,
// with the admission's message, on every node.
func TestRefusedPodsAreNamed(t *testing.T) {
	refused := func(t *testing.T, ns, want string) {
		t.Helper()
		r := agentStatus(t, ns, "kip status names the refusal on every node", func(r status.Report) (bool, string) {
			for _, n := range r.Nodes {
				for img, c := range n.Images {
					if c.State != status.Failed || c.Reason != status.ReasonFailedCreate || !strings.Contains(c.Message, want) {
						return false, fmt.Sprintf("%s: %s: %+v", n.Name, img, c)
					}
				}
			}
			return len(r.Nodes) == len(cluster.Nodes) && len(r.Summary.Failing) > 0, r.Line()
		})
		t.Logf("%s", r.Line())
	}
	t.Run("agent mode, granted, restricted namespace", func(t *testing.T) {
		ns := namespaceAt(t, "restricted", privilege.LabelAgentMode)
		entries := pushSamples(t, "refused", 1, false)
		install(t, ns, map[string]string{"IMAGES": strings.Join(entries, ";"), "CACHING_MODE": "agent", "CRI_SOCKET": cluster.SocketPattern()})
		refused(t, ns, "PodSecurity")
	})
	t.Run("daemonset mode, no quota left", func(t *testing.T) {
		ns := namespace(t)
		entries := pushSamples(t, "quota", 1, false)
		// Room for the controller's pod only.
		kubectl(t, "apiVersion: v1\nkind: ResourceQuota\nmetadata: {name: pods}\nspec: {hard: {pods: \"1\"}}\n", "apply", "-n", ns, "-f", "-")
		install(t, ns, map[string]string{"IMAGES": strings.Join(entries, ";")})
		refused(t, ns, "exceeded quota")
	})
}

// TestAgentModeWithoutTheGrantIsRefused is the attack of a namespace
// writer: agent mode with a socket under /etc, in a namespace no cluster
// admin granted. kip refuses it with an Event naming the label, creates no
// agent, and caches the images in daemonset mode on every node. (KIP_IMAGE
// stays daemonset mode's unprivileged init container, so an attacker's one
// here would only keep the sleepers from starting; that it never becomes
// the agent's image is TestPrivilegeNeedsTheNamespaceGrant's.)
func TestAgentModeWithoutTheGrantIsRefused(t *testing.T) {
	ns := namespaceAt(t, "privileged")
	kubectl(t, "", "label", "namespace", ns, privilege.LabelAgentMode+"-") // privileged, but not granted
	entries := pushSamples(t, "ungranted", 1, false)
	install(t, ns, map[string]string{"IMAGES": strings.Join(entries, ";"), "CACHING_MODE": "agent",
		"CRI_SOCKET": "/etc/kubernetes/pki/$(NODE_NAME)/x.sock"})
	waitCached(t, entries, cluster.Nodes, nil)
	eventually(t, time.Minute, "a PrivilegeNotGranted Event", func() (bool, string) {
		out, err := cluster.RunKubectl("", "get", "events", "-n", ns, "--field-selector", "reason="+config.ReasonPrivilegeNotGranted, "-o", "jsonpath={.items[*].message}")
		return err == nil && strings.Contains(out, privilege.LabelAgentMode+"=allowed"), out
	})
	out := kubectl(t, "", "get", "daemonsets", "-n", ns, "-o", "jsonpath={range .items[*]}{.metadata.name} {.spec.template.spec.containers[*].image}{\"\\n\"}{end}")
	if strings.Contains(out, config.AgentSuffix+" ") {
		t.Errorf("DaemonSets without the grant:\n%s", out)
	}
	t.Logf("DaemonSets: %s", out)
}

// TestPrivateImagesStayPrivate: agent mode with IMAGE_PULL_SECRETS, in a
// namespace granted agent mode but not private images, is refused with an
// Event naming the label and AlwaysVerify: the DaemonSet of sleeping
// containers caches the private image, pulled by each kubelet with the
// secret. A pod in another namespace, without the secret and with
// IfNotPresent, then cannot start that image on a node that holds it (the
// kubelet's KEP-2535 check, on by default since Kubernetes 1.35), while one
// with the secret does.
func TestPrivateImagesStayPrivate(t *testing.T) {
	ns := namespaceAt(t, "privileged")
	entries := pushSamples(t, "secret", 1, true)
	createPullSecret(t, ns, "regcred")
	install(t, ns, map[string]string{"IMAGES": strings.Join(entries, ";"), "CACHING_MODE": "agent",
		"CRI_SOCKET": cluster.SocketPattern(), "IMAGE_PULL_SECRETS": "regcred"})
	waitCached(t, entries, cluster.Nodes, nil)
	eventually(t, time.Minute, "a PrivilegeNotGranted Event naming IMAGE_PULL_SECRETS", func() (bool, string) {
		out, err := cluster.RunKubectl("", "get", "events", "-n", ns, "--field-selector", "reason="+config.ReasonPrivilegeNotGranted, "-o", "jsonpath={.items[*].message}")
		return err == nil && strings.Contains(out, config.KeyImagePullSecrets) && strings.Contains(out, privilege.LabelAgentPrivateImages+"=allowed") && strings.Contains(out, "AlwaysVerify"), out
	})
	if out := kubectl(t, "", "get", "daemonsets", "-n", ns, "-o", "name"); strings.Contains(out, config.AgentSuffix) {
		t.Fatalf("an agent DaemonSet for private images without the grant:\n%s", out)
	}

	node, image := cluster.Nodes[0], refsOf(entries)[0]
	pod := func(podNS, secret string) string {
		pull := ""
		if secret != "" {
			pull = "imagePullSecrets: [{name: " + secret + "}]"
		}
		return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: borrower, namespace: %s}
spec:
  nodeName: %s
  %s
  automountServiceAccountToken: false
  terminationGracePeriodSeconds: 1
  securityContext: {runAsNonRoot: true, runAsUser: 65532, seccompProfile: {type: RuntimeDefault}}
  containers:
  - name: c
    image: %s
    imagePullPolicy: IfNotPresent
    command: [/bin/sleep, "3600"]
    securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}, readOnlyRootFilesystem: true}
`, podNS, node, pull, image)
	}
	state := func(podNS string) (running bool, waiting string) {
		var p corev1.Pod
		if err := cluster.c.Get(context.Background(), types.NamespacedName{Namespace: podNS, Name: "borrower"}, &p); err != nil {
			return false, err.Error()
		}
		for _, c := range p.Status.ContainerStatuses {
			if c.State.Running != nil {
				return true, ""
			}
			if c.State.Waiting != nil {
				return false, c.State.Waiting.Reason + ": " + c.State.Waiting.Message
			}
		}
		return false, "no container status"
	}

	other := namespace(t)
	kubectl(t, pod(other, ""), "apply", "-f", "-")
	eventually(t, 2*time.Minute, "the pod without the secret refused the cached private image", func() (bool, string) {
		running, waiting := state(other)
		if running {
			t.Fatalf("a pod in %s without the secret runs %s, which kip cached on %s", other, image, node)
		}
		return strings.HasPrefix(waiting, "ErrImagePull") || strings.HasPrefix(waiting, "ImagePullBackOff"), waiting
	})
	_, waiting := state(other)
	t.Logf("without the secret, on %s: %s", node, waiting)

	// The same pod with the secret, in the puller's namespace, starts: the
	// image is there, and only the credentials were missing.
	kubectl(t, pod(ns, "regcred"), "apply", "-f", "-")
	eventually(t, 2*time.Minute, "the pod with the secret running", func() (bool, string) {
		running, waiting := state(ns)
		return running, waiting
	})
}
