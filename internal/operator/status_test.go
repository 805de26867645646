package operator

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kip-image-puller/kip/api/v1alpha1"
	agentreport "github.com/kip-image-puller/kip/internal/agent/report"
	"github.com/kip-image-puller/kip/internal/config"
	"github.com/kip-image-puller/kip/internal/status"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestStatus(t *testing.T) {
	available := &appsv1.Deployment{Status: appsv1.DeploymentStatus{UpdatedReplicas: 1, AvailableReplicas: 1}}
	rolling := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Generation: 2}, Status: appsv1.DeploymentStatus{ObservedGeneration: 1, UpdatedReplicas: 1, AvailableReplicas: 1}}
	want := &config.Config{Images: []config.Image{{Name: "a", Ref: "reg/a:1"}, {Name: "b", Ref: "reg/b:1"}}}
	images := []status.Image{{Name: "a", Ref: "reg/a:1"}, {Name: "b", Ref: "reg/b:1"}}
	report := func(s status.Summary) *status.Report { return &status.Report{Images: images, Summary: s} }
	cases := []struct {
		name                         string
		obs                          Observation
		ready, progressing, degraded string // status/reason
		cached, nodes                string
	}{
		{
			name:  "conflict",
			obs:   Observation{Conflict: "first"},
			ready: "False/Conflict", progressing: "False/Conflict", degraded: "True/Conflict",
		},
		{
			name:  "invalid spec keeps the counts of what runs",
			obs:   Observation{SpecErr: errors.New("spec.images (IMAGES): bad"), Deployment: available, Report: report(status.Summary{NodesSelected: 2, NodesWarm: 2, ImagesWanted: 4, ImagesCached: 4})},
			ready: "False/InvalidSpec", progressing: "False/InvalidSpec", degraded: "True/InvalidSpec", cached: "4/4", nodes: "2/2",
		},
		{
			name:  "the puller refused what the spec gives",
			obs:   Observation{Want: want, Refused: "NODE_SELECTOR: refused by a policy", Deployment: available, Report: report(status.Summary{NodesSelected: 2, NodesWarm: 2, ImagesWanted: 4, ImagesCached: 4})},
			ready: "False/InvalidSpec", progressing: "False/InvalidSpec", degraded: "True/InvalidSpec", cached: "4/4", nodes: "2/2",
		},
		{
			name:  "apply failed",
			obs:   Observation{Want: want, ApplyErr: errors.New("forbidden")},
			ready: "False/ApplyFailed", progressing: "False/ApplyFailed", degraded: "True/ApplyFailed",
		},
		{
			name:  "no Deployment yet",
			obs:   Observation{Want: want},
			ready: "False/Deploying", progressing: "True/Deploying", degraded: "False/AsExpected",
		},
		{
			name:  "Deployment rolling",
			obs:   Observation{Want: want, Deployment: rolling, Report: report(status.Summary{NodesSelected: 1, NodesWarm: 1, ImagesWanted: 2, ImagesCached: 2})},
			ready: "False/Deploying", progressing: "True/Deploying", degraded: "False/AsExpected", cached: "2/2", nodes: "1/1",
		},
		{
			name:  "no DaemonSet yet",
			obs:   Observation{Want: want, Deployment: available},
			ready: "False/Deploying", progressing: "True/Deploying", degraded: "False/AsExpected",
		},
		{
			name: "DaemonSet of an older spec",
			obs: Observation{Want: &config.Config{Images: want.Images[:1]}, Deployment: available,
				Report: report(status.Summary{NodesSelected: 1, NodesWarm: 1, ImagesWanted: 2, ImagesCached: 2})},
			ready: "False/Applying", progressing: "True/Applying", degraded: "False/AsExpected", cached: "2/2", nodes: "1/1",
		},
		{
			name:  "pulling",
			obs:   Observation{Want: want, Deployment: available, Report: report(status.Summary{NodesSelected: 2, NodesWarm: 1, ImagesWanted: 4, ImagesCached: 3})},
			ready: "False/Pulling", progressing: "True/Pulling", degraded: "False/AsExpected", cached: "3/4", nodes: "1/2",
		},
		{
			name: "one image failing",
			obs: Observation{Want: want, Deployment: available, Report: report(status.Summary{NodesSelected: 2, NodesWarm: 1, ImagesWanted: 4, ImagesCached: 3,
				Failing: []status.Failure{{Node: "n2", Image: "b", Reason: "ErrImagePull"}}})},
			ready: "False/ImagesFailing", progressing: "True/Pulling", degraded: "True/ImagesFailing", cached: "3/4", nodes: "1/2",
		},
		{
			name: "Deployment rolling while an image fails",
			obs: Observation{Want: want, Deployment: rolling, Report: report(status.Summary{NodesSelected: 1, ImagesWanted: 2, ImagesCached: 1,
				Failing: []status.Failure{{Node: "n1", Image: "b", Reason: "ErrImagePull"}}})},
			ready: "False/Deploying", progressing: "True/Deploying", degraded: "True/ImagesFailing", cached: "1/2", nodes: "0/1",
		},
		{
			name:  "no node selected",
			obs:   Observation{Want: want, Deployment: available, Report: report(status.Summary{})},
			ready: "False/NoNodesSelected", progressing: "False/NoNodesSelected", degraded: "False/AsExpected", cached: "0/0", nodes: "0/0",
		},
		{
			name: "an invalid entry left out, the others all cached",
			obs: Observation{Want: &config.Config{Images: want.Images, Skipped: []config.Problem{{Key: "spec.images (IMAGES)", Value: "Bad=x", Expected: "entry 3: a DNS-1123 label"}}},
				Deployment: available, Report: report(status.Summary{NodesSelected: 2, NodesWarm: 2, ImagesWanted: 4, ImagesCached: 4})},
			ready: "True/AllImagesCached", progressing: "False/AsExpected", degraded: "True/InvalidImageEntries", cached: "4/4", nodes: "2/2",
		},
		{
			name:  "all cached",
			obs:   Observation{Want: want, Deployment: available, Report: report(status.Summary{NodesSelected: 2, NodesWarm: 2, ImagesWanted: 4, ImagesCached: 4})},
			ready: "True/AllImagesCached", progressing: "False/AsExpected", degraded: "False/AsExpected", cached: "4/4", nodes: "2/2",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.obs.Generation = 3
			st := Status(v1alpha1.KubernetesImagePullerStatus{}, tc.obs)
			for typ, want := range map[string]string{TypeReady: tc.ready, TypeProgressing: tc.progressing, TypeDegraded: tc.degraded} {
				c := meta.FindStatusCondition(st.Conditions, typ)
				if c == nil {
					t.Fatalf("no %s condition", typ)
				}
				if got := string(c.Status) + "/" + c.Reason; got != want {
					t.Errorf("%s = %s (%s), want %s", typ, got, c.Message, want)
				}
				if c.ObservedGeneration != 3 || c.Message == "" {
					t.Errorf("%s: observedGeneration %d, message %q", typ, c.ObservedGeneration, c.Message)
				}
			}
			if st.ImagesCached != tc.cached || st.NodesWarm != tc.nodes || st.ObservedGeneration != 3 {
				t.Errorf("counts %q %q, observedGeneration %d; want %q %q", st.ImagesCached, st.NodesWarm, st.ObservedGeneration, tc.cached, tc.nodes)
			}
		})
	}
}

