package daemonset

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
)

func TestRolledOut(t *testing.T) {
	ds := func(generation int64, st appsv1.DaemonSetStatus) *appsv1.DaemonSet {
		d := &appsv1.DaemonSet{Status: st}
		d.Generation = generation
		return d
	}
	tests := []struct {
		name string
		ds   *appsv1.DaemonSet
		want bool
	}{
		{"every node ready and updated", ds(2, appsv1.DaemonSetStatus{ObservedGeneration: 2, DesiredNumberScheduled: 3, UpdatedNumberScheduled: 3, NumberReady: 3}), true},
		{"no node selected", ds(1, appsv1.DaemonSetStatus{ObservedGeneration: 1}), true},
		{"not observed yet", ds(2, appsv1.DaemonSetStatus{ObservedGeneration: 1, DesiredNumberScheduled: 3, UpdatedNumberScheduled: 3, NumberReady: 3}), false},
		{"never observed", ds(1, appsv1.DaemonSetStatus{}), false},
		{"one node still pulling", ds(1, appsv1.DaemonSetStatus{ObservedGeneration: 1, DesiredNumberScheduled: 3, UpdatedNumberScheduled: 3, NumberReady: 2, NumberUnavailable: 1}), false},
		{"one node on the old template", ds(1, appsv1.DaemonSetStatus{ObservedGeneration: 1, DesiredNumberScheduled: 3, UpdatedNumberScheduled: 2, NumberReady: 3}), false},
		{"ready but counted unavailable", ds(1, appsv1.DaemonSetStatus{ObservedGeneration: 1, DesiredNumberScheduled: 3, UpdatedNumberScheduled: 3, NumberReady: 3, NumberUnavailable: 1}), false},
	}
	for _, tt := range tests {
		if got := RolledOut(tt.ds); got != tt.want {
			t.Errorf("%s: RolledOut = %v, want %v", tt.name, got, tt.want)
		}
	}
}
