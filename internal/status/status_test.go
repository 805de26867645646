package status

import (
	"reflect"
	"strings"
	"testing"
	"time"
	"unsafe"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kip-image-puller/kip/internal/agent/report"
	"github.com/kip-image-puller/kip/internal/nodewarm"
)

var t0 = time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)

const dsUID = types.UID("ds-uid")

func daemonSet(images ...string) *appsv1.DaemonSet {
	ds := &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: "kubernetes-image-puller", Namespace: "kip", UID: dsUID}}
	for _, img := range images {
		name, ref, _ := strings.Cut(img, "=")
		ds.Spec.Template.Spec.Containers = append(ds.Spec.Template.Spec.Containers, corev1.Container{Name: name, Image: ref})
	}
	return ds
}

type nodeOpt func(*corev1.Node)

func notReady(n *corev1.Node) { n.Status.Conditions[0].Status = corev1.ConditionFalse }
func cordoned(n *corev1.Node) { n.Spec.Unschedulable = true }
func labelled(k, v string) nodeOpt {
	return func(n *corev1.Node) { n.Labels[k] = v }
}
func tainted(key string) nodeOpt {
	return func(n *corev1.Node) {
		n.Spec.Taints = append(n.Spec.Taints, corev1.Taint{Key: key, Effect: corev1.TaintEffectNoSchedule})
	}
}

func node(name string, opts ...nodeOpt) corev1.Node {
	n := corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{}},
		Status:     corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}},
	}
	for _, o := range opts {
		o(&n)
	}
	return n
}

// The container states below are the ones the kubelet writes.
func running(name string, at time.Time) corev1.ContainerStatus {
	return corev1.ContainerStatus{Name: name, Ready: true, ImageID: "reg/" + name + "@sha256:" + strings.Repeat("a", 64),
		State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(at)}}}
}

func waiting(name, reason, msg string) corev1.ContainerStatus {
	return corev1.ContainerStatus{Name: name, State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: msg}}}
}

func crashed(name string, restarts int32) corev1.ContainerStatus {
	cs := waiting(name, "CrashLoopBackOff", "back-off 40s restarting failed container")
	cs.RestartCount = restarts
	cs.LastTerminationState = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 2, Reason: "Error"}}
	return cs
}

type podOpt func(*corev1.Pod)

func statuses(cs ...corev1.ContainerStatus) podOpt {
	return func(p *corev1.Pod) { p.Status.ContainerStatuses = cs }
}
func initStatus(cs corev1.ContainerStatus) podOpt {
	return func(p *corev1.Pod) { p.Status.InitContainerStatuses = []corev1.ContainerStatus{cs} }
}
func phase(ph corev1.PodPhase) podOpt { return func(p *corev1.Pod) { p.Status.Phase = ph } }
func created(at time.Time) podOpt {
	return func(p *corev1.Pod) { p.CreationTimestamp = metav1.NewTime(at) }
}
func specImages(ds *appsv1.DaemonSet) podOpt {
	return func(p *corev1.Pod) { p.Spec.Containers = ds.Spec.Template.Spec.Containers }
}

func pod(ds *appsv1.DaemonSet, nodeName string, opts ...podOpt) corev1.Pod {
	p := corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: "puller-" + nodeName, Namespace: "kip", CreationTimestamp: metav1.NewTime(t0),
			OwnerReferences: []metav1.OwnerReference{{Kind: "DaemonSet", Name: ds.Name, UID: dsUID}},
		},
		Spec:   corev1.PodSpec{NodeName: nodeName, Containers: ds.Spec.Template.Spec.Containers},
		Status: corev1.PodStatus{Phase: corev1.PodRunning},
	}
	for _, o := range opts {
		o(&p)
	}
	return p
}

