//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kip-image-puller/kip/internal/daemonset"
	"github.com/kip-image-puller/kip/internal/dev/cri"
	"github.com/kip-image-puller/kip/internal/dev/imagebuild"
)

// The README's headline behaviours, each on the local cluster.

// installRolledOut installs the puller with images as IMAGES, as the
// documentation says, and waits until its Deployment is available and its
// DaemonSet runs on every node.
func installRolledOut(t *testing.T, ns, images string) *appsv1.DaemonSet {
	t.Helper()
	install(t, ns, map[string]string{"IMAGES": images})
	kubectl(t, "", "rollout", "status", "-n", ns, "deployment/kubernetes-image-puller", "--timeout=3m")
	return waitRolledOut(t, ns, len(cluster.Nodes))
}

// getDS reads the puller's DaemonSet.
func getDS(ns string) (*appsv1.DaemonSet, error) {
	var ds appsv1.DaemonSet
	err := cluster.c.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: dsName}, &ds)
	return &ds, err
}

// controllerPods lists the puller controller's pods.
func controllerPods(t *testing.T, ns string) []corev1.Pod {
	t.Helper()
	var pods corev1.PodList
	if err := cluster.c.List(context.Background(), &pods, client.InNamespace(ns),
		client.MatchingLabels{"app.kubernetes.io/component": "controller"}); err != nil {
		t.Fatal(err)
	}
	return pods.Items
}

