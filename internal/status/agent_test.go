package status

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/kip-image-puller/kip/internal/agent/report"
	"github.com/kip-image-puller/kip/internal/config"
	"github.com/kip-image-puller/kip/internal/daemonset"
)

func agentDaemonSet(t *testing.T, images string) *appsv1.DaemonSet {
	t.Helper()
	cfg, _, err := config.Parse(map[string]string{config.KeyImages: images, config.KeyCachingMode: config.ModeAgent, config.KeyNamespace: "kip"})
	if err != nil {
		t.Fatal(err)
	}
	ds := daemonset.Build(cfg, daemonset.Options{KIPImage: "reg/kip:1"})
	ds.UID = dsUID
	return ds
}

func reported(t *testing.T, r report.Node) podOpt {
	t.Helper()
	v, err := r.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return func(p *corev1.Pod) { p.Annotations = map[string]string{report.Annotation: v} }
}

func annotated(value string) podOpt {
	return func(p *corev1.Pod) { p.Annotations = map[string]string{report.Annotation: value} }
}

func TestComputeAgentMode(t *testing.T) {
	ds := agentDaemonSet(t, "java=reg/java:17;node=reg/node:22")
	since := t0.Add(time.Minute)
	full := report.Node{Runtime: "containerd 2.4.2", Images: []report.Image{
		{Name: "java", Image: "reg/java:17", State: report.StateCached, Digest: "sha256:j", Pinned: true, Since: &since},
		{Name: "node", Image: "reg/node:22", State: report.StateFailed, Reason: report.ReasonImagePullBackOff, Message: "not found"},
	}}
	older := report.Node{Runtime: "containerd 1.6.20", Pinning: "1 cached image(s) not pinned", Images: []report.Image{
		{Name: "java", Image: "reg/java:16", State: report.StateCached},
		{Name: "node", Image: "reg/node:22", State: report.StatePulling},
	}}
	overBudget := report.Node{Runtime: "containerd 2.4.2", Images: []report.Image{
		{Name: "java", Image: "reg/java:17", State: report.StateCached, Digest: "sha256:j", Pinned: true, Since: &since},
		{Name: "node", Image: "reg/node:22", State: report.StateCached, Digest: "sha256:n", Since: &since, Reason: report.ReasonOverBudget, Message: "not pinned: PIN_BUDGET is 1Gi"},
	}}
	agentRunning := statuses(running(daemonset.AgentContainer, t0))
	tests := []struct {
		name string
		pod  corev1.Pod
		want map[string]Cell
	}{
		{"an image held past the pin budget", pod(ds, "n1", agentRunning, reported(t, overBudget)), map[string]Cell{
			"java": {State: Cached, Digest: "sha256:j", Since: &since},
			"node": {State: Cached, Digest: "sha256:n", Since: &since, Reason: report.ReasonOverBudget, Message: "not pinned: PIN_BUDGET is 1Gi"}}},
		{"the agent's report", pod(ds, "n1", agentRunning, reported(t, full)), map[string]Cell{
			"java": {State: Cached, Digest: "sha256:j", Since: &since},
			"node": {State: Failed, Reason: report.ReasonImagePullBackOff, Message: "not found"}}},
		{"a report of an older list", pod(ds, "n1", agentRunning, reported(t, older)), map[string]Cell{
			"java": {State: Pending, Reason: ReasonNewList}, "node": {State: Pulling}}},
		{"no report yet", pod(ds, "n1", agentRunning), map[string]Cell{"java": {State: Pulling}, "node": {State: Pulling}}},
		{"a report without the image", pod(ds, "n1", agentRunning, reported(t, report.Node{})), map[string]Cell{
			"java": {State: Pending, Reason: ReasonNewList}, "node": {State: Pending, Reason: ReasonNewList}}},
		{"an unreadable report", pod(ds, "n1", agentRunning, annotated("{")), map[string]Cell{
			"java": {State: Pending, Reason: "UnreadableReport", Message: "annotation kip.dev/agent-report: unexpected end of JSON input"},
			"node": {State: Pending, Reason: "UnreadableReport", Message: "annotation kip.dev/agent-report: unexpected end of JSON input"}}},
		{"the agent's image cannot be pulled", pod(ds, "n1", statuses(waiting(daemonset.AgentContainer, "ImagePullBackOff", "reg/kip:1 not found")), reported(t, full)), map[string]Cell{
			"java": {State: Failed, Reason: "Agent:ImagePullBackOff", Message: "reg/kip:1 not found"},
			"node": {State: Failed, Reason: "Agent:ImagePullBackOff", Message: "reg/kip:1 not found"}}},
		{"the agent exited", pod(ds, "n1", statuses(corev1.ContainerStatus{Name: daemonset.AgentContainer, State: corev1.ContainerState{
			Terminated: &corev1.ContainerStateTerminated{ExitCode: 1, Message: "no container runtime"}}})), map[string]Cell{
			"java": {State: Failed, Reason: "Agent:Error", Message: "no container runtime"},
			"node": {State: Failed, Reason: "Agent:Error", Message: "no container runtime"}}},
		{"the agent waits for a reason that passes", pod(ds, "n1", statuses(waiting(daemonset.AgentContainer, "ContainerCreating", "")), reported(t, full)), map[string]Cell{
			"java": {State: Cached, Digest: "sha256:j", Since: &since},
			"node": {State: Failed, Reason: report.ReasonImagePullBackOff, Message: "not found"}}},
	}
	for _, tt := range tests {
		for form, p := range map[string]*corev1.Pod{"full": &tt.pod, "compact": CompactPod(&tt.pod)} {
			r := Compute(ds, []corev1.Pod{*p}, []corev1.Node{node("n1")})
			if fmt.Sprint(r.Images) != "[{java reg/java:17} {node reg/node:22}]" {
				t.Fatalf("images %v", r.Images)
			}
			for img, want := range tt.want {
				if form == "compact" {
					want.Digest = "" // the compact form leaves digests out, in both modes
				}
				if got := r.Nodes[0].Images[img]; fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("%s (%s pod): %s: %+v, want %+v", tt.name, form, img, got, want)
				}
			}
		}
	}
}

