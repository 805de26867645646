//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	agentreport "github.com/kip-image-puller/kip/internal/agent/report"
	"github.com/kip-image-puller/kip/internal/config"
	"github.com/kip-image-puller/kip/internal/dev/cri"
	"github.com/kip-image-puller/kip/internal/dev/registrytest"
	"github.com/kip-image-puller/kip/internal/status"
)

// smallDiskTaint keeps everything but this test's pods off the small node.
const smallDiskTaint = "kip.dev/small-disk"

// TestDiskBudgetOnASmallDisk: a node whose image store is a 3 GiB
// filesystem of its own, with containerd 2 (which pins) and a kubelet that
// collects unused images above 70% and evicts below 15% free. Agent mode
// caches a list larger than PIN_BUDGET=10% and IMAGEFS_FREE_FLOOR=35%
// allow. Through CRI and the API: the images are pinned in list order
// within the budget, the ones past it named OverBudget, the ones that
// would cross the floor not pulled; the kubelet's image GC, pressed by a
// control image pulled by hand, collects an older unpinned control image
// and no pinned one; the node never reports DiskPressure and the workload
// on it is never evicted; once the puller is uninstalled, nothing of it
// stays pinned.
func TestDiskBudgetOnASmallDisk(t *testing.T) {
	node := addSmallDiskNode(t, "3G")
	ctx := context.Background()
	c, err := cri.Dial(cluster.Socket(node))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	store := filepath.Join(cluster.Dir, "nodes", node, "containerd")

	// The oldest unpinned image: the first the kubelet's GC takes. The
	// kubelet dates each image from when it first sees it, every 5
	// minutes and when it starts: restarted now, it sees this one first.
	older := pushSized(t, "gcold", 1, 200<<20)
	pull(t, c, refsOf(older))
	if _, err := runCluster("restart-kubelet", strings.TrimPrefix(node, "node")); err != nil {
		t.Fatal(err)
	}

	watch := watchNode(t, node)
	workload := startWorkload(t, node)

	ns := namespaceAt(t, "privileged")
	entries := pushSized(t, "disk", 8, 100<<20)
	// The sockets paired with their image stores (SOCKET=STORE): the agents
	// measure each node's image filesystem.
	measured := cluster.SocketPattern() + "=" + filepath.Join(cluster.Dir, "nodes", "$(NODE_NAME)", "containerd")
	installAllowing(t, ns, map[string]string{
		"IMAGES": strings.Join(entries, ";"), "CACHING_MODE": config.ModeAgent, "CRI_SOCKET": cluster.SocketPattern(),
		"NODE_SELECTOR": fmt.Sprintf(`{"kubernetes.io/hostname": %q}`, node),
		"TOLERATIONS":   fmt.Sprintf(`[{"key": %q, "operator": "Exists", "effect": "NoSchedule"}]`, smallDiskTaint),
		"PIN_BUDGET":    "10%", "IMAGEFS_FREE_FLOOR": "35%", "HEAL_INTERVAL": "10s",
	}, measured)

	// The agent settles: every image held or refused, none pulling, and
	// the runtime agrees with the status (read together, as failed images
	// are tried again every so often).
	var r status.Report
	var order string
	var held, pinned map[string]bool
	eventually(t, 3*time.Minute, "every image on "+node+" held or refused, as the runtime and the status both say", func() (bool, string) {
		out, code := kipStatus(t, ns, "-o", "json")
		r = status.Report{}
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			return false, fmt.Sprintf("exit %d: %v", code, err)
		}
		n := nodeOf(r, node)
		if n == nil || n.Agent == nil || n.Agent.Disk == nil || n.Agent.Disk.CapacityBytes == 0 {
			return false, "no disk measured yet"
		}
		var err error
		if held, pinned, err = c.HeldAndPinned(ctx); err != nil {
			return false, err.Error()
		}
		order = diskOrder(entries, n, held, pinned)
		return !strings.Contains(order, "?"), order
	})
	n := nodeOf(r, node)
	disk := *n.Agent.Disk
	t.Logf("%s: %s", node, disk.Summary())
	if want := disk.CapacityBytes * 10 / 100; disk.PinBudgetBytes != want {
		t.Errorf("pin budget %d bytes, want 10%% of %d", disk.PinBudgetBytes, disk.CapacityBytes)
	}
	if disk.PinnedBytes > disk.PinBudgetBytes || disk.PinnedBytes == 0 {
		t.Errorf("%d bytes pinned, want some, within the budget of %d", disk.PinnedBytes, disk.PinBudgetBytes)
	}
	t.Logf("the list on %s, in order (P pinned, H held past the budget, F not pulled past the floor): %s", node, order)
	if got := order; !strings.Contains(got, "PH") || !strings.HasSuffix(got, "F") || strings.Contains(got, "HP") || strings.Contains(got, "FP") || strings.Contains(got, "FH") {
		t.Errorf("order %s: want pinned images first, then some held past the budget, then some not pulled", got)
	}
	if used := usedPercent(t, store); used > 65+1 {
		t.Errorf("the image filesystem is %d%% used; IMAGEFS_FREE_FLOOR=35%% keeps it at 65%% at most", used)
	}
	out, _ := kipStatus(t, ns)
	if !strings.Contains(out, "pinned of") {
		t.Errorf("kip status shows no disk:\n%s", out)
	}

	// A second control image, pulled by hand, takes the filesystem past
	// the kubelet's 70%: its GC (every 5 minutes) collects unpinned images,
	// the oldest first, down to 60%.
	pull(t, c, refsOf(pushSized(t, "gcnew", 1, 300<<20)))
	t.Logf("%s after the second control image: %d%% used", node, usedPercent(t, store))
	start := time.Now()
	eventually(t, 7*time.Minute, "the kubelet's image GC collects the older control image on "+node, func() (bool, string) {
		refs, err := c.ImageRefs(ctx)
		if err != nil {
			return false, err.Error()
		}
		return !cri.Has(refs, refsOf(older)[0]), fmt.Sprintf("%d%% used", usedPercent(t, store))
	})
	t.Logf("the kubelet collected the older control image %s after the second one came; %d%% used", time.Since(start).Round(time.Second), usedPercent(t, store))
	if held, pinned, err = c.HeldAndPinned(ctx); err != nil {
		t.Fatal(err)
	}
	for i, e := range entries {
		if ref := refsOf(entries)[i]; order[i] == 'P' && (!held[ref] || !pinned[ref]) {
			t.Errorf("%s, pinned, after the image GC: held %v, pinned %v", e, held[ref], pinned[ref])
		}
	}

	// Uninstalled: nothing of it stays pinned.
	kubectl(t, "", "delete", "-n", ns, "deployment/kubernetes-image-puller", "--wait=true")
	eventually(t, 2*time.Minute, "nothing of the puller pinned on "+node+" once it is uninstalled", func() (bool, string) {
		_, pinned, err := c.HeldAndPinned(ctx)
		if err != nil {
			return false, err.Error()
		}
		for _, ref := range refsOf(entries) {
			if pinned[ref] {
				return false, ref + " still pinned"
			}
		}
		return true, ""
	})

	if pressure := watch.stop(); pressure != "" {
		t.Errorf("%s reported DiskPressure: %s", node, pressure)
	}
	workload.check(t)
}