func TestCompute(t *testing.T) {
	ds := daemonSet("java=reg/java:17", "node=reg/node:22")
	selective := daemonSet("java=reg/java:17")
	selective.Spec.Template.Spec.NodeSelector = map[string]string{"cache": "yes"}
	tolerant := daemonSet("java=reg/java:17")
	tolerant.Spec.Template.Spec.Tolerations = []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpExists}}
	older := daemonSet("java=reg/java:16", "node=reg/node:22")

	cases := []struct {
		name  string
		ds    *appsv1.DaemonSet
		pods  []corev1.Pod
		nodes []corev1.Node
		want  map[string]map[string]State // node -> image -> state
		check func(t *testing.T, r Report)
	}{
		{
			name:  "all cached",
			ds:    ds,
			nodes: []corev1.Node{node("n1"), node("n2")},
			pods: []corev1.Pod{
				pod(ds, "n1", statuses(running("java", t0.Add(5*time.Second)), running("node", t0.Add(9*time.Second)))),
				pod(ds, "n2", statuses(running("java", t0.Add(4*time.Second)), running("node", t0.Add(7*time.Second)))),
			},
			want: map[string]map[string]State{"n1": {"java": Cached, "node": Cached}, "n2": {"java": Cached, "node": Cached}},
			check: func(t *testing.T, r Report) {
				s := r.Summary
				if !s.Complete() || s.NodesWarm != 2 || s.ImagesCached != 4 || s.ImagesWanted != 4 {
					t.Errorf("summary %+v", s)
				}
				if s.WarmSince == nil || !s.WarmSince.Equal(t0.Add(9*time.Second)) {
					t.Errorf("warm since %v, want the last node's last container start", s.WarmSince)
				}
				if c := r.Nodes[0].Images["java"]; !strings.Contains(c.Digest, "@sha256:") {
					t.Errorf("digest %q", c.Digest)
				}
			},
		},
		{
			name:  "one image failing, named with its reason",
			ds:    ds,
			nodes: []corev1.Node{node("n1"), node("n2")},
			pods: []corev1.Pod{
				pod(ds, "n1", statuses(running("java", t0), running("node", t0))),
				pod(ds, "n2", phase(corev1.PodPending), statuses(running("java", t0),
					waiting("node", "ImagePullBackOff", `Back-off pulling image "reg/node:22": 401 Unauthorized`))),
			},
			want: map[string]map[string]State{"n1": {"java": Cached, "node": Cached}, "n2": {"java": Cached, "node": Failed}},
			check: func(t *testing.T, r Report) {
				f := r.Summary.Failing
				if len(f) != 1 || f[0].Node != "n2" || f[0].Image != "node" || f[0].Reason != "ImagePullBackOff" {
					t.Errorf("failing %+v", f)
				}
				if r.Summary.Complete() || r.Summary.WarmSince != nil || r.Summary.NodesWarm != 1 {
					t.Errorf("summary %+v", r.Summary)
				}
				want := `3/4 images cached on 2/2 nodes (1 warm); 1 failing: node on n2 (ImagePullBackOff: Back-off pulling image "reg/node:22": 401 Unauthorized)`
				if got := r.Line(); got != want {
					t.Errorf("line\n got %s\nwant %s", got, want)
				}
				long := r
				long.Summary.Failing = []Failure{{Node: "n2", Image: "node", Reason: "ErrImagePull",
					Message: `failed to pull and unpack image "reg/node:22": failed to resolve reference "reg/node:22": pulling from host reg failed with status code [manifests 22]: 401 Unauthorized`}}
				if got := long.Line(); !strings.HasSuffix(got, "401 Unauthorized)") || len(got) > 200 {
					t.Errorf("a long message should keep its root cause, the end: %s", got)
				}
			},
		},
		{
			name:  "every failure reason the kubelet reports",
			ds:    daemonSet("a=reg/a:1", "b=reg/b:1", "c=reg/c:1", "d=reg/d:1", "e=reg/e:1"),
			nodes: []corev1.Node{node("n1")},
			pods: func() []corev1.Pod {
				d := daemonSet("a=reg/a:1", "b=reg/b:1", "c=reg/c:1", "d=reg/d:1", "e=reg/e:1")
				return []corev1.Pod{pod(d, "n1", phase(corev1.PodPending), statuses(
					waiting("a", "ErrImagePull", "manifest unknown"),
					waiting("b", "InvalidImageName", "couldn't parse image name"),
					waiting("c", "CreateContainerError", "no such file: /kip/sleep"),
					crashed("d", 4),
					waiting("e", "ContainerCreating", ""),
				))}
			}(),
			want: map[string]map[string]State{"n1": {"a": Failed, "b": Failed, "c": Failed, "d": Failed, "e": Pulling}},
			check: func(t *testing.T, r Report) {
				reasons := map[string]string{}
				for _, f := range r.Summary.Failing {
					reasons[f.Image] = f.Reason
				}
				want := map[string]string{"a": "ErrImagePull", "b": "InvalidImageName", "c": "CreateContainerError", "d": "CrashLoopBackOff"}
				for img, reason := range want {
					if reasons[img] != reason {
						t.Errorf("%s: reason %q, want %q", img, reasons[img], reason)
					}
				}
			},
		},
		{
			name:  "the init container cannot be pulled: every image failed, reason marked Init",
			ds:    ds,
			nodes: []corev1.Node{node("n1")},
			pods: []corev1.Pod{pod(ds, "n1", phase(corev1.PodPending),
				initStatus(waiting("kip-install-sleep", "ImagePullBackOff", "kip image not found")),
				statuses(waiting("java", "PodInitializing", ""), waiting("node", "PodInitializing", "")))},
			want: map[string]map[string]State{"n1": {"java": Failed, "node": Failed}},
			check: func(t *testing.T, r Report) {
				if f := r.Summary.Failing; len(f) != 2 || f[0].Reason != "Init:ImagePullBackOff" {
					t.Errorf("failing %+v", f)
				}
			},
		},
		{
			name:  "the init container is running: images are on their way",
			ds:    ds,
			nodes: []corev1.Node{node("n1")},
			pods: []corev1.Pod{pod(ds, "n1", phase(corev1.PodPending),
				initStatus(running("kip-install-sleep", t0)),
				statuses(waiting("java", "PodInitializing", ""), waiting("node", "PodInitializing", "")))},
			want: map[string]map[string]State{"n1": {"java": Pulling, "node": Pulling}},
		},
		{
			name:  "pod created, no status yet",
			ds:    ds,
			nodes: []corev1.Node{node("n1")},
			pods:  []corev1.Pod{pod(ds, "n1", phase(corev1.PodPending))},
			want:  map[string]map[string]State{"n1": {"java": Pulling, "node": Pulling}},
		},
		{
			name:  "no pod yet on a selected node",
			ds:    ds,
			nodes: []corev1.Node{node("n1"), node("n2")},
			pods:  []corev1.Pod{pod(ds, "n1", statuses(running("java", t0), running("node", t0)))},
			want:  map[string]map[string]State{"n1": {"java": Cached, "node": Cached}, "n2": {"java": Pending, "node": Pending}},
		},
		{
			name:  "node selector and taints decide what is selected",
			ds:    selective,
			nodes: []corev1.Node{node("n1", labelled("cache", "yes")), node("n2"), node("n3", labelled("cache", "yes"), tainted("dedicated"))},
			pods:  []corev1.Pod{pod(selective, "n1", statuses(running("java", t0)))},
			want: map[string]map[string]State{
				"n1": {"java": Cached}, "n2": {"java": NotSelected}, "n3": {"java": NotSelected},
			},
			check: func(t *testing.T, r Report) {
				if !r.Summary.Complete() || r.Summary.NodesSelected != 1 {
					t.Errorf("summary %+v", r.Summary)
				}
			},
		},
		{
			name:  "a toleration selects the tainted node",
			ds:    tolerant,
			nodes: []corev1.Node{node("n1", tainted("dedicated"))},
			want:  map[string]map[string]State{"n1": {"java": Pending}},
		},
		{
			name:  "NotReady and cordoned nodes are shown, their failures not counted",
			ds:    ds,
			nodes: []corev1.Node{node("n1", notReady), node("n2", cordoned)},
			pods: []corev1.Pod{
				pod(ds, "n1", statuses(running("java", t0), waiting("node", "ErrImagePull", "i/o timeout"))),
				pod(ds, "n2", statuses(running("java", t0), waiting("node", "ErrImagePull", "i/o timeout"))),
			},
			want: map[string]map[string]State{"n1": {"java": Cached, "node": Failed}, "n2": {"java": Cached, "node": Failed}},
			check: func(t *testing.T, r Report) {
				if len(r.Summary.Failing) != 0 {
					t.Errorf("failures counted on NotReady/cordoned nodes: %+v", r.Summary.Failing)
				}
				if r.Nodes[0].Ready || !r.Nodes[1].Cordoned {
					t.Errorf("nodes %+v", r.Nodes)
				}
			},
		},
		{
			name:  "restarts: the newest pod of a node counts, a deleting one does not",
			ds:    ds,
			nodes: []corev1.Node{node("n1")},
			pods: func() []corev1.Pod {
				old := pod(ds, "n1", statuses(running("java", t0), running("node", t0)))
				old.Name = "old"
				gone := metav1.NewTime(t0.Add(time.Minute))
				old.DeletionTimestamp = &gone
				cur := pod(ds, "n1", created(t0.Add(time.Minute)), phase(corev1.PodPending), statuses(waiting("java", "ContainerCreating", ""), waiting("node", "ContainerCreating", "")))
				return []corev1.Pod{old, cur}
			}(),
			want: map[string]map[string]State{"n1": {"java": Pulling, "node": Pulling}},
		},
		{
			name:  "an older pod of the previous template is rolling",
			ds:    ds,
			nodes: []corev1.Node{node("n1")},
			pods:  []corev1.Pod{pod(older, "n1", specImages(older), statuses(running("java", t0), running("node", t0)))},
			want:  map[string]map[string]State{"n1": {"java": Pending, "node": Cached}},
		},
		{
			name:  "a pod on a deleted node, and a pod of another owner, are ignored",
			ds:    ds,
			nodes: []corev1.Node{node("n1")},
			pods: func() []corev1.Pod {
				orphan := pod(ds, "gone", statuses(running("java", t0), running("node", t0)))
				other := pod(ds, "n1", statuses(running("java", t0), running("node", t0)))
				other.OwnerReferences[0].UID = "another"
				return []corev1.Pod{orphan, other}
			}(),
			want: map[string]map[string]State{"n1": {"java": Pending, "node": Pending}},
			check: func(t *testing.T, r Report) {
				if len(r.Nodes) != 1 {
					t.Errorf("nodes %+v, want only n1", r.Nodes)
				}
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := Compute(tc.ds, tc.pods, tc.nodes)
			got := map[string]map[string]State{}
			for _, n := range r.Nodes {
				got[n.Name] = map[string]State{}
				for img, c := range n.Images {
					got[n.Name][img] = c.State
				}
			}
			for nodeName, images := range tc.want {
				for img, st := range images {
					if got[nodeName][img] != st {
						t.Errorf("%s/%s = %s, want %s", nodeName, img, got[nodeName][img], st)
					}
				}
			}
			if tc.check != nil {
				tc.check(t, r)
			}
			// The compact pods a controller caches give the same report,
			// but for the digests they leave out.
			compact := make([]corev1.Pod, len(tc.pods))
			for i := range tc.pods {
				compact[i] = *CompactPod(&tc.pods[i])
			}
			if rc, want := Compute(tc.ds, compact, tc.nodes), withoutDigests(r); !reflect.DeepEqual(rc, want) {
				t.Errorf("from compact pods:\n%+v\nwant\n%+v", rc.Nodes, want.Nodes)
			}
		})
	}
}

