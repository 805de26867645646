//go:build e2e

package e2e

import (
	"context"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

const dsName = "kubernetes-image-puller"

func pullerPods(t *testing.T, ns string) []corev1.Pod {
	t.Helper()
	var pods corev1.PodList
	if err := cluster.c.List(context.Background(), &pods, client.InNamespace(ns),
		client.MatchingLabels{"app.kubernetes.io/instance": dsName, "app.kubernetes.io/component": "image-cache"}); err != nil {
		t.Fatal(err)
	}
	return pods.Items
}

func daemonSet(t *testing.T, ns string) *appsv1.DaemonSet {
	t.Helper()
	var ds appsv1.DaemonSet
	if err := cluster.c.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: dsName}, &ds); err != nil {
		t.Fatal(err)
	}
	return &ds
}

// waitRolledOut waits until the DaemonSet runs its current template, ready, on want nodes.
func waitRolledOut(t *testing.T, ns string, want int) *appsv1.DaemonSet {
	t.Helper()
	var ds appsv1.DaemonSet
	eventually(t, 3*time.Minute, "DaemonSet rolled out", func() (bool, string) {
		if err := cluster.c.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: dsName}, &ds); err != nil {
			return false, err.Error()
		}
		s := ds.Status
		return s.ObservedGeneration == ds.Generation && int(s.DesiredNumberScheduled) == want &&
				int(s.UpdatedNumberScheduled) == want && int(s.NumberReady) == want,
			fmt.Sprintf("%+v", s)
	})
	return &ds
}

func podNodes(pods []corev1.Pod) []string {
	var nodes []string
	for _, p := range pods {
		nodes = append(nodes, p.Spec.NodeName)
	}
	slices.Sort(nodes)
	return nodes
}

func podUIDs(pods []corev1.Pod) []string {
	var uids []string
	for _, p := range pods {
		uids = append(uids, string(p.UID))
	}
	slices.Sort(uids)
	return uids
}

// TestDocumentedProcedure installs the puller as the documentation says,
// in a namespace enforcing the restricted Pod Security Standard, and runs
// its verification steps; then restarts and rolls the controller, changes
// the ConfigMap live, and deletes the Deployment.
func TestDocumentedProcedure(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t)
	entries := pushSamples(t, "ws", 3, false)
	first := strings.Join(entries[:2], ";")
	install(t, ns, map[string]string{"IMAGES": first})

	// Verification: the Deployment, the DaemonSet, one puller pod per node, the ConfigMap.
	kubectl(t, "", "rollout", "status", "-n", ns, "deployment/kubernetes-image-puller", "--timeout=3m")
	ds := waitRolledOut(t, ns, len(cluster.Nodes))
	pods := pullerPods(t, ns)
	if got := podNodes(pods); !slices.Equal(got, cluster.Nodes) {
		t.Errorf("puller pods on %v, want exactly one on each of %v", got, cluster.Nodes)
	}
	var cm corev1.ConfigMap
	if err := cluster.c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "k8s-image-puller"}, &cm); err != nil {
		t.Fatal(err)
	}
	if cm.Data["IMAGES"] != first || cm.Data["CACHING_MEMORY_LIMIT"] != "20Mi" || cm.Data["NAMESPACE"] != ns {
		t.Errorf("ConfigMap data %v", cm.Data)
	}
	waitCached(t, entries[:2], cluster.Nodes, nil)

	// Restarting or rolling the controller leaves the DaemonSet and its pods alone.
	uids := podUIDs(pods)
	kubectl(t, "", "delete", "pod", "-n", ns, "-l", "app.kubernetes.io/component=controller", "--wait=true")
	kubectl(t, "", "rollout", "status", "-n", ns, "deployment/kubernetes-image-puller", "--timeout=3m")
	kubectl(t, "", "rollout", "restart", "-n", ns, "deployment/kubernetes-image-puller")
	kubectl(t, "", "rollout", "status", "-n", ns, "deployment/kubernetes-image-puller", "--timeout=3m")
	// The sync point: the new controller has reconciled the puller since it
	// became leader, so it has had its chance to touch the DaemonSet.
	leaderReconciled(t, ns)
	after := daemonSet(t, ns)
	if after.UID != ds.UID || after.Generation != ds.Generation {
		t.Errorf("DaemonSet changed by a controller restart: uid %s -> %s, generation %d -> %d", ds.UID, after.UID, ds.Generation, after.Generation)
	}
	if got := podUIDs(pullerPods(t, ns)); !slices.Equal(got, uids) {
		t.Errorf("puller pods replaced by a controller restart: %v -> %v", uids, got)
	}

	// A ConfigMap change (one image added, one removed) reaches every node, no restart.
	second := strings.Join(entries[1:], ";")
	kubectl(t, fmt.Sprintf(`{"data": {"IMAGES": %q}}`, second), "patch", "configmap", "-n", ns, "k8s-image-puller", "--type", "merge", "--patch-file", "/dev/stdin")
	eventually(t, time.Minute, "DaemonSet follows the ConfigMap", func() (bool, string) {
		var names []string
		for _, c := range daemonSet(t, ns).Spec.Template.Spec.Containers {
			names = append(names, c.Name)
		}
		return slices.Equal(names, []string{"ws2", "ws3"}), strings.Join(names, ",")
	})
	waitRolledOut(t, ns, len(cluster.Nodes))
	waitCached(t, entries[2:], cluster.Nodes, nil)

	// Deleting the Deployment removes the DaemonSet it owns.
	kubectl(t, "", "delete", "deployment", "-n", ns, "kubernetes-image-puller")
	eventually(t, 2*time.Minute, "DaemonSet garbage-collected", func() (bool, string) {
		var gone appsv1.DaemonSet
		err := cluster.c.Get(ctx, types.NamespacedName{Namespace: ns, Name: dsName}, &gone)
		return apierrors.IsNotFound(err), fmt.Sprint(err)
	})
}