// diskOrder spells, in list order, what the runtime and the status say of
// each image: P pinned, H held past the budget, F not pulled past the
// floor, ? when they disagree (or it is on its way).
func diskOrder(entries []string, n *status.Node, held, pinned map[string]bool) string {
	var order strings.Builder
	for _, e := range entries {
		name, ref, _ := strings.Cut(e, "=")
		cell := n.Images[name]
		switch {
		case pinned[ref] && held[ref] && cell.State == status.Cached && cell.Reason == "":
			order.WriteByte('P')
		case held[ref] && !pinned[ref] && cell.State == status.Cached && cell.Reason == agentreport.ReasonOverBudget && strings.Contains(cell.Message, "PIN_BUDGET"):
			order.WriteByte('H')
		case !held[ref] && cell.State == status.Failed && cell.Reason == agentreport.ReasonOverBudget && strings.Contains(cell.Message, "IMAGEFS_FREE_FLOOR"):
			order.WriteByte('F')
		default:
			order.WriteByte('?')
		}
	}
	return order.String()
}

// addSmallDiskNode starts one more node with an image store of size of its
// own and containerd 2, tainted for this test's pods, and removes it when
// the test ends.
func addSmallDiskNode(t *testing.T, size string) string {
	t.Helper()
	t.Setenv("NODE_IMAGEFS_SIZE", size)
	t.Setenv("NODE_CONTAINERD2", "1")
	node := addTaintedNode(t, smallDiskTaint+"=:NoSchedule")
	eventually(t, 2*time.Minute, node+" Ready", func() (bool, string) {
		n, err := getNode(t, node)
		if err != nil {
			return false, err.Error()
		}
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady {
				return c.Status == corev1.ConditionTrue, c.Message
			}
		}
		return false, "no Ready condition"
	})
	return node
}