func withoutDigests(r Report) Report {
	out := r
	out.Nodes = nil
	for _, n := range r.Nodes {
		images := map[string]Cell{}
		for name, c := range n.Images {
			c.Digest = ""
			images[name] = c
		}
		n.Images = images
		out.Nodes = append(out.Nodes, n)
	}
	return out
}

// TestCompactPodKeepsEveryState: each kind of container state survives the
// compact form, reasons and messages with tabs, newlines and backslashes
// included.
func TestCompactPodKeepsEveryState(t *testing.T) {
	ds := daemonSet("a=reg/a:1", "b=reg/b:1", "c=reg/c:1", "d=reg/d:1")
	odd := "line one\nline\ttwo \\t \\\\ end"
	p := pod(ds, "n1", specImages(ds), initStatus(corev1.ContainerStatus{Name: "kip-install-sleep", State: corev1.ContainerState{
		Terminated: &corev1.ContainerStateTerminated{ExitCode: 0, Reason: "Completed"}}}),
		statuses(running("a", t0), waiting("b", "ErrImagePull", odd),
			corev1.ContainerStatus{Name: "c", State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 137, Reason: "OOM\tKilled", Message: odd}}},
			corev1.ContainerStatus{Name: "d"}))
	full, compact := factsOf(&p), factsOf(CompactPod(&p))
	for name, c := range full.containers {
		c.imageID = ""
		if got := compact.containers[name]; got != c {
			t.Errorf("%s: compact %+v, want %+v", name, got, c)
		}
	}
	if len(compact.init) != 1 || compact.init[0] != full.init[0] || !reflect.DeepEqual(compact.images, full.images) || compact.pending != full.pending {
		t.Errorf("compact %+v, want %+v", compact, full)
	}
}

