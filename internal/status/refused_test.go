package status

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestMarkRefused(t *testing.T) {
	ds := daemonSet("java=reg/java:17")
	r := Compute(ds, []corev1.Pod{pod(ds, "n1", statuses(running("java", t0)))}, []corev1.Node{node("n1"), node("n2"), node("n3", cordoned)})
	if !r.MissingPods() {
		t.Fatal("n2 and n3 have no pod")
	}
	msg := `pods "kubernetes-image-puller-x" is forbidden: violates PodSecurity "restricted:latest": hostPath volumes`
	r.MarkRefused(msg)
	if c := r.Nodes[1].Images["java"]; c.State != Failed || c.Reason != ReasonFailedCreate || c.Message != msg {
		t.Errorf("n2: %+v", c)
	}
	if c := r.Nodes[0].Images["java"]; c.State != Cached {
		t.Errorf("n1, which runs its pod: %+v", c)
	}
	if len(r.Summary.Failing) != 1 || r.Summary.Failing[0].Node != "n2" {
		t.Errorf("failing %+v: want n2 only (n3 is cordoned)", r.Summary.Failing)
	}
	full := Compute(ds, []corev1.Pod{pod(ds, "n1", statuses(running("java", t0)))}, []corev1.Node{node("n1")})
	if full.MissingPods() {
		t.Error("every node runs its pod")
	}
}
