//go:build integration

package puller

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kip-image-puller/kip/internal/config"
	"github.com/kip-image-puller/kip/internal/dev/testenv"
	"github.com/kip-image-puller/kip/internal/nodewarm"
)

// taintedNode creates a Ready node that carries taints, as a kubelet
// started with --register-with-taints registers it.
func taintedNode(t *testing.T, name string, keys ...string) {
	t.Helper()
	env.ReadyNode(t, name, nil)
	// A running controller may write the node's condition in between.
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var n corev1.Node
		if err := k8s.Get(t.Context(), client.ObjectKey{Name: name}, &n); err != nil {
			return err
		}
		for _, k := range keys {
			n.Spec.Taints = append(n.Spec.Taints, corev1.Taint{Key: k, Effect: corev1.TaintEffectNoSchedule})
		}
		return k8s.Update(t.Context(), &n)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func getNode(t *testing.T, name string) *corev1.Node {
	t.Helper()
	var n corev1.Node
	if err := k8s.Get(context.Background(), client.ObjectKey{Name: name}, &n); err != nil {
		t.Fatal(err)
	}
	return &n
}

func taintKeys(n *corev1.Node) string {
	var keys []string
	for _, tn := range n.Spec.Taints {
		keys = append(keys, tn.Key)
	}
	return strings.Join(keys, ",")
}

// waitForCondition waits until node's ImagesCached condition has status
// and a message containing message.
func waitForCondition(t *testing.T, node string, status corev1.ConditionStatus, message string) corev1.NodeCondition {
	t.Helper()
	var got corev1.NodeCondition
	testenv.Eventually(t, 20*time.Second, fmt.Sprintf("%s: %s=%s %q", node, nodewarm.ConditionType, status, message), func() (bool, string) {
		c := nodewarm.Current(getNode(t, node))
		if c == nil {
			return false, "no condition"
		}
		got = *c
		return c.Status == status && strings.Contains(c.Message, message), fmt.Sprintf("%s %s %q", c.Status, c.Reason, c.Message)
	})
	return got
}

// raceTaints adds a taint to node right before the controller's first
// patch of that node reaches the API server, as an autoscaler or
// node-readiness-controller writing the node's taints at the same moment
// would; it counts the API server's conflict answers to the controller.
func raceTaints(node, key string, conflicts *atomic.Int32) func(http.RoundTripper) http.RoundTripper {
	var raced atomic.Bool
	return func(rt http.RoundTripper) http.RoundTripper {
		return roundTripper(func(req *http.Request) (*http.Response, error) {
			if req.Method == http.MethodPatch && req.URL.Path == "/api/v1/nodes/"+node && raced.CompareAndSwap(false, true) {
				var n corev1.Node
				if err := k8s.Get(req.Context(), client.ObjectKey{Name: node}, &n); err != nil {
					return nil, err
				}
				n.Spec.Taints = append(n.Spec.Taints, corev1.Taint{Key: key, Effect: corev1.TaintEffectNoSchedule})
				if err := k8s.Update(req.Context(), &n); err != nil {
					return nil, err
				}
			}
			resp, err := rt.RoundTrip(req)
			if err == nil && req.Method == http.MethodPatch && resp.StatusCode == http.StatusConflict {
				conflicts.Add(1)
			}
			return resp, err
		})
	}
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestNodeConditionAndStartupTaint: with NODE_CONDITION and
// WARM_NODE_TAINT, each selected node carries ImagesCached, False naming
// the failing image, True once it holds every image; then, and only then,
// the startup taint goes, and no other taint, even when another writer
// changes the node's taints at that moment (the conflict is retried); the
// condition is written again only when it changes; a node that cannot warm
// loses the taint once WARM_NODE_TIMEOUT passed, its condition still False.
func TestNodeConditionAndStartupTaint(t *testing.T) {
	ctx := context.Background()
	ns := grantedNamespace(t)
	const taint = "kip.dev/warming"
	n1, n2 := ns+"-node1", ns+"-node2"
	env.ReadyNode(t, n1, nil)
	taintedNode(t, n2, "autoscaler.example/other", taint)
	if err := k8s.Create(ctx, configMap(ns, map[string]string{config.KeyImages: "java=reg.example.com/java:17;node=reg.example.com/node:22",
		config.KeyNodeCondition: "true", config.KeyWarmNodeTaint: taint, config.KeyWarmNodeTimeout: "0"})); err != nil {
		t.Fatal(err)
	}
	var conflicts atomic.Int32
	run := startController(t, ns, withTransport(raceTaints(n2, "racer.example/late", &conflicts)))
	ds := waitForImages(t, ns, dsName, "java=reg.example.com/java:17;node=reg.example.com/node:22")
	tolerated := false
	for _, tol := range ds.Spec.Template.Spec.Tolerations {
		tolerated = tolerated || tol == nodewarm.Toleration(taint)
	}
	if !tolerated {
		t.Errorf("the pods do not tolerate %s: %+v", taint, ds.Spec.Template.Spec.Tolerations)
	}

	p1, p2 := env.DaemonSetPod(t, ds, n1), env.DaemonSetPod(t, ds, n2)
	env.SetContainers(t, p1, testenv.Running("java"), testenv.Waiting("node", "ErrImagePull", "manifest unknown"))
	env.SetContainers(t, p2, testenv.Running("java"), testenv.Waiting("node", "ContainerCreating", ""))
	c1 := waitForCondition(t, n1, corev1.ConditionFalse, "1/2 cached; failing: node (ErrImagePull)")
	if c1.Reason != nodewarm.ReasonImagesFailing {
		t.Errorf("%s: reason %s", n1, c1.Reason)
	}
	waitForCondition(t, n2, corev1.ConditionFalse, "1/2 cached")
	if keys := taintKeys(getNode(t, n2)); keys != "autoscaler.example/other,"+taint {
		t.Errorf("%s's taints before it is warm: %s", n2, keys)
	}

	env.SetContainers(t, p2, testenv.Running("java"), testenv.Running("node"))
	waitForCondition(t, n2, corev1.ConditionTrue, "2/2 cached")
	testenv.Eventually(t, 20*time.Second, n2+": the startup taint removed, the others kept", func() (bool, string) {
		keys := taintKeys(getNode(t, n2))
		return keys == "autoscaler.example/other,racer.example/late", keys
	})
	if conflicts.Load() < 1 {
		t.Error("the racing writer caused no conflict: the removal did not use the resourceVersion it read")
	}
	removed := waitForEvent(t, ns, ReasonWarmTaintRemoved, "DaemonSet", "removed taint "+taint+" from node "+n2)
	if !strings.Contains(removed.Note, "after it joined") {
		t.Errorf("event %q", removed.Note)
	}
	if obs, ok := gauge(t, "kip_node_warm_seconds", nil); !ok || obs < 1 {
		t.Errorf("kip_node_warm_seconds: %v observations", obs)
	}

	// Nothing changes: no node write, though the reporter looks again.
	run.writes.Reset()
	since := testenv.ReconcileCount(t, "puller-status")
	env.SetContainers(t, p1, testenv.Running("java"), testenv.Waiting("node", "ErrImagePull", "manifest unknown, again"))
	waitForReconcile(t, "puller-status", since)
	if n := run.writes.Matching("/nodes/"); n != 0 {
		t.Errorf("%d node writes with nothing changed: %v", n, run.writes.Count(false))
	}

	// A node that cannot warm: its taint goes once WARM_NODE_TIMEOUT
	// passed since it joined; its condition still names the image.
	n3 := ns + "-node3"
	taintedNode(t, n3, taint)
	p3 := env.DaemonSetPod(t, ds, n3)
	env.SetContainers(t, p3, testenv.Running("java"), testenv.Waiting("node", "ImagePullBackOff", "401 Unauthorized"))
	var cm corev1.ConfigMap
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: config.DefaultConfigMapName}, &cm); err != nil {
		t.Fatal(err)
	}
	cm.Data[config.KeyWarmNodeTimeout] = "8s"
	if err := k8s.Update(ctx, &cm); err != nil {
		t.Fatal(err)
	}
	timedOut := waitForEvent(t, ns, ReasonWarmTimeout, "DaemonSet", "removed taint "+taint+" from node "+n3)
	if !strings.Contains(timedOut.Note, "WARM_NODE_TIMEOUT=8s") || !strings.Contains(timedOut.Note, "failing: node (ErrImagePull)") {
		t.Errorf("timeout event %q", timedOut.Note)
	}
	if created := getNode(t, n3).CreationTimestamp.Time; time.Since(created) < 8*time.Second {
		t.Errorf("the taint went %v after the node joined, before the timeout", time.Since(created))
	}
	if keys := taintKeys(getNode(t, n3)); keys != "" {
		t.Errorf("%s keeps taints %s", n3, keys)
	}
	waitForCondition(t, n3, corev1.ConditionFalse, "failing: node (ErrImagePull)")
}

