package predicates

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
)

func TestUpdateChanged(t *testing.T) {
	labelChanged := UpdateChanged(func(old, cur *corev1.ConfigMap) bool { return old.Labels["a"] != cur.Labels["a"] })
	cm := func(a string) *corev1.ConfigMap {
		return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"a": a}}}
	}
	cases := []struct {
		name     string
		old, cur client.Object
		want     bool
	}{
		{"the compared field moved", cm("1"), cm("2"), true},
		{"the compared field stayed", cm("1"), cm("1"), false},
		{"another type", &corev1.Secret{}, &corev1.Secret{}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := labelChanged.Update(event.UpdateEvent{ObjectOld: tc.old, ObjectNew: tc.cur}); got != tc.want {
				t.Errorf("passes = %v, want %v", got, tc.want)
			}
		})
	}
	if !labelChanged.Create(event.CreateEvent{Object: cm("1")}) || !labelChanged.Delete(event.DeleteEvent{Object: cm("1")}) {
		t.Error("creations and deletions must pass")
	}
}