// TestCompactPodIsIdempotent: as a cache transform, CompactPod may run
// again on its own result (client-go does, on the objects of an initial
// watch list): the second pass keeps every fact, and the agent's report.
func TestCompactPodIsIdempotent(t *testing.T) {
	ds := daemonSet("a=reg/a:1", "b=reg/b:1")
	p := pod(ds, "n1", specImages(ds), statuses(running("a", t0), waiting("b", "ErrImagePull", "denied")))
	rep, err := report.Node{Runtime: "containerd 2.4.2", Images: []report.Image{{Name: "a", Image: "reg/a:1", State: report.StateCached}}}.Encode()
	if err != nil {
		t.Fatal(err)
	}
	p.Annotations = map[string]string{report.Annotation: rep}
	once := CompactPod(&p)
	twice := CompactPod(once.DeepCopy())
	if !reflect.DeepEqual(once, twice) {
		t.Errorf("a second pass changed the compact pod:\n once %+v\ntwice %+v", once.Annotations, twice.Annotations)
	}
	if !isCompact(once) || isCompact(&p) {
		t.Errorf("isCompact: compact %v, full %v", isCompact(once), isCompact(&p))
	}
	nodes := []corev1.Node{node("n1")}
	if a, b := Compute(ds, []corev1.Pod{*once}, nodes), Compute(ds, []corev1.Pod{*twice}, nodes); a.Line() != b.Line() || a.Nodes[0].Images["b"].Reason != "ErrImagePull" {
		t.Errorf("reports differ: %s / %s", a.Line(), b.Line())
	}
}

