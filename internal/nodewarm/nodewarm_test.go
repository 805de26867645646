package nodewarm

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestDesired(t *testing.T) {
	cached := func(name string) Image { return Image{Name: name, Cached: true} }
	for _, tc := range []struct {
		name                    string
		images                  []Image
		status, reason, message string
	}{
		{"every image", []Image{cached("a"), cached("b")}, "True", ReasonAllCached, "2/2 cached"},
		{"on their way", []Image{cached("a"), {Name: "b"}, {Name: "c"}}, "False", ReasonWarming, "1/3 cached"},
		{"failing, named in order", []Image{{Name: "app9", Failed: "ImagePullBackOff"}, {Name: "app7", Failed: "ErrImagePull"}, cached("b")},
			"False", ReasonImagesFailing, "1/3 cached; failing: app7 (ErrImagePull), app9 (ErrImagePull)"},
		{"other failures keep their reason", []Image{{Name: "app", Failed: "CreateContainerError"}},
			"False", ReasonImagesFailing, "0/1 cached; failing: app (CreateContainerError)"},
	} {
		c := Desired(tc.images, "")
		if c.Type != ConditionType || string(c.Status) != tc.status || c.Reason != tc.reason || c.Message != tc.message {
			t.Errorf("%s: %+v, want %s %s %q", tc.name, c, tc.status, tc.reason, tc.message)
		}
		kept := Desired(tc.images, "che/kubernetes-image-puller")
		if kept.Message != tc.message+"; kept by che/kubernetes-image-puller" || Owner(&kept) != "che/kubernetes-image-puller" || Owner(&c) != "" {
			t.Errorf("%s: kept by: %q, owner %q", tc.name, kept.Message, Owner(&kept))
		}
	}
}

func TestDecide(t *testing.T) {
	now := time.Unix(100000, 0)
	created := now.Add(-10 * time.Minute)
	warm := corev1.NodeCondition{Type: ConditionType, Status: corev1.ConditionTrue, Reason: ReasonAllCached, Message: "2/2 cached"}
	cold := corev1.NodeCondition{Type: ConditionType, Status: corev1.ConditionFalse, Reason: ReasonWarming, Message: "1/2 cached"}
	written := func(c corev1.NodeCondition, at time.Time) corev1.NodeCondition {
		c.LastHeartbeatTime, c.LastTransitionTime = metav1.NewTime(at), metav1.NewTime(at)
		return c
	}
	node := func(cond *corev1.NodeCondition, taints ...string) *corev1.Node {
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n", CreationTimestamp: metav1.NewTime(created)}}
		n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}
		if cond != nil {
			n.Status.Conditions = append(n.Status.Conditions, *cond)
		}
		for _, k := range taints {
			n.Spec.Taints = append(n.Spec.Taints, corev1.Taint{Key: k, Effect: corev1.TaintEffectNoSchedule})
		}
		return n
	}
	ptr := func(c corev1.NodeCondition) *corev1.NodeCondition { return &c }
	mine, theirs := Desired([]Image{{Name: "a", Cached: true}}, "ns-a/kip"), Desired([]Image{{Name: "a", Cached: true}}, "ns-b/kip")
	on := Settings{Condition: true}
	tainted := Settings{Condition: true, Taint: "kip.dev/warming"}
	bounded := Settings{Condition: true, Taint: "kip.dev/warming", Timeout: 10*time.Minute + 30*time.Second}
	for _, tc := range []struct {
		name    string
		node    *corev1.Node
		want    corev1.NodeCondition
		s       Settings
		write   bool // a condition is written
		keepsTT bool // ...keeping the last transition time
		remove  bool
		timeout bool
		after   time.Duration
	}{
		{"off: nothing", node(nil, "kip.dev/warming"), warm, Settings{}, false, false, false, false, 0},
		{"new condition", node(nil), cold, on, true, false, false, false, HeartbeatInterval},
		{"unchanged, recent: no write", node(ptr(written(cold, now.Add(-time.Minute)))), cold, on, false, false, false, false, 4 * time.Minute},
		{"unchanged, heartbeat due", node(ptr(written(cold, now.Add(-HeartbeatInterval)))), cold, on, true, true, false, false, HeartbeatInterval},
		{"message changed, same status", node(ptr(written(cold, now.Add(-time.Minute)))), corev1.NodeCondition{Type: ConditionType, Status: corev1.ConditionFalse, Reason: ReasonWarming, Message: "0/2 cached"}, on, true, true, false, false, HeartbeatInterval},
		{"turned True", node(ptr(written(cold, now.Add(-time.Minute)))), warm, on, true, false, false, false, HeartbeatInterval},
		{"warm and tainted: the taint goes", node(ptr(written(warm, now.Add(-time.Minute))), "other", "kip.dev/warming"), warm, tainted, false, false, true, false, 4 * time.Minute},
		{"cold and tainted, no bound: stays", node(ptr(written(cold, now.Add(-time.Minute))), "kip.dev/warming"), cold, tainted, false, false, false, false, 4 * time.Minute},
		{"cold, bound not reached: look again at the deadline", node(ptr(written(cold, now.Add(-time.Minute))), "kip.dev/warming"), cold, bounded, false, false, false, false, 30 * time.Second},
		{"cold, bound passed: the taint goes", node(ptr(written(cold, now.Add(-time.Minute))), "kip.dev/warming"), cold, Settings{Condition: true, Taint: "kip.dev/warming", Timeout: 10 * time.Minute}, false, false, true, true, 4 * time.Minute},
		{"warm, untainted: nothing", node(ptr(written(warm, now.Add(-time.Minute))), "other"), warm, tainted, false, false, false, false, 4 * time.Minute},
		{"kept by another puller, recently: left alone", node(ptr(written(theirs, now.Add(-time.Minute)))), mine, on, false, false, false, false, StaleAfter - time.Minute},
		{"kept by another puller, who still removes our taint", node(ptr(written(theirs, now.Add(-time.Minute))), "kip.dev/warming"), mine, tainted, false, false, true, false, StaleAfter - time.Minute},
		{"kept by another puller, stale: taken over", node(ptr(written(theirs, now.Add(-StaleAfter)))), mine, on, true, true, false, false, HeartbeatInterval},
		{"kept by us: the heartbeat", node(ptr(written(mine, now.Add(-HeartbeatInterval)))), mine, on, true, true, false, false, HeartbeatInterval},
		{"an earlier kip's, naming no puller: taken over", node(ptr(written(warm, now.Add(-time.Minute)))), mine, on, true, true, false, false, HeartbeatInterval},
		{"no condition, cold, bound not reached: look again at the deadline", node(nil, "kip.dev/warming"), cold, Settings{Taint: "kip.dev/warming", Timeout: 10*time.Minute + 30*time.Second}, false, false, false, false, 30 * time.Second},
		{"no condition, cold and tainted, no bound: no need to look", node(nil, "kip.dev/warming"), cold, Settings{Taint: "kip.dev/warming"}, false, false, false, false, 0},
	} {
		p := Decide(tc.node, tc.want, tc.s, now)
		if wantKept := strings.Contains(tc.name, "left alone") || strings.Contains(tc.name, "still removes"); (p.KeptBy == "ns-b/kip") != wantKept {
			t.Errorf("%s: kept by %q", tc.name, p.KeptBy)
		}
		if (p.Condition != nil) != tc.write || p.RemoveTaint != tc.remove || p.TimedOut != tc.timeout || p.After != tc.after {
			t.Errorf("%s: plan %+v, want write %v, remove %v, timed out %v, after %v", tc.name, p, tc.write, tc.remove, tc.timeout, tc.after)
			continue
		}
		if p.Condition == nil {
			continue
		}
		c := p.Condition
		if c.Status != tc.want.Status || c.Message != tc.want.Message || !c.LastHeartbeatTime.Time.Equal(now) {
			t.Errorf("%s: writes %+v", tc.name, *c)
		}
		if keeps := !c.LastTransitionTime.Time.Equal(now); keeps != tc.keepsTT {
			t.Errorf("%s: last transition %v, keep %v", tc.name, c.LastTransitionTime, tc.keepsTT)
		}
	}
}

