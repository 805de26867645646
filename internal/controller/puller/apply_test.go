package puller

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestDesiredHashFollowsTheSpec(t *testing.T) {
	ds := func(image string) *appsv1.DaemonSet {
		d := &appsv1.DaemonSet{TypeMeta: metav1.TypeMeta{APIVersion: "apps/v1", Kind: "DaemonSet"}, ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns"}}
		d.Spec.Template.Spec.Containers = []corev1.Container{{Name: "a", Image: image}}
		return d
	}
	first, second := ds("a:1"), ds("a:1")
	if desiredHash(first) == "" || desiredHash(first) != desiredHash(second) {
		t.Error("two equal DaemonSets hash differently, or not at all")
	}
	if desiredHash(ds("a:1")) == desiredHash(ds("a:2")) {
		t.Error("a changed image keeps the hash: a restore would be told from an apply wrongly")
	}
	withStatus := ds("a:1")
	withStatus.Status.NumberReady = 3
	if desiredHash(withStatus) != desiredHash(ds("a:1")) {
		t.Error("status changes the hash; only what is applied should")
	}
}
