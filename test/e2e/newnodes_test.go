//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/kip-image-puller/kip/internal/nodewarm"
	"github.com/kip-image-puller/kip/internal/privilege"
)

const warmTaint = "kip.dev/warming"

// installWarming installs the puller with the node condition and the
// startup taint, and the cluster-wide permissions each one needs.
func installWarming(t *testing.T, ns string, config map[string]string) {
	t.Helper()
	installWarmingRBAC(t, ns)
	forgetNodeCondition(t, ns)
	params := map[string]string{"NODE_CONDITION": "true", "WARM_NODE_TAINT": warmTaint}
	for k, v := range config {
		params[k] = v
	}
	install(t, ns, params)
}

// forgetNodeCondition, when the test ends, stops the pullers of ns and
// removes kip's condition from every node: the next test's puller would
// otherwise find it kept by this one, its heartbeat recent, and leave it
// alone for nodewarm.StaleAfter.
func forgetNodeCondition(t *testing.T, ns string) {
	t.Helper()
	t.Cleanup(func() {
		if _, err := cluster.RunKubectl("", "delete", "deployments", "--all", "-n", ns, "--cascade=foreground", "--timeout=2m"); err != nil {
			t.Logf("stopping the pullers of %s: %v", ns, err)
		}
		var nodes corev1.NodeList
		if err := cluster.c.List(context.Background(), &nodes); err != nil {
			t.Logf("nodes: %v", err)
			return
		}
		patch := fmt.Sprintf(`{"status":{"conditions":[{"type":%q,"$patch":"delete"}]}}`, nodewarm.ConditionType)
		for _, n := range nodes.Items {
			if _, err := cluster.RunKubectl("", "patch", "node", n.Name, "--subresource=status", "--type=strategic", "-p", patch); err != nil {
				t.Logf("%s: removing %s: %v", n.Name, nodewarm.ConditionType, err)
			}
		}
	})
}

// installWarmingRBAC applies the cluster-wide permissions of the node
// condition and the startup taint for the puller of ns, removed when the
// test ends.
func installWarmingRBAC(t *testing.T, ns string) {
	t.Helper()
	for _, file := range []string{"node-condition-rbac.yaml", "warm-node-taint-rbac.yaml"} {
		manifest := processTemplate(t, file, map[string]string{"NAMESPACE": ns})
		kubectl(t, manifest, "apply", "-f", "-")
		t.Cleanup(func() { _, _ = cluster.RunKubectl(manifest, "delete", "-f", "-", "--ignore-not-found") })
	}
}

// runCluster runs hack/cluster.sh with args and returns what it prints.
func runCluster(args ...string) (string, error) {
	cmd := exec.Command(filepath.Join(cluster.root, "hack", "cluster.sh"), args...)
	cmd.Dir = cluster.root
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("hack/cluster.sh %s: %w", strings.Join(args, " "), err)
	}
	return string(out), nil
}

// addNode starts one more node, registered with the startup taint, and
// removes it when the test ends.
func addNode(t *testing.T) string {
	t.Helper()
	return addTaintedNode(t, warmTaint+"=:NoSchedule")
}

// addTaintedNode starts one more node, registered with taint (hack/cluster.sh
// add-node, which reads its NODE_* settings from the environment), and
// removes it when the test ends.
func addTaintedNode(t *testing.T, taint string) string {
	t.Helper()
	out, err := runCluster("add-node", taint)
	if err != nil {
		t.Fatal(err)
	}
	node := strings.TrimSpace(out[strings.LastIndex(strings.TrimSpace(out), "\n")+1:])
	t.Cleanup(func() {
		if _, err := runCluster("remove-node", strings.TrimPrefix(node, "node")); err != nil {
			t.Errorf("remove %s: %v", node, err)
		}
	})
	return node
}

func getNode(t *testing.T, name string) (*corev1.Node, error) {
	t.Helper()
	var n corev1.Node
	err := cluster.c.Get(context.Background(), client.ObjectKey{Name: name}, &n)
	return &n, err
}

