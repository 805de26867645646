package observe

import (
	"encoding/json"
	"fmt"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/kip-image-puller/kip/internal/config"
	"github.com/kip-image-puller/kip/internal/daemonset"
	"github.com/kip-image-puller/kip/internal/status"
)

// fleet builds what the API server holds for a puller of images on nodes:
// the DaemonSet, one pod per node as the DaemonSet controller and the
// kubelet fill it in (tolerations, per-node affinity, statuses,
// managedFields), and nodes as a kubelet reports them (50 images, capacity,
// addresses, annotations). Every 7th image on every 5th node fails.
func fleet(nodes, images int) (*appsv1.DaemonSet, []corev1.Pod, []corev1.Node) {
	var entries []string
	for i := range images {
		entries = append(entries, fmt.Sprintf("img%d=quay.io/example-org/workspace-image-%d:2026.11", i, i))
	}
	cfg, _, err := config.Parse(map[string]string{config.KeyImages: strings.Join(entries, ";")})
	if err != nil {
		panic(err)
	}
	ds := daemonset.Build(cfg, daemonset.Options{KIPImage: "quay.io/kip/kip:v1"})
	ds.UID = "ds-uid"
	managed := []metav1.ManagedFieldsEntry{{Manager: "kubelet", Operation: metav1.ManagedFieldsOperationApply, APIVersion: "v1",
		FieldsType: "FieldsV1", FieldsV1: metav1.NewFieldsV1(`{"f:status":{` + strings.Repeat(`"f:containerStatuses":{},`, images) + `"f:phase":{}}}`)}}
	started := metav1.NewTime(time.Date(2026, 11, 29, 8, 0, 0, 0, time.UTC))
	var pods []corev1.Pod
	var ns []corev1.Node
	for n := range nodes {
		node := fmt.Sprintf("worker-%04d.cluster.example.com", n)
		pod := corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{
				Name: fmt.Sprintf("%s-%05d", ds.Name, n), Namespace: ds.Namespace, UID: types.UID(fmt.Sprintf("pod-%d", n)),
				Labels:            daemonset.SelectorLabels(ds.Name),
				Annotations:       map[string]string{"kubectl.kubernetes.io/default-container": "img0", "openshift.io/scc": "restricted-v2"},
				OwnerReferences:   []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "DaemonSet", Name: ds.Name, UID: ds.UID, Controller: ptr.To(true)}},
				ManagedFields:     managed,
				CreationTimestamp: started,
			},
			Spec: *ds.Spec.Template.Spec.DeepCopy(),
		}
		pod.Spec.NodeName = node
		pod.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
			NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchFields: []corev1.NodeSelectorRequirement{{Key: "metadata.name", Operator: corev1.NodeSelectorOpIn, Values: []string{node}}}}}}}}
		for _, key := range []string{"not-ready", "unreachable", "disk-pressure", "memory-pressure", "pid-pressure", "unschedulable"} {
			pod.Spec.Tolerations = append(pod.Spec.Tolerations, corev1.Toleration{Key: "node.kubernetes.io/" + key, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule})
		}
		pod.Status = corev1.PodStatus{Phase: corev1.PodRunning, HostIP: "10.0.0.1", PodIP: "10.128.0.1", StartTime: &started,
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}, {Type: corev1.ContainersReady, Status: corev1.ConditionTrue}}}
		pod.Status.InitContainerStatuses = []corev1.ContainerStatus{{Name: config.ReservedContainerName, Image: "quay.io/kip/kip:v1", ImageID: "quay.io/kip/kip@sha256:" + strings.Repeat("a", 64),
			State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Reason: "Completed", StartedAt: started, FinishedAt: started}}}}
		for i, c := range ds.Spec.Template.Spec.Containers {
			cs := corev1.ContainerStatus{Name: c.Name, Image: c.Image, ImageID: "quay.io/example-org/workspace-image@sha256:" + strings.Repeat("b", 64),
				ContainerID: "containerd://" + strings.Repeat("c", 64), Ready: true, Started: ptr.To(true), RestartCount: 0,
				State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: started}}}
			if i%7 == 3 && n%5 == 0 {
				cs.Ready, cs.ImageID, cs.ContainerID = false, "", ""
				cs.State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff", Message: "Back-off pulling image " + c.Image}}
			}
			pod.Status.ContainerStatuses = append(pod.Status.ContainerStatuses, cs)
		}
		pods = append(pods, pod)

		nd := corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: node, UID: types.UID("node-" + node), CreationTimestamp: started,
				Labels: map[string]string{"kubernetes.io/hostname": node, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
					"node-role.kubernetes.io/worker": "", "topology.kubernetes.io/zone": "zone-a", "node.kubernetes.io/instance-type": "m6i.4xlarge"},
				Annotations: map[string]string{"node.alpha.kubernetes.io/ttl": "0", "volumes.kubernetes.io/controller-managed-attach-detach": "true",
					"csi.volume.kubernetes.io/nodeid": `{"ebs.csi.aws.com":"i-0123456789abcdef0"}`, "machine.openshift.io/machine": "openshift-machine-api/" + node},
				ManagedFields: managed[:1]},
			Spec: corev1.NodeSpec{ProviderID: "aws:///zone-a/i-0123456789abcdef0", PodCIDR: "10.128.0.0/23"},
			Status: corev1.NodeStatus{
				Capacity:    corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("16"), corev1.ResourceMemory: resource.MustParse("64Gi"), corev1.ResourcePods: resource.MustParse("250")},
				Allocatable: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("15500m"), corev1.ResourceMemory: resource.MustParse("62Gi"), corev1.ResourcePods: resource.MustParse("250")},
				Addresses:   []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "10.0.0.1"}, {Type: corev1.NodeHostName, Address: node}},
				NodeInfo:    corev1.NodeSystemInfo{KernelVersion: "5.14.0", OSImage: "Red Hat Enterprise Linux CoreOS", ContainerRuntimeVersion: "cri-o://1.33.0", KubeletVersion: "v1.37.2"},
			},
		}
		for _, typ := range []corev1.NodeConditionType{"MemoryPressure", "DiskPressure", "PIDPressure", corev1.NodeReady} {
			st := corev1.ConditionFalse
			if typ == corev1.NodeReady {
				st = corev1.ConditionTrue
			}
			nd.Status.Conditions = append(nd.Status.Conditions, corev1.NodeCondition{Type: typ, Status: st, Reason: "Kubelet" + string(typ), Message: "kubelet reports " + string(typ), LastHeartbeatTime: started, LastTransitionTime: started})
		}
		for i := range 50 {
			nd.Status.Images = append(nd.Status.Images, corev1.ContainerImage{SizeBytes: 500 << 20,
				Names: []string{fmt.Sprintf("quay.io/example-org/workspace-image-%d@sha256:%s", i, strings.Repeat("d", 64)), fmt.Sprintf("quay.io/example-org/workspace-image-%d:2026.11", i)}})
		}
		ns = append(ns, nd)
	}
	return ds, pods, ns
}