// TestWarmingTaintIsCounted: with WARM_NODE_TAINT set, a selected node that
// still carries the taint is marked and counted, whatever its effect; a
// node carrying another taint, or the taint when none is configured, is not.
func TestWarmingTaintIsCounted(t *testing.T) {
	ds := daemonSet("a=reg/a:1")
	ds.Spec.Template.Spec.Tolerations = []corev1.Toleration{nodewarm.Toleration("kip.dev/warming")}
	nodes := []corev1.Node{node("node1", tainted("kip.dev/warming")), node("node2", tainted("other")), node("node3")}
	pods := []corev1.Pod{pod(ds, "node1", statuses(waiting("a", "ContainerCreating", ""))), pod(ds, "node2", statuses(running("a", time.Unix(0, 0))))}
	if r := Compute(ds, pods, nodes); r.Summary.NodesTainted != 0 || r.Nodes[0].WarmingTaint {
		t.Errorf("no taint configured: %+v", r.Summary)
	}
	ds.Annotations = map[string]string{nodewarm.AnnotationSettings: nodewarm.Settings{Condition: true, Taint: "kip.dev/warming"}.Encode()}
	r := Compute(ds, pods, nodes)
	if r.Summary.NodesTainted != 1 || !r.Nodes[0].WarmingTaint || r.Nodes[1].WarmingTaint || r.Nodes[2].WarmingTaint {
		t.Errorf("summary %+v, nodes %+v", r.Summary, r.Nodes)
	}
	if line := r.Line(); !strings.Contains(line, ", 1 tainted while warming") {
		t.Errorf("line %q", line)
	}
}