// waitEvent waits for an Event of reason about kind whose message contains s.
func waitEvent(t *testing.T, ns, reason, kind, s string) corev1.Event {
	t.Helper()
	var found corev1.Event
	eventually(t, 2*time.Minute, "Event "+reason, func() (bool, string) {
		var list corev1.EventList
		if err := cluster.c.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
			return false, err.Error()
		}
		for _, e := range list.Items {
			if e.Reason == reason && e.InvolvedObject.Kind == kind && strings.Contains(e.Message, s) {
				found = e
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d events, none %s about %s with %q", len(list.Items), reason, kind, s)
	})
	return found
}

func patchConfigMap(t *testing.T, ns string, data map[string]string) {
	t.Helper()
	var parts []string
	for k, v := range data {
		parts = append(parts, fmt.Sprintf("%q: %q", k, v))
	}
	kubectl(t, `{"data": {`+strings.Join(parts, ", ")+`}}`, "patch", "configmap", "-n", ns, "k8s-image-puller", "--type", "merge", "--patch-file", "/dev/stdin")
}

// TestInvalidConfigMapAppliedLive: an invalid ConfigMap is reported by an
// Event naming the key, the controller neither restarts nor touches the last
// good DaemonSet, and a fixed ConfigMap is applied.
func TestInvalidConfigMapAppliedLive(t *testing.T) {
	ns := namespace(t)
	entries := pushSamples(t, "live", 2, false)
	good := installRolledOut(t, ns, strings.Join(entries, ";"))
	controllers := controllerPods(t, ns)

	patchConfigMap(t, ns, map[string]string{"CACHING_MEMORY_LIMIT": "lots"})
	ev := waitEvent(t, ns, "InvalidConfiguration", "ConfigMap", "CACHING_MEMORY_LIMIT")
	if !strings.Contains(ev.Message, `"lots"`) || ev.Type != corev1.EventTypeWarning {
		t.Errorf("Event %s %q, want a Warning naming the value", ev.Type, ev.Message)
	}
	if now := daemonSet(t, ns); now.Generation != good.Generation || now.UID != good.UID {
		t.Errorf("the DaemonSet changed under an invalid ConfigMap: generation %d -> %d", good.Generation, now.Generation)
	}
	restarts := map[types.UID]int32{}
	for _, p := range controllers {
		restarts[p.UID] = p.Status.ContainerStatuses[0].RestartCount
		if n := p.Status.ContainerStatuses[0].RestartCount; n > 0 {
			t.Logf("controller pod %s restarted %d times before the test's change: %+v", p.Name, n, p.Status.ContainerStatuses[0].LastTerminationState)
		}
	}
	for _, p := range controllerPods(t, ns) {
		before, known := restarts[p.UID]
		if now := p.Status.ContainerStatuses[0].RestartCount; !known || now != before {
			last, _ := cluster.RunKubectl("", "logs", "-n", ns, p.Name, "--previous", "--tail", "20")
			t.Errorf("controller pod %s is new (%v) or restarted since the invalid ConfigMap (%d -> %d restarts); last state %+v; previous logs:\n%s",
				p.Name, !known, before, now, p.Status.ContainerStatuses[0].LastTerminationState, last)
		}
	}

	// Fixed, with one image fewer: applied, and said so.
	patchConfigMap(t, ns, map[string]string{"CACHING_MEMORY_LIMIT": "30Mi", "IMAGES": entries[0]})
	waitEvent(t, ns, "ConfigurationValid", "ConfigMap", "valid again")
	eventually(t, time.Minute, "the fixed ConfigMap applied", func() (bool, string) {
		ds := daemonSet(t, ns)
		return len(ds.Spec.Template.Spec.Containers) == 1, fmt.Sprintf("%d containers", len(ds.Spec.Template.Spec.Containers))
	})
}

// TestDaemonSetRestoredAfterHandEdits deletes the DaemonSet by hand, then
// removes a container from it: both are undone within seconds.
func TestDaemonSetRestoredAfterHandEdits(t *testing.T) {
	ns := namespace(t)
	entries := pushSamples(t, "hand", 2, false)
	first := installRolledOut(t, ns, strings.Join(entries, ";"))

	kubectl(t, "", "delete", "daemonset", "-n", ns, dsName, "--wait=true")
	start := time.Now()
	eventually(t, 30*time.Second, "the deleted DaemonSet restored", func() (bool, string) {
		got, err := getDS(ns)
		return err == nil && got.UID != first.UID && len(got.Spec.Template.Spec.Containers) == 2, fmt.Sprint(err)
	})
	t.Logf("deleted DaemonSet restored after %v", time.Since(start).Round(100*time.Millisecond))

	kubectl(t, `[{"op": "remove", "path": "/spec/template/spec/containers/1"}]`, "patch", "daemonset", "-n", ns, dsName, "--type", "json", "--patch-file", "/dev/stdin")
	start = time.Now()
	eventually(t, 30*time.Second, "the removed container restored", func() (bool, string) {
		got, err := getDS(ns)
		if err != nil {
			return false, err.Error()
		}
		var names []string
		for _, c := range got.Spec.Template.Spec.Containers {
			names = append(names, c.Name)
		}
		return slices.Equal(names, []string{"hand1", "hand2"}), strings.Join(names, ",")
	})
	t.Logf("edited DaemonSet restored after %v", time.Since(start).Round(100*time.Millisecond))
	waitEvent(t, ns, "Restored", "DaemonSet", "restored")
	waitRolledOut(t, ns, len(cluster.Nodes))
	waitCached(t, entries, cluster.Nodes, nil)
}

// TestTagMovesToANewDigest pushes new content under a cached tag. The
// controller's next refresh (here: the one a restarted controller makes at
// start) finds the new digest, rolls the pods, and every node then holds it.
func TestTagMovesToANewDigest(t *testing.T) {
	ns := namespace(t)
	entries := pushSamples(t, "tag", 2, false)
	installRolledOut(t, ns, strings.Join(entries, ";"))
	waitCached(t, entries, cluster.Nodes, nil)
	before := podUIDs(pullerPods(t, ns))

	ref := refsOf(entries[:1])[0]
	sleep, err := imagebuild.FileFromDisk(cluster.root+"/bin/kip-sleep", "/bin/sleep", 0o755)
	if err != nil {
		t.Fatal(err)
	}
	moved := pushImage(t, cluster.RegistryPush+strings.TrimPrefix(ref, cluster.Registry), authn.Anonymous, sleep)
	if got := podUIDs(pullerPods(t, ns)); !slices.Equal(got, before) {
		t.Errorf("the pods rolled before any refresh: %v -> %v", before, got)
	}

	kubectl(t, "", "delete", "pod", "-n", ns, "-l", "app.kubernetes.io/component=controller", "--wait=true")
	waitEvent(t, ns, "ImageChanged", "DaemonSet", ref)
	eventually(t, time.Minute, "the new digest recorded", func() (bool, string) {
		recorded := daemonset.RecordedRefresh(daemonSet(t, ns)).Digests[ref]
		return recorded == moved, recorded
	})
	waitRolledOut(t, ns, len(cluster.Nodes))
	repo := ref[:strings.LastIndex(ref, ":")]
	eventually(t, 3*time.Minute, "every node holds "+repo+"@"+moved, func() (bool, string) {
		held, err := cluster.NodeImages(context.Background())
		if err != nil {
			return false, err.Error()
		}
		var missing []string
		for _, n := range cluster.Nodes {
			if !cri.Has(held[n], repo+"@"+moved) {
				missing = append(missing, n)
			}
		}
		return len(missing) == 0, "missing on " + strings.Join(missing, ", ")
	})
	if got := podUIDs(pullerPods(t, ns)); slices.Equal(got, before) {
		t.Error("the puller pods did not roll for the moved tag")
	}
}

// TestMetricsScraped reads the controller's Prometheus endpoint as
// Prometheus does: HTTPS with the token of a ServiceAccount bound to the
// metrics reader role. What is wanted, cached per node, and failing.
func TestMetricsScraped(t *testing.T) {
	ns := namespace(t)
	entries := pushSamples(t, "metric", 2, false)
	missing := "missing=" + cluster.Registry + "/e2e/not-pushed:v1"
	install(t, ns, map[string]string{"IMAGES": strings.Join(append(entries, missing), ";")})
	kubectl(t, "", "rollout", "status", "-n", ns, "deployment/kubernetes-image-puller", "--timeout=3m")
	waitCached(t, entries, cluster.Nodes, nil)

	var metrics string
	eventually(t, 2*time.Minute, "metrics report every node", func() (bool, string) {
		pods := controllerPods(t, ns)
		if len(pods) != 1 {
			return false, fmt.Sprintf("%d controller pods", len(pods))
		}
		out, err := scrapeMetrics(t, ns, pods[0].Name)
		if err != nil {
			return false, err.Error()
		}
		metrics = out
		for _, n := range cluster.Nodes {
			if !regexp.MustCompile(`(?m)^kip_image_failing\{image="missing",node="`+n+`",reason="(ErrImagePull|ImagePullBackOff)"\} 1$`).MatchString(out) ||
				!regexp.MustCompile(`(?m)^kip_images_cached\{node="`+n+`"\} 2$`).MatchString(out) {
				return false, "not yet for " + n
			}
		}
		return true, ""
	})
	for _, want := range []string{"kip_images_wanted 3", fmt.Sprintf("kip_nodes_selected %d", len(cluster.Nodes)), "kip_nodes_warm 0"} {
		if !strings.Contains(metrics, "\n"+want+"\n") {
			t.Errorf("metrics lack %q", want)
		}
	}
}

// TestTwoControllerReplicas runs the controller twice: one leads and
// writes; killing it hands over without touching the DaemonSet.
func TestTwoControllerReplicas(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t)
	entries := pushSamples(t, "ha", 2, false)
	install(t, ns, map[string]string{"IMAGES": entries[0]})
	kubectl(t, "", "scale", "deployment", "-n", ns, "kubernetes-image-puller", "--replicas=2")
	kubectl(t, "", "rollout", "status", "-n", ns, "deployment/kubernetes-image-puller", "--timeout=3m")
	waitRolledOut(t, ns, len(cluster.Nodes))

	leader := func() string {
		var lease coordinationv1.Lease
		if err := cluster.c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "kip-k8s-image-puller"}, &lease); err != nil || lease.Spec.HolderIdentity == nil {
			return ""
		}
		pod, _, _ := strings.Cut(*lease.Spec.HolderIdentity, "_")
		return pod
	}
	var first string
	eventually(t, time.Minute, "a leader", func() (bool, string) { first = leader(); return first != "", "no holder" })

	// A change is applied once, by the leader alone.
	gen := daemonSet(t, ns).Generation
	patchConfigMap(t, ns, map[string]string{"IMAGES": strings.Join(entries, ";")})
	eventually(t, time.Minute, "the change applied", func() (bool, string) {
		n := len(daemonSet(t, ns).Spec.Template.Spec.Containers)
		return n == 2, fmt.Sprintf("%d containers", n)
	})
	waitRolledOut(t, ns, len(cluster.Nodes))
	if now := daemonSet(t, ns).Generation; now != gen+1 {
		t.Errorf("DaemonSet generation %d -> %d for one change, want one write", gen, now)
	}
	for _, p := range controllerPods(t, ns) {
		logs := kubectl(t, "", "logs", "-n", ns, p.Name)
		applied := strings.Contains(logs, "applied DaemonSet")
		if p.Name != first && applied {
			t.Errorf("the follower %s applied the DaemonSet", p.Name)
		}
		if p.Name == first && !applied {
			t.Errorf("the leader %s did not log its apply", p.Name)
		}
	}

	// The leader goes; the other takes over and leaves the DaemonSet as it is.
	ds := daemonSet(t, ns)
	kubectl(t, "", "delete", "pod", "-n", ns, first, "--wait=true")
	eventually(t, 90*time.Second, "a new leader", func() (bool, string) {
		l := leader()
		return l != "" && l != first, "holder " + l
	})
	if now := daemonSet(t, ns); now.Generation != ds.Generation {
		t.Errorf("the hand-over changed the DaemonSet: generation %d -> %d", ds.Generation, now.Generation)
	}
	waitCached(t, entries, cluster.Nodes, nil)
}