// nodeExcerpt is the part of `kubectl get node -o yaml` that tells the
// story: kip's condition and the taints.
func nodeExcerpt(t *testing.T, n *corev1.Node) string {
	t.Helper()
	excerpt := map[string]any{"metadata": map[string]any{"name": n.Name, "creationTimestamp": n.CreationTimestamp},
		"spec": map[string]any{"taints": n.Spec.Taints}, "status": map[string]any{"conditions": []any{nodewarm.Current(n)}}}
	b, err := yaml.Marshal(excerpt)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// workspaces is a Deployment of workspace-like pods, one per node at most
// (required anti-affinity on the hostname), starting from image.
func workspaces(ns, image string, replicas int) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: workspaces, namespace: %s}
spec:
  replicas: %d
  selector: {matchLabels: {app: workspace}}
  template:
    metadata: {labels: {app: workspace}}
    spec:
      automountServiceAccountToken: false
      terminationGracePeriodSeconds: 1
      securityContext: {runAsNonRoot: true, runAsUser: 65532, seccompProfile: {type: RuntimeDefault}}
      affinity:
        podAntiAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
          - labelSelector: {matchLabels: {app: workspace}}
            topologyKey: kubernetes.io/hostname
      containers:
      - name: workspace
        image: %s
        imagePullPolicy: IfNotPresent
        command: [/bin/sleep, "3600"]
        securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}, readOnlyRootFilesystem: true}
