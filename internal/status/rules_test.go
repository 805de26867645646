package status

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// The documented rules, each pinned on both sides.

func TestCompleteNeedsASelectedNode(t *testing.T) {
	cases := []struct {
		s    Summary
		want bool
	}{
		{Summary{}, false}, // nothing selected is not "warm"
		{Summary{NodesSelected: 2, NodesWarm: 2}, true},
		{Summary{NodesSelected: 2, NodesWarm: 1}, false},
	}
	for _, tc := range cases {
		if got := tc.s.Complete(); got != tc.want {
			t.Errorf("%+v.Complete() = %v, want %v", tc.s, got, tc.want)
		}
	}
}

func TestOnlyNoScheduleAndNoExecuteTaintsDeselect(t *testing.T) {
	ds := daemonSet("java=reg/java:17")
	taint := func(effect corev1.TaintEffect) nodeOpt {
		return func(n *corev1.Node) { n.Spec.Taints = []corev1.Taint{{Key: "k", Effect: effect}} }
	}
	nodes := []corev1.Node{
		node("no-execute", taint(corev1.TaintEffectNoExecute)),
		node("no-schedule", taint(corev1.TaintEffectNoSchedule)),
		node("prefer", taint(corev1.TaintEffectPreferNoSchedule)),
	}
	r := Compute(ds, nil, nodes)
	want := map[string]bool{"no-execute": false, "no-schedule": false, "prefer": true}
	for _, n := range r.Nodes {
		if n.Selected != want[n.Name] {
			t.Errorf("node %s selected = %v, want %v", n.Name, n.Selected, want[n.Name])
		}
	}
}

func TestInitContainerStates(t *testing.T) {
	ds := daemonSet("java=reg/java:17")
	exited := func(code int32, reason string) corev1.ContainerStatus {
		return corev1.ContainerStatus{Name: "kip-install-sleep", State: corev1.ContainerState{
			Terminated: &corev1.ContainerStateTerminated{ExitCode: code, Reason: reason, Message: "cp failed"}}}
	}
	cases := []struct {
		name   string
		init   corev1.ContainerStatus
		state  State
		reason string
	}{
		{"installed the sleeper", exited(0, "Completed"), Pulling, ""},
		{"failed with a reason", exited(1, "OOMKilled"), Failed, "Init:OOMKilled"},
		{"failed without a reason", exited(2, ""), Failed, "Init:Error"},
		{"cannot pull the puller image", waiting("kip-install-sleep", "ImagePullBackOff", "no such image"), Failed, "Init:ImagePullBackOff"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := pod(ds, "n1", phase(corev1.PodPending), initStatus(tc.init), statuses(waiting("java", "PodInitializing", "")))
			r := Compute(ds, []corev1.Pod{p}, []corev1.Node{node("n1")})
			c := r.Nodes[0].Images["java"]
			if c.State != tc.state || c.Reason != tc.reason {
				t.Errorf("cell %+v, want %s (%q)", c, tc.state, tc.reason)
			}
		})
	}
}

func TestLineShortensLongMessagesFromTheEnd(t *testing.T) {
	exact := strings.Repeat("m", maxMessage)
	longer := "HEAD" + exact
	r := Report{Summary: Summary{NodesSelected: 1, ImagesWanted: 2, Failing: []Failure{
		{Node: "n1", Image: "a", Reason: "ErrImagePull", Message: exact},
		{Node: "n1", Image: "b", Reason: "ErrImagePull", Message: longer},
	}}}
	line := r.Line()
	if !strings.Contains(line, "a on n1 (ErrImagePull: "+exact+")") {
		t.Errorf("a message of exactly %d characters is kept whole: %s", maxMessage, line)
	}
	if strings.Contains(line, "HEAD") || !strings.Contains(line, "b on n1 (ErrImagePull: ..."+exact+")") {
		t.Errorf("a longer message keeps its last %d characters: %s", maxMessage, line)
	}
}

func TestNodesInNameOrder(t *testing.T) {
	ds := daemonSet("java=reg/java:17")
	r := Compute(ds, nil, []corev1.Node{node("n3"), node("n1"), node("n2")})
	var names []string
	for _, n := range r.Nodes {
		names = append(names, n.Name)
	}
	if strings.Join(names, ",") != "n1,n2,n3" {
		t.Errorf("nodes %v, want in name order", names)
	}
}