func TestStatusNamesFailuresAndKeepsTransitionTimes(t *testing.T) {
	var failing []status.Failure
	for _, n := range []string{"n1", "n2", "n3", "n4", "n5", "n6", "n7"} {
		failing = append(failing, status.Failure{Node: n, Image: "b", Reason: "ImagePullBackOff", Message: "not found"})
	}
	obs := Observation{
		Want:       &config.Config{Images: []config.Image{{Name: "b", Ref: "reg/b:1"}}},
		Deployment: &appsv1.Deployment{Status: appsv1.DeploymentStatus{UpdatedReplicas: 1, AvailableReplicas: 1}},
		Report:     &status.Report{Images: []status.Image{{Name: "b", Ref: "reg/b:1"}}, Summary: status.Summary{NodesSelected: 7, ImagesWanted: 7, Failing: failing}},
	}
	st := Status(v1alpha1.KubernetesImagePullerStatus{}, obs)
	if len(st.Failing) != 7 || st.Failing[0] != (v1alpha1.FailingImage{Node: "n1", Image: "reg/b:1", Name: "b", Reason: "ImagePullBackOff", Message: "not found"}) {
		t.Errorf("failing %+v", st.Failing)
	}
	msg := meta.FindStatusCondition(st.Conditions, TypeDegraded).Message
	if !strings.HasPrefix(msg, "7 image pull(s) failing: reg/b:1 (b) on n1: ImagePullBackOff;") || !strings.HasSuffix(msg, "and 2 more in status.failing") {
		t.Errorf("Degraded message %q", msg)
	}

	// A condition whose status holds keeps its transition time.
	old := metav1.NewTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	for i := range st.Conditions {
		st.Conditions[i].LastTransitionTime = old
	}
	again := Status(st, obs)
	if c := meta.FindStatusCondition(again.Conditions, TypeDegraded); !c.LastTransitionTime.Equal(&old) {
		t.Errorf("Degraded moved its transition time to %v", c.LastTransitionTime)
	}
	obs.Report.Summary = status.Summary{NodesSelected: 7, NodesWarm: 7, ImagesWanted: 7, ImagesCached: 7}
	healed := Status(again, obs)
	if c := meta.FindStatusCondition(healed.Conditions, TypeDegraded); c.Status != metav1.ConditionFalse || c.LastTransitionTime.Equal(&old) {
		t.Errorf("Degraded %+v after recovery", c)
	}
}