// TestCompactPodsShareTheirTemplateImages: the compact pods of one
// template hold one copy of its images, not one each; another template's
// pods hold their own.
func TestCompactPodsShareTheirTemplateImages(t *testing.T) {
	ds := daemonSet("a=reg/a:1", "b=reg/b:1")
	one, two := pod(ds, "n1", specImages(ds)), pod(ds, "n2", specImages(ds))
	a, b := CompactPod(&one).Annotations[AnnotationTemplateImages], CompactPod(&two).Annotations[AnnotationTemplateImages]
	if a != b || unsafe.StringData(a) != unsafe.StringData(b) {
		t.Errorf("two pods of one template hold two copies of %q", a)
	}
	other := daemonSet("a=reg/a:2", "b=reg/b:1")
	three := pod(other, "n3", specImages(other))
	if c := CompactPod(&three).Annotations[AnnotationTemplateImages]; c == a {
		t.Errorf("another template's pod holds %q, the first template's", c)
	}
}

func TestInternerForgetsWhenFull(t *testing.T) {
	in := newInterner(2)
	first := in.intern(strings.Clone("x"))
	if got := in.intern(strings.Clone("x")); unsafe.StringData(got) != unsafe.StringData(first) {
		t.Error("the second x is a copy")
	}
	in.intern("y")
	if got := in.intern(strings.Clone("x")); unsafe.StringData(got) != unsafe.StringData(first) {
		t.Error("x was forgotten before the interner was full")
	}
	in.intern("z") // full: forgets x and y
	if len(in.seen) != 1 {
		t.Errorf("holds %d strings after being full, want 1", len(in.seen))
	}
	if got := in.intern(strings.Clone("x")); got != "x" || unsafe.StringData(got) == unsafe.StringData(first) {
		t.Error("x is still the first copy after the interner was full")
	}
}

// TestKubeletBytes: in daemonset mode, the configured images' sizes as each
// node's kubelet lists them, each image once, Docker Hub's by their full
// names; nothing where the node carries no list, nor in agent mode.
func TestKubeletBytes(t *testing.T) {
	ds := daemonSet("java=reg/java:17", "node=node:22")
	withImages := func(n corev1.Node) corev1.Node {
		n.Status.Images = []corev1.ContainerImage{
			{Names: []string{"reg/java@sha256:aa", "reg/java:17"}, SizeBytes: 300 << 20},
			{Names: []string{"docker.io/library/node@sha256:bb", "docker.io/library/node:22"}, SizeBytes: 100 << 20},
			{Names: []string{"reg/other:1"}, SizeBytes: 900 << 20},
		}
		return n
	}
	r := Compute(ds, []corev1.Pod{pod(ds, "n1"), pod(ds, "n2")}, []corev1.Node{withImages(node("n1")), node("n2")})
	if got := r.Nodes[0].KubeletBytes; got != 400<<20 {
		t.Errorf("n1: %d bytes, want %d", got, 400<<20)
	}
	if got := r.Nodes[1].KubeletBytes; got != 0 {
		t.Errorf("n2, without a list: %d bytes", got)
	}
	agents := agentDaemonSet(t, "java=reg/java:17")
	if got := Compute(agents, []corev1.Pod{pod(agents, "n1")}, []corev1.Node{withImages(node("n1"))}).Nodes[0].KubeletBytes; got != 0 {
		t.Errorf("agent mode: %d bytes; the agent's own measure stands there", got)
	}
}
