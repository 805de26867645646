//go:build integration

package puller

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/kip-image-puller/kip/internal/config"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// readyNode creates a Ready node; envtest runs no kubelet, so the test
// writes what a kubelet would.
func readyNode(t *testing.T, name string) {
	t.Helper()
	ctx := context.Background()
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := k8s.Create(ctx, n); err != nil {
		t.Fatal(err)
	}
	n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now()}}
	if err := k8s.Status().Update(ctx, n); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), n) })
}

// daemonSetPod creates the DaemonSet's pod on a node, as the DaemonSet
// controller would, and returns it.
func daemonSetPod(t *testing.T, ds *appsv1.DaemonSet, node string) *corev1.Pod {
	t.Helper()
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: ds.Name + "-" + node, Namespace: ds.Namespace, Labels: ds.Spec.Template.Labels,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "DaemonSet", Name: ds.Name, UID: ds.UID, Controller: ptr.To(true)}},
		},
		Spec: *ds.Spec.Template.Spec.DeepCopy(),
	}
	p.Spec.NodeName = node
	if err := k8s.Create(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	return p
}

// setContainers writes container statuses the way the kubelet does.
func setContainers(t *testing.T, p *corev1.Pod, statuses ...corev1.ContainerStatus) {
	t.Helper()
	p.Status.Phase = corev1.PodRunning
	p.Status.ContainerStatuses = statuses
	if err := k8s.Status().Update(context.Background(), p); err != nil {
		t.Fatal(err)
	}
}

func runningStatus(name string) corev1.ContainerStatus {
	return corev1.ContainerStatus{Name: name, Ready: true, Image: name, ImageID: "reg.example.com/" + name + "@sha256:" + strings.Repeat("c", 64),
		State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.Now()}}}
}

func waitingStatus(name, reason, message string) corev1.ContainerStatus {
	return corev1.ContainerStatus{Name: name, Image: name, State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: message}}}
}

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
	readyNode(t, n1)
	readyNode(t, n2)
	if err := k8s.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: ns}}); err != nil {
		t.Fatal(err)
	}
	if err := k8s.Create(ctx, configMap(ns, map[string]string{config.KeyImages: "java=reg.example.com/java:17;node=reg.example.com/node:22"})); err != nil {
		t.Fatal(err)
	}
	warmBefore, _ := gauge(t, "kip_warm_duration_seconds", nil)
	startController(t, ns)
	ds := waitForImages(t, ns, dsName, "java=reg.example.com/java:17;node=reg.example.com/node:22")

	p1, p2 := daemonSetPod(t, ds, n1), daemonSetPod(t, ds, n2)
	setContainers(t, p1, runningStatus("java"), waitingStatus("node", "ErrImagePull", "manifest unknown"))
	setContainers(t, p2, runningStatus("java"), waitingStatus("node", "ImagePullBackOff", `Back-off pulling image "reg.example.com/node:22": 401 Unauthorized`))

	// One Event per node, each kept with its own message.
	waitForEvent(t, ns, ReasonImageFailing, "DaemonSet", "node on "+n1+": ErrImagePull: manifest unknown")
	failing := waitForEvent(t, ns, ReasonImageFailing, "DaemonSet", "node on "+n2+": ImagePullBackOff")
	if failing.Type != corev1.EventTypeWarning || !strings.Contains(failing.Note, "401 Unauthorized") || failing.Regarding.UID != ds.UID {
		t.Errorf("ImageFailing event %+v", failing)
	}
	eventually(t, 10*time.Second, "failing and cached metrics", func() (bool, string) {
		f, ok := gauge(t, "kip_image_failing", map[string]string{"node": n2, "image": "node", "reason": "ImagePullBackOff"})
		c, _ := gauge(t, "kip_images_cached", map[string]string{"node": n1})
		w, _ := gauge(t, "kip_images_wanted", nil)
		return ok && f == 1 && c == 1 && w == 2, ""
	})
	setContainers(t, p1, runningStatus("java"), runningStatus("node"))
	waitForEvent(t, ns, ReasonImageRecovered, "DaemonSet", "node on "+n1+" is cached again")

	// The kubelet alternates between ErrImagePull and ImagePullBackOff: still one Event.
	setContainers(t, p2, runningStatus("java"), waitingStatus("node", "ErrImagePull", "401 Unauthorized"))
	time.Sleep(2 * time.Second)
	if n := len(events(t, ns, ReasonImageFailing)); n != 2 {
		t.Errorf("%d ImageFailing events for one image failing on two nodes, want 2", n)
	}

	// It recovers: one Event for that, and one for every node being warm.
	setContainers(t, p2, runningStatus("java"), runningStatus("node"))
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