func TestHolder(t *testing.T) {
	at := func(name string, sec int, deleting bool) v1alpha1.KubernetesImagePuller {
		k := v1alpha1.KubernetesImagePuller{ObjectMeta: metav1.ObjectMeta{Name: name, CreationTimestamp: metav1.Unix(int64(sec), 0)}}
		if deleting {
			k.DeletionTimestamp = &metav1.Time{Time: time.Unix(100, 0)}
		}
		return k
	}
	cases := []struct {
		name  string
		items []v1alpha1.KubernetesImagePuller
		want  string
	}{
		{"none", nil, ""},
		{"the oldest", []v1alpha1.KubernetesImagePuller{at("b", 2, false), at("a", 5, false)}, "b"},
		{"same second: by name", []v1alpha1.KubernetesImagePuller{at("b", 2, false), at("a", 2, false)}, "a"},
		{"one being deleted hands over", []v1alpha1.KubernetesImagePuller{at("b", 1, true), at("a", 5, false)}, "a"},
	}
	for _, tc := range cases {
		if got := Holder(tc.items); got != tc.want {
			t.Errorf("%s: holder %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestFailingMessageCountsWhatItLeavesOut(t *testing.T) {
	failing := func(n int) []v1alpha1.FailingImage {
		var out []v1alpha1.FailingImage
		for i := range n {
			out = append(out, v1alpha1.FailingImage{Name: fmt.Sprintf("app%d", i), Image: fmt.Sprintf("reg/app%d:1", i), Node: "n1", Reason: "ErrImagePull"})
		}
		return out
	}
	if got := failingMessage(nil, 0); got != "" {
		t.Errorf("no failure: %q", got)
	}
	exact := failingMessage(failing(maxFailingInMessage), maxFailingInMessage)
	if strings.Contains(exact, "more in status.failing") || strings.Count(exact, " on n1: ") != maxFailingInMessage {
		t.Errorf("%d failures are all named, with nothing more to count: %q", maxFailingInMessage, exact)
	}
	more := failingMessage(failing(maxFailingInMessage+2), maxFailingInMessage+2)
	if !strings.HasSuffix(more, "; and 2 more in status.failing") || strings.Count(more, " on n1: ") != maxFailingInMessage {
		t.Errorf("two over the cap: %q", more)
	}
	// status.failing itself may be capped: the total still counts them all.
	capped := failingMessage(failing(2), 9)
	if !strings.HasPrefix(capped, "9 image pull(s) failing: ") || !strings.HasSuffix(capped, "; and 7 more in status.failing") {
		t.Errorf("a total above the list: %q", capped)
	}
}

// TestSameImagesComparesReferences pins the rule behind AllImagesCached
// after a tag bump: the same entry names with a new tag are not the same
// images, so the old pods still running do not count as cached.
func TestSameImagesComparesReferences(t *testing.T) {
	want := &config.Config{Images: []config.Image{{Name: "java", Ref: "reg/java:17"}, {Name: "node", Ref: "reg/node:22"}}}
	cases := []struct {
		name string
		have []status.Image
		same bool
	}{
		{"the same", []status.Image{{Name: "java", Ref: "reg/java:17"}, {Name: "node", Ref: "reg/node:22"}}, true},
		{"a tag bumped, names kept", []status.Image{{Name: "java", Ref: "reg/java:11"}, {Name: "node", Ref: "reg/node:22"}}, false},
		{"a name changed", []status.Image{{Name: "jdk", Ref: "reg/java:17"}, {Name: "node", Ref: "reg/node:22"}}, false},
		{"one missing", []status.Image{{Name: "java", Ref: "reg/java:17"}}, false},
	}
	for _, tc := range cases {
		if got := sameImages(tc.have, want); got != tc.same {
			t.Errorf("%s: sameImages = %v, want %v", tc.name, got, tc.same)
		}
	}
}

func TestBoundMessage(t *testing.T) {
	var parts []string
	for i := range 300 { // 300 invalid entries gave a 110 KB message the API server refused
		parts = append(parts, fmt.Sprintf("spec.images (IMAGES): value \"Bad%d=x\": entry %d: name becomes a container name and must be a DNS-1123 label %s", i, i+1, strings.Repeat("x", 300)))
	}
	long := strings.Join(parts, "; ")
	got := BoundMessage(long)
	if len(got) > MaxConditionMessage {
		t.Fatalf("%d bytes, want at most %d", len(got), MaxConditionMessage)
	}
	kept := strings.Count(got, "spec.images")
	if !strings.HasSuffix(got, fmt.Sprintf("; and %d more", 300-kept)) || kept == 0 || kept >= 300 {
		t.Errorf("kept %d problems and ends %q", kept, got[len(got)-40:])
	}
	if exact := strings.Repeat("z", MaxConditionMessage); BoundMessage(exact) != exact {
		t.Errorf("a message of exactly the maximum was cut")
	}
	if got := BoundMessage("; " + strings.Repeat("y", MaxConditionMessage)); len(got) != MaxConditionMessage || !strings.HasSuffix(got, "...") {
		t.Errorf("a separator only at the start: %d bytes, %q", len(got), got[len(got)-10:])
	}
	if short := "one problem"; BoundMessage(short) != short {
		t.Errorf("a short message changed")
	}
	if got := BoundMessage(strings.Repeat("y", MaxConditionMessage+1)); len(got) != MaxConditionMessage || !strings.HasSuffix(got, "...") {
		t.Errorf("a long message without items: %d bytes", len(got))
	}

	// Through Status: the Degraded message of an invalid spec stays within bounds.
	st := Status(v1alpha1.KubernetesImagePullerStatus{}, Observation{SpecErr: errors.New(long)})
	if c := meta.FindStatusCondition(st.Conditions, TypeDegraded); c == nil || len(c.Message) > MaxConditionMessage {
		t.Errorf("Degraded condition message not bounded")
	}
}

// TestPrivilegeGrantedCondition: a spec that asks for privilege the
// namespace was not granted says so in PrivilegeGranted=False, whatever
// else the status says; the condition goes once nothing is refused.
func TestPrivilegeGrantedCondition(t *testing.T) {
	want := &config.Config{Images: []config.Image{{Name: "a", Ref: "reg/a:1"}}}
	refused := "CACHING_MODE: value \"agent\": ... kip.dev/agent-mode=allowed ..."
	for _, obs := range []Observation{{Want: want, PrivilegeRefused: refused}, {Want: want, PrivilegeRefused: refused, ApplyErr: errors.New("forbidden")}} {
		st := Status(v1alpha1.KubernetesImagePullerStatus{}, obs)
		c := meta.FindStatusCondition(st.Conditions, TypePrivilegeGranted)
		if c == nil || c.Status != metav1.ConditionFalse || c.Reason != ReasonPrivilegeNotGranted || c.Message != refused {
			t.Errorf("%+v: PrivilegeGranted %+v", obs, c)
		}
		st = Status(st, Observation{Want: want})
		if c := meta.FindStatusCondition(st.Conditions, TypePrivilegeGranted); c != nil {
			t.Errorf("PrivilegeGranted %+v once granted; want none", c)
		}
	}
}

// TestStatusDisk: the nodes whose agent measured the disk, those with
// images past the pin budget first, then the most pinned, at most
// maxDiskNodes, with a count of the others.
func TestStatusDisk(t *testing.T) {
	disk := func(pinned int64) *status.AgentNode {
		return &status.AgentNode{Disk: &agentreport.Disk{CachedBytes: 2 * pinned, PinnedBytes: pinned, PinBudgetBytes: 10 << 30, CapacityBytes: 20 << 30, AvailableBytes: 8 << 30}}
	}
	cached := func(reason string) map[string]status.Cell {
		return map[string]status.Cell{"a": {State: status.Cached}, "b": {State: status.Cached, Reason: reason}}
	}
	r := &status.Report{Images: []status.Image{{Name: "a", Ref: "reg/a:1"}, {Name: "b", Ref: "reg/b:1"}}, Nodes: []status.Node{
		{Name: "small", Selected: true, Agent: disk(1 << 30), Images: cached("")},
		{Name: "big", Selected: true, Agent: disk(5 << 30), Images: cached("")},
		{Name: "over", Selected: true, Agent: disk(1 << 30), Images: cached(agentreport.ReasonOverBudget)},
		{Name: "no-measure", Selected: true, Agent: &status.AgentNode{}, Images: cached("")},
		{Name: "daemonset-mode", Selected: true, Images: cached("")},
		{Name: "not-selected", Agent: disk(9 << 30)},
	}}
	for i := range maxDiskNodes {
		r.Nodes = append(r.Nodes, status.Node{Name: fmt.Sprintf("z%02d", i), Selected: true, Agent: disk(0), Images: cached("")})
	}
	st := Status(v1alpha1.KubernetesImagePullerStatus{}, Observation{Want: &config.Config{}, Report: r})
	if len(st.Disk) != maxDiskNodes || st.DiskNodesOmitted != 3 {
		t.Fatalf("%d nodes, %d omitted; want %d and 3", len(st.Disk), st.DiskNodesOmitted, maxDiskNodes)
	}
	var order []string
	for _, d := range st.Disk[:3] {
		order = append(order, d.Node)
	}
	if fmt.Sprint(order) != "[over big small]" {
		t.Errorf("first nodes %v, want [over big small]", order)
	}
	if d := st.Disk[0]; fmt.Sprint(d.OverBudget) != "[b]" || d.PinnedBytes != 1<<30 || d.CachedBytes != 2<<30 || d.PinBudgetBytes != 10<<30 || d.AvailableBytes != 8<<30 || d.CapacityBytes != 20<<30 {
		t.Errorf("node over: %+v", d)
	}
}