// TestSecondPullerLeavesTheConditionAlone: two pullers with NODE_CONDITION
// select one node. The first keeps the condition, named in its message;
// the second leaves it alone (no node write), and says so in a Warning
// Event naming the other puller and the node, instead of overwriting it at
// every turn.
func TestSecondPullerLeavesTheConditionAlone(t *testing.T) {
	first, second := grantedNamespace(t), grantedNamespace(t)
	node := first + "-shared"
	env.ReadyNode(t, node, nil)
	data := map[string]string{config.KeyImages: "java=reg.example.com/java:17", config.KeyNodeCondition: "true"}
	for _, ns := range []string{first, second} {
		if err := k8s.Create(context.Background(), configMap(ns, data)); err != nil {
			t.Fatal(err)
		}
	}
	startController(t, first)
	ds1 := waitForImages(t, first, dsName, data[config.KeyImages])
	env.SetContainers(t, env.DaemonSetPod(t, ds1, node), testenv.Running("java"))
	kept := waitForCondition(t, node, corev1.ConditionTrue, "1/1 cached; kept by "+first+"/"+dsName)

	run := startController(t, second)
	ds2 := waitForImages(t, second, dsName, data[config.KeyImages])
	p2 := env.DaemonSetPod(t, ds2, node)
	env.SetContainers(t, p2, testenv.Waiting("java", "ErrImagePull", "manifest unknown"))
	e := waitForEvent(t, second, ReasonNodeConditionKeptElsewhere, "DaemonSet", "the puller "+first+"/"+dsName+" keeps it on")
	for _, want := range []string{node, "NODE_CONDITION=false", "NODE_SELECTOR"} {
		if !strings.Contains(e.Note, want) {
			t.Errorf("the Event does not say %q: %s", want, e.Note)
		}
	}
	since := testenv.ReconcileCount(t, "puller-status")
	env.SetContainers(t, p2, testenv.Waiting("java", "CreateContainerError", "no such file"))
	waitForReconcile(t, "puller-status", since)
	if n := run.writes.Matching("/nodes/" + node); n != 0 {
		t.Errorf("the second puller wrote the node %d times", n)
	}
	if c := nodewarm.Current(getNode(t, node)); c == nil || c.Message != kept.Message || c.Status != corev1.ConditionTrue {
		t.Errorf("the condition changed: %+v, was %+v", c, kept)
	}
}