func trimAll(t testing.TB, pods []corev1.Pod, nodes []corev1.Node) ([]corev1.Pod, []corev1.Node) {
	t.Helper()
	var tp []corev1.Pod
	var tn []corev1.Node
	for i := range pods {
		p, err := TrimPod(&pods[i])
		if err != nil {
			t.Fatal(err)
		}
		tp = append(tp, *p.(*corev1.Pod))
	}
	for i := range nodes {
		n, err := TrimNode(&nodes[i])
		if err != nil {
			t.Fatal(err)
		}
		tn = append(tn, *n.(*corev1.Node))
	}
	return tp, tn
}

// TestTrimmedObjectsGiveTheSameReport: the cache transforms keep every
// field the report reads.
func TestTrimmedObjectsGiveTheSameReport(t *testing.T) {
	ds, pods, nodes := fleet(10, 20)
	// Variety: a cordoned node, a tainted one, a NotReady one, a failed init, a pending pod.
	nodes[1].Spec.Unschedulable = true
	nodes[2].Spec.Taints = []corev1.Taint{{Key: "dedicated", Value: "gpu", Effect: corev1.TaintEffectNoSchedule}}
	nodes[3].Status.Conditions[3].Status = corev1.ConditionFalse
	pods[4].Status.InitContainerStatuses[0].State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ErrImagePull", Message: "not found"}}
	pods[6].Status = corev1.PodStatus{Phase: corev1.PodPending}
	pods[7].Spec.Containers[2].Image = "quay.io/example-org/old:1"
	pods = append(pods[:8], pods[9:]...) // a node without a pod

	pods[5].Status.ContainerStatuses[1].State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 2, Reason: "Error", Message: "no\tsleeper\nhere, in C:\\tmp"}}

	want := status.Compute(ds, pods, nodes)
	tp, tn := trimAll(t, pods, nodes)
	got := status.Compute(ds, tp, tn)
	// The compact pods leave the image IDs out: the controllers show no
	// digest. The trimmed nodes leave the kubelet's image list out: the
	// controllers show no KubeletBytes (kip status, reading whole nodes,
	// does); the untrimmed report must have them, or this proves nothing.
	for _, n := range want.Nodes {
		if n.Selected && n.KubeletBytes == 0 {
			t.Errorf("node %s: no KubeletBytes from its whole object", n.Name)
		}
	}
	for _, r := range []*status.Report{&want, &got} {
		for i, n := range r.Nodes {
			for name, c := range n.Images {
				c.Digest = ""
				n.Images[name] = c
			}
			r.Nodes[i].KubeletBytes = 0
		}
	}
	// The transforms run again on what they returned when an informer
	// starts from a watch list (client-go transforms its initial events,
	// then the store's replacement once more): nothing may be lost.
	tp2, tn2 := trimAll(t, tp, tn)
	if !reflect.DeepEqual(tp2, tp) || !reflect.DeepEqual(tn2, tn) {
		t.Error("a second trim changed the trimmed objects: the transforms must be idempotent")
	}
	if !reflect.DeepEqual(got, want) {
		for i := range want.Nodes {
			if !reflect.DeepEqual(got.Nodes[i], want.Nodes[i]) {
				t.Errorf("node %d differs on trimmed objects:\ngot  %+v\nwant %+v", i, got.Nodes[i], want.Nodes[i])
			}
		}
		t.Errorf("the report differs on trimmed objects:\ngot  %+v\nwant %+v", got.Summary, want.Summary)
	}
	// A change NodeChanged reacts to survives the trim.
	old, _ := TrimNode(nodes[0].DeepCopy())
	nodes[0].Labels["kip"] = "x"
	cur, _ := TrimNode(nodes[0].DeepCopy())
	if reflect.DeepEqual(old.(*corev1.Node).Labels, cur.(*corev1.Node).Labels) {
		t.Error("a label change is lost by the trim")
	}
	if obj, err := TrimPod("not a pod"); err != nil || obj != "not a pod" {
		t.Errorf("TrimPod of another type: %v, %v", obj, err)
	}
}

