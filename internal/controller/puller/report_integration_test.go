//go:build integration

package puller

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/kip-image-puller/kip/internal/config"
	"github.com/kip-image-puller/kip/internal/dev/testenv"
)

// gauge reads a metric with the given labels from the controller's registry.
func gauge(t *testing.T, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	families, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue next
				}
			}
			switch {
			case m.Gauge != nil:
				return m.GetGauge().GetValue(), true
			case m.Histogram != nil:
				return float64(m.GetHistogram().GetSampleCount()), true
			}
		}
	}
	return 0, false
}

func TestReportsFailingRecoveredAndWarm(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	n1, n2 := ns+"-node1", ns+"-node2"
	env.ReadyNode(t, n1, nil)
	env.ReadyNode(t, n2, nil)
	if err := k8s.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: ns}}); err != nil {
		t.Fatal(err)
	}
	if err := k8s.Create(ctx, configMap(ns, map[string]string{config.KeyImages: "java=reg.example.com/java:17;node=reg.example.com/node:22"})); err != nil {
		t.Fatal(err)
	}
	warmBefore, _ := gauge(t, "kip_warm_duration_seconds", nil)
	startController(t, ns)
	ds := waitForImages(t, ns, dsName, "java=reg.example.com/java:17;node=reg.example.com/node:22")

	p1, p2 := env.DaemonSetPod(t, ds, n1), env.DaemonSetPod(t, ds, n2)
	env.SetContainers(t, p1, testenv.Running("java"), testenv.Waiting("node", "ErrImagePull", "manifest unknown"))
	env.SetContainers(t, p2, testenv.Running("java"), testenv.Waiting("node", "ImagePullBackOff", `Back-off pulling image "reg.example.com/node:22": 401 Unauthorized`))

	// One Event per node, each kept with its own message.
	waitForEvent(t, ns, ReasonImageFailing, "DaemonSet", "node on "+n1+": ErrImagePull: manifest unknown")
	failing := waitForEvent(t, ns, ReasonImageFailing, "DaemonSet", "node on "+n2+": ImagePullBackOff")
	if failing.Type != corev1.EventTypeWarning || !strings.Contains(failing.Note, "401 Unauthorized") || failing.Regarding.UID != ds.UID {
		t.Errorf("ImageFailing event %+v", failing)
	}
	testenv.Eventually(t, 10*time.Second, "failing and cached metrics", func() (bool, string) {
		f, ok := gauge(t, "kip_image_failing", map[string]string{"node": n2, "image": "node", "reason": "ImagePullBackOff"})
		c, _ := gauge(t, "kip_images_cached", map[string]string{"node": n1})
		w, _ := gauge(t, "kip_images_wanted", nil)
		return ok && f == 1 && c == 1 && w == 2, ""
	})
	env.SetContainers(t, p1, testenv.Running("java"), testenv.Running("node"))
	waitForEvent(t, ns, ReasonImageRecovered, "DaemonSet", "node on "+n1+" is cached again")

	// The kubelet alternates between ErrImagePull and ImagePullBackOff: still one Event.
	since := testenv.ReconcileCount(t, "puller-status")
	env.SetContainers(t, p2, testenv.Running("java"), testenv.Waiting("node", "ErrImagePull", "401 Unauthorized"))
	waitForReconcile(t, "puller-status", since) // the reporter saw the new state
	if n := len(events(t, ns, ReasonImageFailing)); n != 2 {
		t.Errorf("%d ImageFailing events for one image failing on two nodes, want 2", n)
	}

	// It recovers: one Event for that, and one for every node being warm.
	env.SetContainers(t, p2, testenv.Running("java"), testenv.Running("node"))
	waitForEvent(t, ns, ReasonImageRecovered, "DaemonSet", "node on "+n2+" is cached again")
	warm := waitForEvent(t, ns, ReasonAllNodesWarm, "DaemonSet", "all 2 selected nodes hold all 2 images")
	if !strings.Contains(warm.Note, "after the change") {
		t.Errorf("AllNodesWarm note %q", warm.Note)
	}
	if after, _ := gauge(t, "kip_warm_duration_seconds", nil); after != warmBefore+1 {
		t.Errorf("warm duration observations %v -> %v, want one more", warmBefore, after)
	}
	if _, ok := gauge(t, "kip_image_failing", map[string]string{"node": n2, "image": "node"}); ok {
		t.Error("the failing metric stays after the image recovered")
	}
	if n := len(events(t, ns, ReasonAllNodesWarm)); n != 1 {
		t.Errorf("%d AllNodesWarm events, want 1", n)
	}
}

// TestRestartedControllerReportsThePodsItFinds: a controller that starts
// while the DaemonSet's pods already run reports them as they are. Its
// cache starts from a watch list, whose objects client-go transforms twice;
// a transform that was not idempotent left every pod it found at start
// with no containers: 0 images cached on every node, until each pod changed.
func TestRestartedControllerReportsThePodsItFinds(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	n1, n2 := ns+"-node1", ns+"-node2"
	env.ReadyNode(t, n1, nil)
	env.ReadyNode(t, n2, nil)
	if err := k8s.Create(ctx, configMap(ns, map[string]string{config.KeyImages: "java=reg.example.com/java:17;node=reg.example.com/node:22"})); err != nil {
		t.Fatal(err)
	}
	first := startController(t, ns)
	ds := waitForImages(t, ns, dsName, "java=reg.example.com/java:17;node=reg.example.com/node:22")
	for _, n := range []string{n1, n2} {
		env.SetContainers(t, env.DaemonSetPod(t, ds, n), testenv.Running("java"), testenv.Running("node"))
	}
	cachedOnBoth := func() (bool, string) {
		c1, _ := gauge(t, "kip_images_cached", map[string]string{"node": n1})
		c2, _ := gauge(t, "kip_images_cached", map[string]string{"node": n2})
		return c1 == 2 && c2 == 2, fmt.Sprintf("cached: %s %v, %s %v", n1, c1, n2, c2)
	}
	testenv.Eventually(t, 10*time.Second, "the first controller: both images cached on both nodes", cachedOnBoth)
	first.stop(t)

	imagesCached.Reset() // what the next controller reports, not what the first one left
	second := startController(t, ns)
	testenv.Eventually(t, 10*time.Second, "the restarted controller: both images cached on both nodes", cachedOnBoth)
	second.stop(t)
}