func TestWithoutTaintKeepsTheOthers(t *testing.T) {
	in := []corev1.Taint{{Key: "a"}, {Key: "kip.dev/warming", Effect: corev1.TaintEffectNoSchedule}, {Key: "b"}, {Key: "kip.dev/warming", Effect: corev1.TaintEffectNoExecute}}
	out := WithoutTaint(in, "kip.dev/warming")
	if len(out) != 2 || out[0].Key != "a" || out[1].Key != "b" || len(in) != 4 {
		t.Errorf("WithoutTaint = %v (input %v)", out, in)
	}
}

func TestSettingsRoundTrip(t *testing.T) {
	for _, s := range []Settings{{}, {Condition: true}, {Condition: true, Taint: "kip.dev/warming", Timeout: 30 * time.Minute}} {
		got, err := DecodeSettings(s.Encode())
		if err != nil || got != s {
			t.Errorf("%+v -> %q -> %+v, %v", s, s.Encode(), got, err)
		}
	}
	for s, want := range map[Settings]string{
		{Condition: true, Timeout: time.Minute}: `{"condition":true,"timeout":"1m0s"}`,
		{Condition: true}:                       `{"condition":true}`,
		{Taint: "kip.dev/warming"}:              `{"taint":"kip.dev/warming"}`,
	} {
		if v := s.Encode(); v != want {
			t.Errorf("%+v: Encode = %s, want %s", s, v, want)
		}
	}
	if _, err := DecodeSettings("{"); err == nil {
		t.Error("an unreadable annotation decoded")
	}
}

func TestOwner(t *testing.T) {
	for msg, want := range map[string]string{
		"1/2 cached; kept by che/kip":                 "che/kip",
		"; kept by che/kip":                           "che/kip",
		"1/2 cached; failing: a (x); kept by ns/name": "ns/name",
		"1/2 cached":                                  "",
	} {
		if got := Owner(&corev1.NodeCondition{Message: msg}); got != want {
			t.Errorf("Owner(%q) = %q, want %q", msg, got, want)
		}
	}
}