// TestNodeSelectorAndTolerations restricts the cache to labelled nodes, one
// of them tainted and tolerated.
func TestNodeSelectorAndTolerations(t *testing.T) {
	ns := namespace(t)
	key := "kip-e2e-" + ns
	selected, unselected := cluster.Nodes[:2], cluster.Nodes[2:]
	for _, node := range selected {
		kubectl(t, "", "label", "node", node, key+"=yes")
		t.Cleanup(func() { kubectl(t, "", "label", "node", node, key+"-") })
	}
	tainted := selected[1]
	kubectl(t, "", "taint", "node", tainted, key+"=ws:NoSchedule")
	t.Cleanup(func() { kubectl(t, "", "taint", "node", tainted, key+"=ws:NoSchedule-") })

	entries := pushSamples(t, "sel", 2, false)
	install(t, ns, map[string]string{
		"IMAGES":        strings.Join(entries, ";"),
		"NODE_SELECTOR": fmt.Sprintf(`{%q: "yes"}`, key),
		"TOLERATIONS":   fmt.Sprintf(`[{"key": %q, "operator": "Equal", "value": "ws", "effect": "NoSchedule"}]`, key),
	})
	waitRolledOut(t, ns, len(selected))
	if got := podNodes(pullerPods(t, ns)); !slices.Equal(got, selected) {
		t.Errorf("puller pods on %v, want %v", got, selected)
	}
	waitCached(t, entries, selected, unselected)
}

// TestPullSecret caches an image of the registry that requires credentials,
// with IMAGE_PULL_SECRETS.
func TestPullSecret(t *testing.T) {
	ns := namespace(t)
	entries := pushSamples(t, "private", 1, true)
	createPullSecret(t, ns, "regcred")
	install(t, ns, map[string]string{"IMAGES": strings.Join(entries, ";"), "IMAGE_PULL_SECRETS": "regcred"})
	waitRolledOut(t, ns, len(cluster.Nodes))
	waitCached(t, entries, cluster.Nodes, nil)
}

// createPullSecret creates a pull secret for the registry that requires
// credentials.
func createPullSecret(t *testing.T, ns, name string) {
	t.Helper()
	auth := base64.StdEncoding.EncodeToString([]byte(cluster.AuthUser + ":" + cluster.AuthPassword))
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Type:       corev1.SecretTypeDockerConfigJson,
		Data: map[string][]byte{corev1.DockerConfigJsonKey: []byte(
			fmt.Sprintf(`{"auths": {%q: {"auth": %q}}}`, cluster.AuthRegistry, auth))},
	}
	if err := cluster.c.Create(context.Background(), secret); err != nil {
		t.Fatal(err)
	}
}