// TestTrimKeepsAFractionOfTheObjects bounds what the cache holds per node.
func TestTrimKeepsAFractionOfTheObjects(t *testing.T) {
	_, pods, nodes := fleet(3, 100)
	tp, tn := trimAll(t, pods, nodes)
	size := func(v any) int {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return len(b)
	}
	full, trimmed := size(pods)+size(nodes), size(tp)+size(tn)
	t.Logf("per node, as JSON: %d bytes in full, %d trimmed", full/3, trimmed/3)
	if trimmed*10 > full {
		t.Errorf("the trimmed objects are %d bytes, more than a tenth of the %d in full", trimmed, full)
	}
}

// BenchmarkCacheContent measures the heap the controller's cache retains
// for the pods and nodes of 2,000 nodes x 100 images, in full and trimmed:
//
//	go test -run '^$' -bench CacheContent -benchtime 1x ./internal/observe/
func BenchmarkCacheContent(b *testing.B) {
	const nodes, images = 2000, 100
	for _, trim := range []bool{false, true} {
		name := "full"
		if trim {
			name = "trimmed"
		}
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				before := heapAfterGC()
				_, pods, ns := fleet(nodes, images)
				var keep any = []any{pods, ns}
				if trim {
					tp, tn := trimAll(b, pods, ns)
					keep = []any{tp, tn} // the full objects are garbage now
				}
				after := heapAfterGC()
				b.ReportMetric(float64(after-before)/nodes, "B/node")
				b.ReportMetric(float64(after-before)/(1<<20), "MiB")
				runtime.KeepAlive(keep)
			}
		})
	}
}

func heapAfterGC() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