// pushSized pushes count images of about size bytes of random content,
// which does not compress, and returns their IMAGES entries.
func pushSized(t *testing.T, prefix string, count int, size int64) []string {
	t.Helper()
	suffix := strings.ToLower(rand.String(5))
	var entries []string
	for i := 1; i <= count; i++ {
		repoTag := fmt.Sprintf("e2e/%s%d-%s:v1", prefix, i, suffix)
		registrytest.PushImage(t, cluster.RegistryPush+"/"+repoTag, sampleImage(t, size), authn.Anonymous)
		entries = append(entries, fmt.Sprintf("%s%d=%s/%s", prefix, i, cluster.Registry, repoTag))
	}
	return entries
}

// pull pulls refs through c, one at a time, and fails the test on any error.
func pull(t *testing.T, c *cri.Client, refs []string) {
	t.Helper()
	for _, r := range c.Pull(context.Background(), refs, 1) {
		if r.Err != nil {
			t.Fatal(r.Err)
		}
	}
}

func nodeOf(r status.Report, name string) *status.Node {
	for i := range r.Nodes {
		if r.Nodes[i].Name == name {
			return &r.Nodes[i]
		}
	}
	return nil
}

// usedPercent is how full the filesystem at path is, as the kubelet counts
// it: used over capacity.
func usedPercent(t *testing.T, path string) int64 {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		t.Fatal(err)
	}
	return int64(100 - st.Bavail*100/st.Blocks)
}

// nodeWatch records every DiskPressure the node reports, checked every 2 s.
type nodeWatch struct {
	stopOnce sync.Once
	done     chan struct{}
	ended    chan struct{}
	mu       sync.Mutex
	pressure []string
	checks   int
}

func watchNode(t *testing.T, node string) *nodeWatch {
	t.Helper()
	w := &nodeWatch{done: make(chan struct{}), ended: make(chan struct{})}
	go func() {
		defer close(w.ended)
		for {
			if n, err := getNode(t, node); err == nil {
				w.mu.Lock()
				w.checks++
				for _, c := range n.Status.Conditions {
					if c.Type == corev1.NodeDiskPressure && c.Status == corev1.ConditionTrue {
						w.pressure = append(w.pressure, time.Now().Format("15:04:05")+" "+c.Message)
					}
				}
				w.mu.Unlock()
			}
			select {
			case <-w.done:
				return
			case <-time.After(2 * time.Second):
			}
		}
	}()
	t.Cleanup(func() { w.stop() })
	return w
}

// stop ends the watch and says what DiskPressure it saw; "" for none.
func (w *nodeWatch) stop() string {
	w.stopOnce.Do(func() { close(w.done) })
	<-w.ended
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.checks == 0 {
		return "the node was never read"
	}
	return strings.Join(w.pressure, "; ")
}

// workload is a pod on the small node that must never be evicted.
type workload struct {
	pod *corev1.Pod
}

func startWorkload(t *testing.T, node string) *workload {
	t.Helper()
	ns := namespace(t)
	image := refsOf(pushSamples(t, "workload", 1, false))[0]
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "workload", Namespace: ns},
		Spec: corev1.PodSpec{
			NodeName:    node,
			Tolerations: []corev1.Toleration{{Key: smallDiskTaint, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}},
			Containers: []corev1.Container{{Name: "sleep", Image: image,
				SecurityContext: &corev1.SecurityContext{AllowPrivilegeEscalation: ptr.To(false), RunAsNonRoot: ptr.To(true), RunAsUser: ptr.To[int64](65532),
					Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}, SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}}}},
		},
	}
	if err := cluster.c.Create(context.Background(), pod); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Minute, "the workload running on "+node, func() (bool, string) {
		if err := cluster.c.Get(context.Background(), client.ObjectKeyFromObject(pod), pod); err != nil {
			return false, err.Error()
		}
		return pod.Status.Phase == corev1.PodRunning, string(pod.Status.Phase)
	})
	return &workload{pod: pod.DeepCopy()}
}

// check fails the test unless the workload is the same pod, still running,
// never restarted nor evicted.
func (w *workload) check(t *testing.T) {
	t.Helper()
	var now corev1.Pod
	if err := cluster.c.Get(context.Background(), client.ObjectKeyFromObject(w.pod), &now); err != nil {
		t.Fatalf("the workload: %v", err)
	}
	restarts := int32(0)
	for _, s := range now.Status.ContainerStatuses {
		restarts += s.RestartCount
	}
	if now.UID != w.pod.UID || now.Status.Phase != corev1.PodRunning || now.Status.Reason == "Evicted" || restarts != 0 {
		t.Errorf("the workload: uid %s (was %s), phase %s, reason %q, restarts %d", now.UID, w.pod.UID, now.Status.Phase, now.Status.Reason, restarts)
	}
}
