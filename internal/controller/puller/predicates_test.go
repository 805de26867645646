package puller

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/event"
)

func TestDaemonSetChanged(t *testing.T) {
	base := func() *appsv1.DaemonSet {
		ds := &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: "p", ResourceVersion: "1", Labels: map[string]string{"a": "b"}}}
		ds.Spec.Template.Spec.Containers = nil
		return ds
	}
	cases := []struct {
		name   string
		change func(*appsv1.DaemonSet)
		want   bool
	}{
		{"status only", func(ds *appsv1.DaemonSet) { ds.Status.NumberReady = 3; ds.ResourceVersion = "2" }, false},
		{"managed fields only", func(ds *appsv1.DaemonSet) {
			ds.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: "kube-controller-manager"}}
		}, false},
		{"spec", func(ds *appsv1.DaemonSet) { ds.Spec.MinReadySeconds = 5 }, true},
		{"label", func(ds *appsv1.DaemonSet) { ds.Labels["a"] = "c" }, true},
		{"annotation", func(ds *appsv1.DaemonSet) { ds.Annotations = map[string]string{"x": "y"} }, true},
		{"owner removed", func(ds *appsv1.DaemonSet) { ds.OwnerReferences = []metav1.OwnerReference{{Name: "d"}} }, true},
		{"being deleted", func(ds *appsv1.DaemonSet) { now := metav1.Now(); ds.DeletionTimestamp = &now }, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			old, cur := base(), base()
			tc.change(cur)
			if got := daemonSetChanged.Update(event.UpdateEvent{ObjectOld: old, ObjectNew: cur}); got != tc.want {
				t.Errorf("passes = %v, want %v", got, tc.want)
			}
		})
	}
	if !daemonSetChanged.Delete(event.DeleteEvent{Object: base()}) || !daemonSetChanged.Create(event.CreateEvent{Object: base()}) {
		t.Error("creations and deletions must pass")
	}
}