func TestAgentModeSummaryAndNode(t *testing.T) {
	ds := agentDaemonSet(t, "java=reg/java:17")
	ok := report.Node{Runtime: "containerd 1.6.20", Pinning: "not pinned: upgrade", SecretProblems: []string{"bad: no key"}, Heals: 3,
		Images: []report.Image{{Name: "java", Image: "reg/java:17", State: report.StateCached, Since: &t0}}}
	bad := report.Node{Runtime: "containerd 2.4.2", Images: []report.Image{{Name: "java", Image: "reg/java:17", State: report.StateFailed, Reason: "ErrImagePull", Message: "denied"}}}
	r := Compute(ds, []corev1.Pod{
		pod(ds, "n1", statuses(running(daemonset.AgentContainer, t0)), reported(t, ok)),
		pod(ds, "n2", statuses(running(daemonset.AgentContainer, t0)), reported(t, bad)),
	}, []corev1.Node{node("n1"), node("n2"), node("n3")})
	s := r.Summary
	if s.NodesSelected != 3 || s.NodesWarm != 1 || s.ImagesCached != 1 || len(s.Failing) != 1 || s.Failing[0].Node != "n2" || s.Failing[0].Message != "denied" {
		t.Errorf("summary %+v", s)
	}
	if a := r.Nodes[0].Agent; a == nil || a.Runtime != "containerd 1.6.20" || a.Pinning != "not pinned: upgrade" || a.Heals != 3 || fmt.Sprint(a.SecretProblems) != "[bad: no key]" {
		t.Errorf("node n1's agent: %+v", a)
	}
	if r.Nodes[2].Agent != nil || r.Nodes[2].Images["java"].Reason != "NoPod" {
		t.Errorf("node n3 without a pod: %+v", r.Nodes[2])
	}
}

// TestCompactReportKeepsWhatComputeReads: a report survives its compact
// form, but for the digests and the pins, with odd characters, secret
// problems and no Since; the compact form is a fraction of the JSON.
func TestCompactReportKeepsWhatComputeReads(t *testing.T) {
	since := time.Date(2026, 11, 26, 9, 1, 0, 0, time.UTC)
	r := report.Node{Runtime: "containerd\t2.4.2", Pinning: "2 cached image(s) not pinned\n(x, y)", SecretProblems: []string{"broken: not a pull secret", "a\\b"}, Heals: 3,
		Disk: &report.Disk{CapacityBytes: 100 << 30, AvailableBytes: 40 << 30, ImagesBytes: 50 << 30, CachedBytes: 12 << 30, PinnedBytes: 9 << 30, PinBudgetBytes: 60 << 30, FreeFloorBytes: -1,
			Error: "statfs /host/imagefs: no such file, or directory\there"},
		Images: []report.Image{
			{Name: "java", Image: "reg/java:17", State: report.StateCached, Digest: "sha256:j", Pinned: true, Since: &since, PullSeconds: 1.25},
			{Name: "node", Image: "reg/node:22", State: report.StateFailed, Reason: report.ReasonErrImagePull, Message: "line\tone\nline two"},
			{Name: "go", Image: "reg/go:1", State: report.StatePulling},
			{Name: "big", Image: "reg/big:1", State: report.StateCached, Reason: report.ReasonOverBudget, Message: "not pinned: PIN_BUDGET is 60Gi"},
		}}
	if noDisk, ok := parseCompactReport(compactReport(report.Node{Runtime: "cri-o"})); !ok || noDisk.Disk != nil || noDisk.Runtime != "cri-o" {
		t.Errorf("a report without a disk: %+v, %v", noDisk, ok)
	}
	got, ok := parseCompactReport(compactReport(r))
	if !ok {
		t.Fatalf("unreadable: %q", compactReport(r))
	}
	want := r
	want.Images = nil
	for _, img := range r.Images {
		img.Digest, img.Pinned, img.Image = "", false, fingerprint(img.Image)
		want.Images = append(want.Images, img)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
	for _, img := range got.Images {
		if !sameRef(img.Image, "reg/"+img.Name+map[string]string{"java": ":17", "node": ":22", "go": ":1", "big": ":1"}[img.Name]) || sameRef(img.Image, "reg/other:1") {
			t.Errorf("%s: fingerprint %s does not tell its reference", img.Name, img.Image)
		}
	}
	for _, bad := range []string{"", "v0\t0\tx\ty\t-\n", "v1\t0\tx\ty\n", "v2\t0\tx\ty\n", "v2\tmany\tx\ty\t-\n", "v2\t0\tx\ty\t-\nshort\tline\n",
		"v2\t0\tx\ty\t-\na\t#1\tC\tsoon\t0\t\t\n", "v2\t0\tx\ty\t1,2\n", "v2\t0\tx\ty\t1,2,3,4,5,6,seven,\n", "v2\t0\tx\ty\t1,2,3,4,5,6,7\n"} {
		if _, ok := parseCompactReport(bad); ok {
			t.Errorf("parseCompactReport(%q) read it", bad)
		}
	}
	full, _ := r.Encode()
	if compact := compactReport(r); len(compact)*2 > len(full) {
		t.Errorf("compact %d bytes, JSON %d", len(compact), len(full))
	}
}
