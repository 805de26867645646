package puller

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
)

func TestLeftBehind(t *testing.T) {
	own := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "puller", UID: "own"}}
	ds := func(name string, owner types.UID, controller bool) appsv1.DaemonSet {
		d := appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: name}}
		if owner != "" {
			d.OwnerReferences = []metav1.OwnerReference{{Kind: "Deployment", Name: "x", UID: owner, Controller: ptr.To(controller)}}
		}
		return d
	}
	deleting := ds("deleting", "own", true)
	deleting.DeletionTimestamp = &metav1.Time{}
	all := []appsv1.DaemonSet{
		ds("current", "own", true),
		ds("old", "own", true),
		ds("older", "own", true),
		ds("another-install", "other", true),
		ds("unowned", "", false),
		ds("owned-not-controlled", "own", false),
		deleting,
	}
	var got []string
	for _, d := range leftBehind(all, "current", own) {
		got = append(got, d.Name)
	}
	if want := []string{"old", "older"}; len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("leftBehind = %v, want %v", got, want)
	}
	if got := leftBehind(all, "current", nil); len(got) != 0 {
		t.Errorf("without its own Deployment the controller retires %d DaemonSets, want none", len(got))
	}
}