`, ns, replicas, image)
}

// TestNewNodeJoinsWarm: with the puller warm on 3 nodes, a workspace
// Deployment spread one per node is scaled to 4: one replica is Pending.
// A 4th node joins with the startup taint. The replica lands there only
// once the taint is gone, which happens once the node holds every image,
// and its container starts from the cache (the kubelet says the image is
// already present). It measures join -> warm -> taint removed -> running.
func TestNewNodeJoinsWarm(t *testing.T) {
	ns := namespaceAt(t, "restricted", privilege.LabelNodeWrites)
	entries := pushSamples(t, "warm", 2, false)
	installWarming(t, ns, map[string]string{"IMAGES": strings.Join(entries, ";"), "WARM_NODE_TIMEOUT": "0"})
	waitCached(t, entries, cluster.Nodes, nil)
	for _, name := range cluster.Nodes {
		eventually(t, time.Minute, name+": "+string(nodewarm.ConditionType)+"=True", func() (bool, string) {
			n, err := getNode(t, name)
			if err != nil {
				return false, err.Error()
			}
			c := nodewarm.Current(n)
			return c != nil && c.Status == corev1.ConditionTrue, fmt.Sprintf("%+v", c)
		})
	}

	image := refsOf(entries)[0]
	kubectl(t, workspaces(ns, image, len(cluster.Nodes)), "apply", "-f", "-")
	kubectl(t, "", "rollout", "status", "-n", ns, "deployment/workspaces", "--timeout=3m")
	kubectl(t, "", "scale", "-n", ns, "deployment/workspaces", fmt.Sprintf("--replicas=%d", len(cluster.Nodes)+1))
	// The replica that no original node can take: one per node at most.
	pending := func() *corev1.Pod {
		var pods corev1.PodList
		if err := cluster.c.List(context.Background(), &pods, client.InNamespace(ns), client.MatchingLabels{"app": "workspace"}); err != nil {
			t.Fatal(err)
		}
		for i := range pods.Items {
			if !slices.Contains(cluster.Nodes, pods.Items[i].Spec.NodeName) {
				return &pods.Items[i]
			}
		}
		return nil
	}
	eventually(t, time.Minute, "one workspace replica Pending", func() (bool, string) {
		p := pending()
		return p != nil && p.Spec.NodeName == "", fmt.Sprintf("%+v", p)
	})

	node := addNode(t)
	var before, after string
	var joined, warm, untainted, scheduled, running time.Time
	eventually(t, 4*time.Minute, node+" warm, untainted, and the replica running there", func() (bool, string) {
		n, err := getNode(t, node)
		if err != nil {
			return false, err.Error()
		}
		now := time.Now()
		joined = n.CreationTimestamp.Time
		c := nodewarm.Current(n)
		if c != nil && c.Status == corev1.ConditionFalse && nodewarm.HasTaint(n, warmTaint) && before == "" {
			before = nodeExcerpt(t, n)
		}
		if c != nil && c.Status == corev1.ConditionTrue && warm.IsZero() {
			warm = c.LastTransitionTime.Time
		}
		if !nodewarm.HasTaint(n, warmTaint) && untainted.IsZero() {
			untainted = now
			after = nodeExcerpt(t, n)
		}
		p := pending()
		if p == nil {
			return false, "the replica is gone"
		}
		if p.Spec.NodeName == node && scheduled.IsZero() {
			scheduled = now
			if untainted.IsZero() {
				t.Errorf("the replica was scheduled on %s while it still carried %s", node, warmTaint)
			}
		}
		if p.Status.Phase == corev1.PodRunning && running.IsZero() {
			running = now
		}
		return !running.IsZero(), fmt.Sprintf("condition %+v, taints %v, replica on %q %s", c, n.Spec.Taints, p.Spec.NodeName, p.Status.Phase)
	})
	t.Logf("%s joined at %s; warm (condition True) +%s; taint removed (seen) +%s; replica scheduled there +%s; running +%s",
		node, joined.Format("15:04:05"), warm.Sub(joined).Round(100*time.Millisecond), untainted.Sub(joined).Round(100*time.Millisecond),
		scheduled.Sub(joined).Round(100*time.Millisecond), running.Sub(joined).Round(100*time.Millisecond))
	t.Logf("kubectl get node %s -o yaml, before it was warm:\n%s", node, before)
	t.Logf("and after:\n%s", after)
	if before == "" {
		t.Errorf("%s was never seen tainted with its condition False", node)
	}
	if untainted.Before(warm) {
		t.Errorf("the taint went at %s, before the node was warm at %s", untainted, warm)
	}

	// The container started from the cache.
	p := pending()
	eventually(t, time.Minute, "the kubelet's Pulled event for the replica", func() (bool, string) {
		out := kubectl(t, "", "get", "events", "-n", ns, "--field-selector", "involvedObject.name="+p.Name+",reason=Pulled", "-o", "jsonpath={.items[*].message}")
		return strings.Contains(out, "already present on machine"), out
	})
	events := kubectl(t, "", "get", "events", "-n", ns, "--field-selector", "involvedObject.name="+p.Name, "-o", "jsonpath={range .items[*]}{.reason}{\" \"}{end}")
	if strings.Contains(events, "Pulling") {
		t.Errorf("the replica's image was pulled on %s: events %s", node, events)
	}
	removed := kubectl(t, "", "get", "events", "-n", ns, "--field-selector", "reason=WarmTaintRemoved", "-o", "jsonpath={.items[*].message}")
	if !strings.Contains(removed, "from node "+node) {
		t.Errorf("WarmTaintRemoved events: %q", removed)
	}
}

// TestWarmNodeTimeout: a node that cannot warm, because one image cannot
// be pulled, loses the startup taint once WARM_NODE_TIMEOUT passed; its
// condition stays False naming the image, and an Event says why.
func TestWarmNodeTimeout(t *testing.T) {
	ns := namespaceAt(t, "restricted", privilege.LabelNodeWrites)
	entries := pushSamples(t, "timeout", 1, false)
	missing := "missing=" + cluster.Registry + "/e2e/not-pushed:v1"
	installWarming(t, ns, map[string]string{"IMAGES": strings.Join(append(entries, missing), ";"), "WARM_NODE_TIMEOUT": "40s"})
	waitCached(t, entries, cluster.Nodes, nil)
	node := addNode(t)
	var untainted time.Time
	var n *corev1.Node
	eventually(t, 3*time.Minute, node+": the taint removed after the timeout", func() (bool, string) {
		var err error
		if n, err = getNode(t, node); err != nil {
			return false, err.Error()
		}
		if nodewarm.HasTaint(n, warmTaint) {
			return false, fmt.Sprintf("taints %v, condition %+v", n.Spec.Taints, nodewarm.Current(n))
		}
		untainted = time.Now()
		return true, ""
	})
	if waited := untainted.Sub(n.CreationTimestamp.Time); waited < 40*time.Second {
		t.Errorf("the taint went %s after the node joined, before WARM_NODE_TIMEOUT=40s", waited)
	}
	eventually(t, time.Minute, node+": the condition names the missing image", func() (bool, string) {
		n, err := getNode(t, node)
		if err != nil {
			return false, err.Error()
		}
		c := nodewarm.Current(n)
		return c != nil && c.Status == corev1.ConditionFalse && strings.Contains(c.Message, "failing: missing ("), fmt.Sprintf("%+v", c)
	})
	msg := kubectl(t, "", "get", "events", "-n", ns, "--field-selector", "reason=WarmTimeout", "-o", "jsonpath={.items[*].message}")
	if !strings.Contains(msg, "from node "+node) || !strings.Contains(msg, "WARM_NODE_TIMEOUT=40s") || !strings.Contains(msg, "missing") {
		t.Errorf("WarmTimeout event %q", msg)
	}
	n, _ = getNode(t, node)
	t.Logf("kubectl get node %s -o yaml, after the timeout:\n%s", node, nodeExcerpt(t, n))
	t.Logf("WarmTimeout event: %s", msg)
}