// TestFailingImageIsIsolated configures one image that cannot be pulled:
// every other image is still cached on every node, also images added while
// it fails, and the failing one is named by the pod statuses.
func TestFailingImageIsIsolated(t *testing.T) {
	ns := namespace(t)
	good := pushSamples(t, "good", 3, false)
	bad := "broken=" + cluster.Registry + "/e2e/does-not-exist:v1"
	install(t, ns, map[string]string{"IMAGES": strings.Join([]string{good[0], good[1], bad}, ";")})
	waitCached(t, good[:2], cluster.Nodes, nil)

	// A new image reaches every node although the broken one keeps every
	// new pod from being Ready: the update does not wait node by node.
	images := strings.Join([]string{good[0], good[1], good[2], bad}, ";")
	kubectl(t, fmt.Sprintf(`{"data": {"IMAGES": %q}}`, images), "patch", "configmap", "-n", ns, "k8s-image-puller", "--type", "merge", "--patch-file", "/dev/stdin")
	waitCached(t, good[2:], cluster.Nodes, nil)
	eventually(t, 2*time.Minute, "the failing image named in every pod status", func() (bool, string) {
		pods := pullerPods(t, ns)
		if len(pods) != len(cluster.Nodes) {
			return false, fmt.Sprintf("%d pods", len(pods))
		}
		for _, p := range pods {
			named := false
			for _, cs := range p.Status.ContainerStatuses {
				switch {
				case cs.Name == "broken":
					if cs.State.Waiting == nil || (cs.State.Waiting.Reason != "ErrImagePull" && cs.State.Waiting.Reason != "ImagePullBackOff") {
						return false, fmt.Sprintf("%s: broken is %+v", p.Spec.NodeName, cs.State)
					}
					named = true
				case cs.State.Running == nil:
					return false, fmt.Sprintf("%s: %s is not running: %+v", p.Spec.NodeName, cs.Name, cs.State)
				}
			}
			if !named {
				return false, p.Spec.NodeName + ": no status for the broken container yet"
			}
		}
		return true, ""
	})
}

// leaderReconciled waits until the puller's running controller, read from
// its own metrics, has finished reconciling the puller at least once.
func leaderReconciled(t *testing.T, ns string) {
	t.Helper()
	waitReconciles(t, ns, runningController(t, ns), 0, 1, 2*time.Minute)
}

// waitReconciles waits, at most timeout, until the controller pod in ns,
// read from its metrics, has finished n more reconciles of the puller than
// since.
func waitReconciles(t *testing.T, ns, pod string, since, n float64, timeout time.Duration) {
	t.Helper()
	eventually(t, timeout, fmt.Sprintf("%s: %v more reconciles of the puller", pod, n), func() (bool, string) {
		body, err := scrapeMetrics(t, ns, pod)
		if err != nil {
			return false, err.Error()
		}
		got := reconciles(body, "puller")
		return got >= since+n, fmt.Sprintf("%v reconciles, %v before", got, since)
	})
}

// runningController waits until one controller pod of the puller in ns
// runs, and names it.
func runningController(t *testing.T, ns string) string {
	t.Helper()
	var running []string
	eventually(t, 2*time.Minute, "one running controller pod", func() (bool, string) {
		running = nil
		for _, p := range controllerPods(t, ns) {
			if p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning {
				running = append(running, p.Name)
			}
		}
		return len(running) == 1, fmt.Sprintf("running controller pods: %v", running)
	})
	return running[0]
}

// reconciles sums controller-runtime's controller_runtime_reconcile_total
// for controller in a scrape.
func reconciles(scrape, controller string) float64 {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(scrape))
	if err != nil {
		return 0
	}
	total := 0.0
	for _, m := range families["controller_runtime_reconcile_total"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "controller" && l.GetValue() == controller {
				total += m.GetCounter().GetValue()
			}
		}
	}
	return total
}
