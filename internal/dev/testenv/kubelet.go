package testenv

import (
	"context"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// envtest runs no kubelet and no DaemonSet controller: these helpers write
// what they would.

// ReadyNode creates a Ready, untainted node with labels, removed when the
// test ends.
func (e *Env) ReadyNode(t testing.TB, name string, labels map[string]string) {
	t.Helper()
	ctx := t.Context()
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	if err := e.Client.Create(ctx, n); err != nil {
		t.Fatal(err)
	}
	n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now()}}
	if err := e.Client.Status().Update(ctx, n); err != nil {
		t.Fatal(err)
	}
	// The API server taints a new node not-ready; the node lifecycle
	// controller lifts the taint once the node is Ready.
	n.Spec.Taints = nil
	if err := e.Client.Update(ctx, n); err != nil {
		t.Fatal(err)
	}
	// t.Context() is already canceled when cleanups run.
	t.Cleanup(func() { _ = e.Client.Delete(context.Background(), n) })
}

// DaemonSetPod creates the DaemonSet's pod on a node, as the DaemonSet
// controller would, and returns it.
func (e *Env) DaemonSetPod(t testing.TB, ds *appsv1.DaemonSet, node string) *corev1.Pod {
	t.Helper()
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: ds.Name + "-" + node, Namespace: ds.Namespace, Labels: ds.Spec.Template.Labels,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "DaemonSet", Name: ds.Name, UID: ds.UID, Controller: ptr.To(true)}},
		},
		Spec: *ds.Spec.Template.Spec.DeepCopy(),
	}
	p.Spec.NodeName = node
	if err := e.Client.Create(t.Context(), p); err != nil {
		t.Fatal(err)
	}
	return p
}

// SetContainers writes container statuses the way the kubelet does.
func (e *Env) SetContainers(t testing.TB, p *corev1.Pod, statuses ...corev1.ContainerStatus) {
	t.Helper()
	p.Status.Phase = corev1.PodRunning
	p.Status.ContainerStatuses = statuses
	if err := e.Client.Status().Update(t.Context(), p); err != nil {
		t.Fatal(err)
	}
}

// Running is the status of a container whose image is cached and running.
func Running(name string) corev1.ContainerStatus {
	return corev1.ContainerStatus{Name: name, Ready: true, Image: name, ImageID: "reg.example.com/" + name + "@sha256:" + strings.Repeat("c", 64),
		State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.Now()}}}
}

// Waiting is the status of a container waiting for reason.
func Waiting(name, reason, message string) corev1.ContainerStatus {
	return corev1.ContainerStatus{Name: name, Image: name, State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: message}}}
}
