//go:build e2e

package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/rand"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kip-image-puller/kip/internal/config"
	"github.com/kip-image-puller/kip/internal/daemonset"
	"github.com/kip-image-puller/kip/internal/dev/cri"
	"github.com/kip-image-puller/kip/internal/dev/imagebuild"
	"github.com/kip-image-puller/kip/internal/dev/registrytest"
	"github.com/kip-image-puller/kip/internal/privilege"
	"github.com/kip-image-puller/kip/internal/status"
)

// The fault-injection suite: each fault on the real local cluster, with the
// puller warm and a workspace running. Each asserts that the protection
// never drops (every node's runtime, asked through its CRI socket every
// second, holds every image), that no pod crash-loops beyond what the fault
// explains, that the status tells the truth during and after, and it
// measures the time to recover. `make test-faults` runs these alone.

// protection asks every node's CRI, every second until stopped, whether it
// holds every ref. A runtime that does not answer (its own outage) is
// counted apart: it cannot say, and its containers keep running; but once
// the fault has ended (and a settling time for a runtime that restarts), a
// runtime must answer.
type protection struct {
	mu         sync.Mutex
	checks     int
	lost       map[string]string // node:ref missing -> when first seen
	unanswered int
	silent     []string // node, with the time: no answer after the fault
	endedAt    time.Time
	stop       chan struct{}
	done       chan struct{}
}

// settle is how long a runtime may take to answer again once its fault has
// ended.
const settle = 10 * time.Second

func protect(refs []string) *protection {
	p := &protection{lost: map[string]string{}, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		for {
			p.check(refs)
			select {
			case <-p.stop:
				return
			case <-time.After(time.Second):
			}
		}
	}()
	return p
}

func (p *protection) check(refs []string) {
	at := time.Now()
	var lost, silent []string
	unanswered := 0
	for _, node := range cluster.Nodes {
		held, err := heldOn(node)
		if err != nil {
			unanswered++
			silent = append(silent, fmt.Sprintf("%s %s: %v", at.Format("15:04:05"), node, err))
			continue
		}
		for _, ref := range refs {
			if !cri.Has(held, ref) {
				lost = append(lost, node+":"+ref)
			}
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.checks++
	p.unanswered += unanswered
	for _, l := range lost {
		if _, ok := p.lost[l]; !ok {
			p.lost[l] = at.Format("15:04:05")
		}
	}
	if !p.endedAt.IsZero() && at.After(p.endedAt.Add(settle)) {
		p.silent = append(p.silent, silent...)
	}
}

// faultEnded marks the fault's end: from settle later, a runtime that does
// not answer fails the test.
func (p *protection) faultEnded() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.endedAt = time.Now()
}

func heldOn(node string) (map[string]bool, error) {
	c, err := cri.Dial(cluster.Socket(node))
	if err != nil {
		return nil, err
	}
	defer func() { _ = c.Close() }()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return c.ImageRefs(ctx)
}

// end stops the checks and returns what they found: the images missing
// (node:ref, sorted, each once), the checks made, and the answers missing
// during the fault. A runtime that did not answer after it fails the test.
func (p *protection) end(t *testing.T) (lost []string, checks, unanswered int) {
	t.Helper()
	close(p.stop)
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.silent) > 0 {
		t.Errorf("%d CRI checks got no answer more than %s after the fault ended: %v", len(p.silent), settle, p.silent)
	}
	if p.checks < 2 {
		t.Errorf("only %d CRI checks: the protection was not watched", p.checks)
	}
	for l := range p.lost {
		lost = append(lost, l)
	}
	sort.Strings(lost)
	return lost, p.checks, p.unanswered
}

// mustKeep fails the test for every image lost.
func mustKeep(t *testing.T, lost []string, checks int) {
	t.Helper()
	if len(lost) > 0 {
		t.Errorf("the protection dropped: %d images missing on some node (node:image) in %d checks: %v", len(lost), checks, lost)
	}
}

// restartCounts sums the container restarts of the pods in ns.
func restartCounts(t *testing.T, ns string) int32 {
	t.Helper()
	var pods corev1.PodList
	if err := cluster.c.List(context.Background(), &pods, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	return restarts(pods.Items)
}

// restartsExplained names each container of ns that restarted, with how
// its last run ended.
func restartsExplained(t *testing.T, ns string) string {
	t.Helper()
	var pods corev1.PodList
	if err := cluster.c.List(context.Background(), &pods, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range pods.Items {
		for _, c := range p.Status.ContainerStatuses {
			if c.RestartCount == 0 {
				continue
			}
			ended := "unknown"
			if term := c.LastTerminationState.Terminated; term != nil {
				ended = fmt.Sprintf("%s, exit %d at %s: %s", term.Reason, term.ExitCode, term.FinishedAt.Format("15:04:05"), firstLine(term.Message))
			}
			out = append(out, fmt.Sprintf("%s/%s on %s restarted %d times, last ended %s", p.Name, c.Name, p.Spec.NodeName, c.RestartCount, ended))
		}
	}
	return strings.Join(out, "; ")
}

// warmStatus waits until `kip status -o json` says every selected node
// holds every image, and returns the report.
func warmStatus(t *testing.T, ns string, timeout time.Duration) status.Report {
	t.Helper()
	var r status.Report
	eventually(t, timeout, "kip status: every node warm", func() (bool, string) {
		out, code := kipStatus(t, ns, "-o", "json")
		r = status.Report{}
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			return false, fmt.Sprintf("exit %d: %v", code, err)
		}
		return r.Summary.Complete() && len(r.Summary.Failing) == 0, r.Line()
	})
	return r
}

// continuity is what a fault that the README says the puller rides out
// must leave as it was: the DaemonSet that caches the images, its pod on
// each node, and when each of their containers started.
type continuity struct {
	daemonSet types.UID
	pods      map[string]string // node -> "pod UID: container@start ..."
}

func continuityOf(t *testing.T, ns string, agent bool) continuity {
	t.Helper()
	ds, err := activeDS(ns)
	if err != nil {
		t.Fatal(err)
	}
	c := continuity{daemonSet: ds.UID, pods: map[string]string{}}
	for _, node := range cluster.Nodes {
		for _, p := range cachingPodsOn(t, ns, node, agent) {
			var starts []string
			for _, s := range p.Status.ContainerStatuses {
				started := "not running"
				if s.State.Running != nil {
					started = s.State.Running.StartedAt.UTC().Format(time.RFC3339)
				}
				starts = append(starts, s.Name+"@"+started)
			}
			sort.Strings(starts)
			c.pods[node] += fmt.Sprintf("%s: %s", p.UID, strings.Join(starts, " "))
		}
	}
	return c
}

// sameAs fails the test where now differs from c: always the DaemonSet;
// with pods, each node's pod and its containers' starts too.
func (c continuity) sameAs(t *testing.T, now continuity, pods bool) {
	t.Helper()
	if now.daemonSet != c.daemonSet {
		t.Errorf("the DaemonSet was replaced: UID %s, then %s", c.daemonSet, now.daemonSet)
	}
	if !pods {
		return
	}
	for _, node := range cluster.Nodes {
		if c.pods[node] == "" {
			t.Errorf("no caching pod on %s before the fault", node)
		}
		if now.pods[node] != c.pods[node] {
			t.Errorf("the caching pod on %s changed: before %q, after %q", node, c.pods[node], now.pods[node])
		}
	}
}

// fault is one fault injection: the puller warm in daemonset mode with a
// workspace running, the kubelets' image GC armed, the fault, then the
// time from the injection until `kip status` says every node is warm again.
type fault struct {
	name, prefix string
	// inject causes the fault and returns once it has ended, with what
	// showed that it happened (the symptom: an outage seen, a failure named
	// by the status). An empty answer fails the test: a fault that nothing
	// saw tests nothing.
	inject func(t *testing.T, ns string) (seen string)
	// maxRestarts is what the fault explains.
	maxRestarts int32
	recovery    time.Duration // the longest wait for warm again
	// agent runs the puller in agent mode instead of daemonset mode.
	agent bool
	// rideOut: the README says the puller rides this fault out with no
	// change, so its pods and their containers must be the same after.
	rideOut bool
	// noGC is a node whose kubelet is the fault (so cannot collect).
	noGC string
	// rolls: the fault rolls the caching pods (an image or a pull secret
	// added).
	rolls bool
}

func (f fault) run(t *testing.T) {
	t.Helper()
	ns, entries := warmPuller(t, f.prefix, f.agent)
	p := protect(refsOf(entries))
	gc := armImageGC(t, f.gcNodes(t))
	before := restartCounts(t, ns)
	kept := continuityOf(t, ns, f.agent)

	start := time.Now()
	// In daemonset mode a rollout leaves each node's images unprotected
	// for the seconds between the old pod's end and its successor's
	// containers starting (the README's known gap): where the fault rolls
	// the pods, the GC presses once the fault has ended, the rollout done.
	atEnd := f.rolls && !f.agent
	if !atEnd {
		gc.fire(t, f.recovery)
	}
	seen := f.inject(t, ns)
	p.faultEnded()
	if atEnd {
		gc.fire(t, f.recovery)
	}
	r := warmStatus(t, ns, f.recovery)
	took := time.Since(start)
	collected := gc.end(t)
	lost, checks, unanswered := p.end(t)
	mustKeep(t, lost, checks)

	if seen == "" {
		t.Errorf("%s: the fault's symptom was never seen", f.name)
	}
	kept.sameAs(t, continuityOf(t, ns, f.agent), f.rideOut)
	restarted := restartCounts(t, ns) - before
	if restarted > f.maxRestarts {
		t.Errorf("%d restarts; want at most %d: %s", restarted, f.maxRestarts, restartsExplained(t, ns))
	}
	mode := config.ModeDaemonSet
	if f.agent {
		mode = config.ModeAgent
	}
	logFault(t, faultRow{name: f.name, mode: mode, took: took, gc: collected, lost: len(lost), checks: checks, unanswered: unanswered,
		restarts: restarted, kept: f.rideOut, said: seen + "; after: " + r.Line()})
}

// gcNodes are the nodes whose kubelets collect during the fault: every node
// in daemonset mode, where running containers keep the images; in agent
// mode, the nodes whose runtime pins (the others' images are taken and
// healed, as the README says); never a node whose kubelet is the fault.
func (f fault) gcNodes(t *testing.T) []string {
	t.Helper()
	nodes := cluster.Nodes
	if f.agent {
		nodes = pinningNodes(t)
	}
	var out []string
	for _, n := range nodes {
		if n != f.noGC {
			out = append(out, n)
		}
	}
	return out
}

// faultRow is a fault's row of the table in the README.
type faultRow struct {
	name, mode, gc, said     string
	took                     time.Duration
	lost, checks, unanswered int
	restarts                 int32
	kept                     bool
}

// logFault logs the fault's row of the table in the README.
func logFault(t *testing.T, r faultRow) {
	t.Helper()
	kept := ""
	if r.kept {
		kept = ", the same DaemonSet, pods and container starts"
	}
	t.Logf("FAULT | %s | %s | %s | %d images lost (%d checks through the CRI, %d runtime answers missing during the fault) | %d restarts%s | recovered %s after the injection | %s",
		r.name, r.mode, r.gc, r.lost, r.checks, r.unanswered, r.restarts, kept, r.took.Round(100*time.Millisecond), r.said)
}

// outage is an inject that stops WHAT for seconds (hack/cluster.sh outage),
// and watches for its symptom meanwhile: down looks, every second, for what
// shows that WHAT is down, and the first thing it saw is returned.
func outage(what, seconds string, down func(t *testing.T, ns string) string) func(*testing.T, string) string {
	return func(t *testing.T, ns string) string {
		t.Helper()
		done := make(chan error, 1)
		go func() {
			_, err := runCluster("outage", what, seconds)
			done <- err
		}()
		var seen string
		for {
			select {
			case err := <-done:
				if err != nil {
					t.Fatal(err)
				}
				return seen
			case <-time.After(time.Second):
			}
			if now := down(t, ns); seen == "" {
				seen = now
			}
		}
	}
}

// apiDown says whether the API server refuses a read that etcd must serve.
func apiDown(*testing.T, string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	var ns corev1.Namespace
	if err := cluster.c.Get(ctx, types.NamespacedName{Name: "default"}, &ns); err != nil {
		return "during: reads failed (" + firstLine(err.Error()) + ")"
	}
	return ""
}

// runtimeDown says whether node's runtime does not answer its CRI socket.
func runtimeDown(node string) func(*testing.T, string) string {
	return func(*testing.T, string) string {
		if _, err := heldOn(node); err != nil {
			return "during: " + node + "'s CRI did not answer"
		}
		return ""
	}
}

// warmPuller installs the puller in daemonset mode (or agent mode) with two
// images, and a workspace pod that runs one of them.
func warmPuller(t *testing.T, prefix string, agent bool) (string, []string) {
	t.Helper()
	entries := pushSamples(t, prefix, 2, false)
	var ns string
	if agent {
		// Private images too (the pull-secret fault): granted as by an admin
		// whose kubelets run AlwaysVerify.
		ns = namespaceAt(t, "privileged", privilege.LabelAgentPrivateImages)
		install(t, ns, map[string]string{"IMAGES": strings.Join(entries, ";"), "CACHING_MODE": config.ModeAgent, "CRI_SOCKET": cluster.SocketPattern()})
		kubectl(t, "", "rollout", "status", "-n", ns, "deployment/kubernetes-image-puller", "--timeout=3m")
	} else {
		ns = namespace(t)
		installRolledOut(t, ns, strings.Join(entries, ";"))
	}
	waitCached(t, entries, cluster.Nodes, nil)
	kubectl(t, workspaces(ns, refsOf(entries)[0], 1), "apply", "-f", "-")
	kubectl(t, "", "rollout", "status", "-n", ns, "deployment/workspaces", "--timeout=3m")
	return ns, entries
}

// TestFaultAPIServerDown: the API server is killed for 30 s, then started
// again. The sleeping containers hold the images throughout; the
// controller keeps its leader Lease (renewed within 45 s) and runs on.
func TestFaultAPIServerDown(t *testing.T) {
	fault{name: "API server killed for 30 s", prefix: "fapi", inject: outage("kube-apiserver", "30", apiDown), recovery: 3 * time.Minute, rideOut: true}.run(t)
}

// TestFaultAPIServerDownAgentMode: the same in agent mode; the agents keep
// their list and their pins, and watch their DaemonSet again after.
func TestFaultAPIServerDownAgentMode(t *testing.T) {
	fault{name: "API server killed for 30 s", prefix: "fapiagent", agent: true, inject: outage("kube-apiserver", "30", apiDown), recovery: 3 * time.Minute, rideOut: true}.run(t)
}

// TestFaultConfigMapDeleted: the ConfigMap is deleted, then created again.
// The last applied DaemonSet stays, a ConfigMapMissing Event says why, and
// the recreated ConfigMap is applied; no pod restarts.
func TestFaultConfigMapDeleted(t *testing.T) {
	fault{name: "ConfigMap deleted, then recreated", prefix: "fcm", recovery: 2 * time.Minute, rideOut: true, inject: func(t *testing.T, ns string) string {
		cm := kubectl(t, "", "get", "configmap", "-n", ns, "k8s-image-puller", "-o", "json")
		kubectl(t, "", "delete", "configmap", "-n", ns, "k8s-image-puller")
		waitEvent(t, ns, "ConfigMapMissing", "Deployment", "not found")
		time.Sleep(5 * time.Second) // the DaemonSet must stay through a while of it
		if _, err := getDS(ns); err != nil {
			t.Errorf("the DaemonSet went with the ConfigMap: %v", err)
		}
		var obj map[string]any
		if err := json.Unmarshal([]byte(cm), &obj); err != nil {
			t.Fatal(err)
		}
		meta := obj["metadata"].(map[string]any)
		for _, k := range []string{"resourceVersion", "uid", "creationTimestamp", "managedFields"} {
			delete(meta, k)
		}
		again, _ := json.Marshal(obj)
		kubectl(t, string(again), "create", "-f", "-")
		waitEvent(t, ns, "ConfigMapFound", "Deployment", "found")
		return "a ConfigMapMissing Event, the DaemonSet kept, then ConfigMapFound"
	}}.run(t)
}

// TestFaultKubeletStopped: node2's kubelet stops for 60 s. The node goes
// NotReady and is not counted as failing; its containers keep running, so
// it holds its images; started again, it is warm again.
func TestFaultKubeletStopped(t *testing.T) {
	fault{name: "node2's kubelet stopped for 80 s", prefix: "fkubelet", recovery: 4 * time.Minute, rideOut: true, noGC: "node2",
		inject: outage("kubelet-node2", "80", node2NotReadyNeverFailing)}.run(t)
}

// node2NotReadyNeverFailing says whether `kip status` shows node2 NotReady,
// and fails the test whenever it counts node2 as failing.
func node2NotReadyNeverFailing(t *testing.T, ns string) string {
	out, _ := kipStatus(t, ns, "-o", "json")
	var r status.Report
	if json.Unmarshal([]byte(out), &r) != nil {
		return ""
	}
	for _, f := range r.Summary.Failing {
		if f.Node == "node2" {
			t.Errorf("node2 counted as failing while its kubelet is down: %+v", f)
		}
	}
	for _, n := range r.Nodes {
		if n.Name == "node2" && !n.Ready {
			return "node2 NotReady during the outage, never failing"
		}
	}
	return ""
}

// TestFaultRuntimeRestarted: node1's containerd stops for 5 s and starts
// again; its containers keep running and it still holds every image.
func TestFaultRuntimeRestarted(t *testing.T) {
	fault{name: "node1's containerd stopped for 5 s", prefix: "fruntime", inject: outage("containerd-node1", "5", runtimeDown("node1")), recovery: 2 * time.Minute, rideOut: true}.run(t)
}

// TestFaultRuntimeRestartedAgentMode: the same in agent mode: node1's
// agent loses its CRI connection for 5 s, and finds every image held after.
func TestFaultRuntimeRestartedAgentMode(t *testing.T) {
	fault{name: "node1's containerd stopped for 5 s", prefix: "fruntimeagent", agent: true, inject: outage("containerd-node1", "5", runtimeDown("node1")), recovery: 2 * time.Minute, rideOut: true}.run(t)
}

// TestFaultEtcdRestarted: etcd stops for 10 s and starts again; the API
// server answers errors meanwhile, and everything carries on after.
func TestFaultEtcdRestarted(t *testing.T) {
	fault{name: "etcd stopped for 10 s, then restarted", prefix: "fetcd", inject: outage("etcd", "10", apiDown), recovery: 3 * time.Minute, rideOut: true}.run(t)
}

// waitFailing waits until `kip status` names image (an IMAGES name) failing
// on some node, and returns that failure.
func waitFailing(t *testing.T, ns, image string, timeout time.Duration) status.Failure {
	t.Helper()
	var found status.Failure
	eventually(t, timeout, image+" named failing by kip status", func() (bool, string) {
		out, _ := kipStatus(t, ns, "-o", "json")
		var r status.Report
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			return false, err.Error()
		}
		for _, f := range r.Summary.Failing {
			if f.Image == image {
				found = f
				return true, ""
			}
		}
		return false, r.Line()
	})
	return found
}

// addImage adds an IMAGES entry to the puller's ConfigMap and waits until
// the active DaemonSet caches it: the sleeping containers' template, or the
// agents' list, names it.
func addImage(t *testing.T, ns, entry string) {
	t.Helper()
	appendImage(t, ns, entry)
	_, ref, _ := strings.Cut(entry, "=")
	eventually(t, time.Minute, "the DaemonSet caching "+ref, func() (bool, string) {
		ds, err := activeDS(ns)
		if err != nil {
			return false, err.Error()
		}
		if daemonset.IsAgents(ds) {
			list, err := daemonset.AgentImages(ds)
			if err != nil {
				return false, err.Error()
			}
			for _, img := range list {
				if img.Ref == ref {
					return true, ""
				}
			}
			return false, fmt.Sprintf("the agents' list: %v", list)
		}
		for _, c := range ds.Spec.Template.Spec.Containers {
			if c.Image == ref {
				return true, ""
			}
		}
		return false, fmt.Sprintf("generation %d", ds.Generation)
	})
}

// activeDS reads the DaemonSet that caches the images of the puller in ns:
// the sleeping containers', or the agents'.
func activeDS(ns string) (*appsv1.DaemonSet, error) {
	var cm corev1.ConfigMap
	if err := cluster.c.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: "k8s-image-puller"}, &cm); err != nil {
		return nil, err
	}
	var ds appsv1.DaemonSet
	err := cluster.c.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: config.ActiveDaemonSet(cm.Data)}, &ds)
	return &ds, err
}

// appendImage adds an IMAGES entry to the puller's ConfigMap.
func appendImage(t *testing.T, ns, entry string) {
	t.Helper()
	cm := kubectl(t, "", "get", "configmap", "-n", ns, "k8s-image-puller", "-o", "jsonpath={.data.IMAGES}")
	patchConfigMap(t, ns, map[string]string{"IMAGES": cm + ";" + entry})
}

// TestFaultRegistryDownMidPull: an image of 256 MiB is added from the
// remote-like registry (20 MiB/s per stream), and the registry stops for
// 60 s as the nodes start pulling it. The status names the image failing;
// once the registry is back the kubelets pull it again, with no manual
// step, and the images already cached never leave.
func TestFaultRegistryDownMidPull(t *testing.T) {
	fault{name: "registry down for 60 s in the middle of a pull of a new image", prefix: "fregistry", rolls: true, recovery: 8 * time.Minute,
		inject: registryDownMidPull}.run(t)
}

// TestFaultRegistryDownMidPullAgentMode: the same in agent mode: the
// agents' CRI pulls fail, are reported, and are tried again on their
// backoff until the registry answers.
func TestFaultRegistryDownMidPullAgentMode(t *testing.T) {
	fault{name: "registry down for 60 s in the middle of a pull of a new image", prefix: "fregistryagent", agent: true, rolls: true, recovery: 8 * time.Minute,
		inject: registryDownMidPull}.run(t)
}

func registryDownMidPull(t *testing.T, ns string) string {
	img := sampleImage(t, 256<<20)
	repoTag := fmt.Sprintf("e2e/fregistry-big-%s:v1", strings.ToLower(rand.String(5)))
	registrytest.PushImage(t, cluster.RemoteRegistryPush+"/"+repoTag, img, authn.Anonymous)
	addImage(t, ns, "big="+cluster.RemoteRegistry+"/"+repoTag)
	done := make(chan error, 1)
	go func() {
		_, err := runCluster("outage", "remote-registry", "60")
		done <- err
	}()
	f := waitFailing(t, ns, "big", 2*time.Minute)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// The test bed's registry keeps its blobs on disk but its manifests in
	// memory: what it served comes back with one push of the same image
	// (the same digest; no blob is sent again).
	registrytest.PushImage(t, cluster.RemoteRegistryPush+"/"+repoTag, img, authn.Anonymous)
	return fmt.Sprintf("during: big failing on %s (%s)", f.Node, f.Reason)
}

// sampleImage is an image of about size bytes, in two layers, that runs
// kip-sleep.
func sampleImage(t *testing.T, size int64) v1.Image {
	t.Helper()
	sleep, err := imagebuild.FileFromDisk(filepath.Join(cluster.root, "bin", "kip-sleep"), "/bin/sleep", 0o755)
	if err != nil {
		t.Fatal(err)
	}
	img, err := imagebuild.SampleImage(size, 2, sleep)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// TestFaultSlowRegistry: the remote-like registry turns slow (2 s before
// each answer's first byte, 1 MiB/s per stream) and a new image of 24 MiB
// is added from it. The pull takes its time and is never named failing;
// the status says the image is coming, and the nodes are warm once it is.
func TestFaultSlowRegistry(t *testing.T) {
	fault{name: "slow registry: 2 s first byte, 1 MiB/s per stream", prefix: "fslow", rolls: true, recovery: 6 * time.Minute, inject: slowRegistry}.run(t)
}

// TestFaultSlowRegistryAgentMode: the same in agent mode, where each
// agent's CRI pull runs under its attempt timeout (10 min).
func TestFaultSlowRegistryAgentMode(t *testing.T) {
	fault{name: "slow registry: 2 s first byte, 1 MiB/s per stream", prefix: "fslowagent", agent: true, rolls: true, recovery: 6 * time.Minute, inject: slowRegistry}.run(t)
}

func slowRegistry(t *testing.T, ns string) string {
	if _, err := runCluster("reshape-registry", "2s", "1"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := runCluster("reshape-registry"); err != nil {
			t.Error(err)
		}
	})
	img := sampleImage(t, 24<<20)
	repoTag := fmt.Sprintf("e2e/fslow-%s:v1", strings.ToLower(rand.String(5)))
	registrytest.PushImage(t, cluster.RemoteRegistryPush+"/"+repoTag, img, authn.Anonymous)
	start := time.Now()
	addImage(t, ns, "slow="+cluster.RemoteRegistry+"/"+repoTag)
	coming := 0
	for {
		out, _ := kipStatus(t, ns, "-o", "json")
		var r status.Report
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("kip status -o json: %v", err)
		}
		for _, f := range r.Summary.Failing {
			if f.Image == "slow" {
				t.Fatalf("the slow image named failing on %s after %s: %s: %s", f.Node, time.Since(start).Round(time.Second), f.Reason, f.Message)
			}
		}
		if r.Summary.Complete() {
			break
		}
		coming++
		if time.Since(start) > 5*time.Minute {
			t.Fatalf("not warm after %s: %s", time.Since(start).Round(time.Second), r.Line())
		}
		time.Sleep(2 * time.Second)
	}
	if coming == 0 {
		t.Error("the status never showed the slow image on its way: the fault did not slow anything")
	}
	return fmt.Sprintf("during: the image coming, never failing, for %s (%d looks)", time.Since(start).Round(time.Second), coming)
}

// TestFaultPullSecretRotated: the puller caches a private image with its
// pull secret; the secret is rotated to a wrong password, and a new private
// image is added: the status names it failing, the images already cached
// stay. The secret is fixed, and the kubelets pull it with no other step.
func TestFaultPullSecretRotated(t *testing.T) {
	fault{name: "pull secret rotated to a wrong password, then fixed", prefix: "fsecret", rolls: true, recovery: 6 * time.Minute,
		inject: pullSecretRotated(false)}.run(t)
}

// TestFaultPullSecretRotatedAgentMode: the same in agent mode, where the
// secret is mounted into the agents: the kubelet rewrites the files, each
// agent reads them again (and logs it), and tries the failed image again
// at once when the secret is fixed.
func TestFaultPullSecretRotatedAgentMode(t *testing.T) {
	fault{name: "pull secret rotated to a wrong password, then fixed", prefix: "fsecretagent", agent: true, rolls: true, recovery: 6 * time.Minute,
		inject: pullSecretRotated(true)}.run(t)
}

// secretChanged is what an agent logs when its mounted pull secrets changed.
const secretChanged = "the mounted pull secrets changed"

func pullSecretRotated(agent bool) func(*testing.T, string) string {
	return func(t *testing.T, ns string) string {
		createPullSecret(t, ns, "regcred")
		private := pushSamples(t, "fsecretpriv", 2, true)
		patchConfigMap(t, ns, map[string]string{"IMAGE_PULL_SECRETS": "regcred"})
		addImage(t, ns, private[0])
		waitCached(t, private[:1], cluster.Nodes, nil)
		setPullSecretPassword(t, ns, "regcred", "wrong-password")
		if agent {
			// The new image must meet the wrong secret: wait until every
			// agent has read it (the kubelet rewrites mounted Secrets
			// within a minute or two).
			kubectl(t, "", "rollout", "status", "-n", ns, "daemonset/"+dsName+config.AgentSuffix, "--timeout=3m")
			waitAgentsLogged(t, ns, secretChanged, 1, 4*time.Minute)
		}
		addImage(t, ns, private[1])
		name, _, _ := strings.Cut(private[1], "=")
		f := waitFailing(t, ns, name, 3*time.Minute)
		if !cri.Has(mustHeld(t, "node1"), refsOf(private[:1])[0]) {
			t.Errorf("node1 lost %s while the secret was wrong", private[0])
		}
		setPullSecretPassword(t, ns, "regcred", cluster.AuthPassword)
		return fmt.Sprintf("during: %s failing on %s (%s: %s)", name, f.Node, f.Reason, firstLine(f.Message))
	}
}

// waitAgentsLogged waits until every agent's log holds msg at least n times.
func waitAgentsLogged(t *testing.T, ns, msg string, n int, timeout time.Duration) {
	t.Helper()
	eventually(t, timeout, fmt.Sprintf("every agent logging %q", msg), func() (bool, string) {
		var short []string
		for _, p := range agentPods(t, ns) {
			if p.DeletionTimestamp != nil {
				continue
			}
			logs := kubectl(t, "", "logs", "-n", ns, p.Name)
			if strings.Count(logs, msg) < n {
				short = append(short, p.Spec.NodeName)
			}
		}
		return len(short) == 0, fmt.Sprintf("not yet on %v", short)
	})
}

// setPullSecretPassword rewrites the pull secret name for the registry that
// requires credentials, with password.
func setPullSecretPassword(t *testing.T, ns, name, password string) {
	t.Helper()
	auth := base64.StdEncoding.EncodeToString([]byte(cluster.AuthUser + ":" + password))
	config := fmt.Sprintf(`{"auths": {%q: {"auth": %q}}}`, cluster.AuthRegistry, auth)
	patch, _ := json.Marshal(map[string]any{"data": map[string]string{corev1.DockerConfigJsonKey: base64.StdEncoding.EncodeToString([]byte(config))}})
	kubectl(t, string(patch), "patch", "secret", "-n", ns, name, "--type", "merge", "--patch-file", "/dev/stdin")
}

func mustHeld(t *testing.T, node string) map[string]bool {
	t.Helper()
	held, err := heldOn(node)
	if err != nil {
		t.Fatal(err)
	}
	return held
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	if len(line) > 120 {
		line = line[:120] + "…"
	}
	return line
}

// TestFaultControllerKilledMidRollout: an image is added and the
// controller's pod is killed at once (no grace period); then the node its
// replacement runs on is drained. The replacement finishes the rollout, the
// drain moves it again, and the DaemonSet's pods stay on the drained node.
func TestFaultControllerKilledMidRollout(t *testing.T) {
	fault{name: "controller pod killed mid-rollout, then its node drained", prefix: "fkill", rolls: true, recovery: 4 * time.Minute,
		inject: controllerKilledMidRollout(false)}.run(t)
}

// TestFaultControllerKilledMidRolloutAgentMode: the same in agent mode,
// where the new image reaches the agents through their DaemonSet's list.
func TestFaultControllerKilledMidRolloutAgentMode(t *testing.T) {
	fault{name: "controller pod killed mid-rollout, then its node drained", prefix: "fkillagent", agent: true, rolls: true, recovery: 4 * time.Minute,
		inject: controllerKilledMidRollout(true)}.run(t)
}

func controllerKilledMidRollout(agent bool) func(*testing.T, string) string {
	return func(t *testing.T, ns string) string {
		added := pushSamples(t, "fkilladded", 1, false)
		appendImage(t, ns, added[0])
		kubectl(t, "", "delete", "pod", "-n", ns, "-l", "app.kubernetes.io/component=controller", "--grace-period=0", "--force")
		kubectl(t, "", "rollout", "status", "-n", ns, "deployment/kubernetes-image-puller", "--timeout=3m")
		waitCached(t, added, cluster.Nodes, nil)
		pods := controllerPods(t, ns)
		var node string
		for _, p := range pods {
			if p.DeletionTimestamp == nil {
				node = p.Spec.NodeName
			}
		}
		if node == "" {
			t.Fatalf("no controller pod after the kill: %d pods", len(pods))
		}
		kubectl(t, "", "drain", node, "--ignore-daemonsets", "--delete-emptydir-data", "--force", "--timeout=3m")
		t.Cleanup(func() { kubectl(t, "", "uncordon", node) })
		kubectl(t, "", "rollout", "status", "-n", ns, "deployment/kubernetes-image-puller", "--timeout=3m")
		if n := len(cachingPodsOn(t, ns, node, agent)); n != 1 {
			t.Errorf("%d of the DaemonSet's pods on the drained %s; want 1", n, node)
		}
		kubectl(t, "", "uncordon", node)
		return "the replacement applied the new image; " + node + " drained, the controller moved, the DaemonSet's pod stayed"
	}
}

// cachingPodsOn lists the pods of the puller's active DaemonSet (the
// agents' in agent mode) on node.
func cachingPodsOn(t *testing.T, ns, node string, agent bool) []corev1.Pod {
	t.Helper()
	pods := pullerPods(t, ns)
	if agent {
		pods = agentPods(t, ns)
	}
	var out []corev1.Pod
	for _, p := range pods {
		if p.Spec.NodeName == node && p.DeletionTimestamp == nil {
			out = append(out, p)
		}
	}
	return out
}

// TestFaultPullerResourceDeleted: in operator mode, the KubernetesImagePuller
// is deleted, then applied again (an uninstall undone; a GitOps tool's
// resync). Deleting it removes what it owns, the DaemonSet with it, by
// design: nothing protects the images then, and the kubelets' image GC,
// made to run while it is gone, collects them with the control image. The
// recreated resource pulls them again and is Ready, its puller on a leader
// Lease of its own. The operator never restarts.
func TestFaultPullerResourceDeleted(t *testing.T) {
	c := installOperator(t)
	ns := namespace(t)
	entries := pushSamples(t, "fkip", 2, false)
	key := client.ObjectKey{Namespace: ns, Name: "image-puller"}
	manifest := pullerResource(entries, "")
	applyUntilReady(t, c, manifest, key, entries)
	kubectl(t, workspaces(ns, refsOf(entries)[0], 1), "apply", "-f", "-")
	kubectl(t, "", "rollout", "status", "-n", ns, "deployment/workspaces", "--timeout=3m")
	before := restartCounts(t, "kip-operator")
	p := protect(refsOf(entries))
	gc := armImageGC(t, cluster.Nodes)

	start := time.Now()
	kubectl(t, "", "delete", "kubernetesimagepuller", "image-puller", "-n", ns)
	waitGone(t, c, ns)
	// A while with nothing holding the images: until the kubelets have
	// collected what no container uses.
	gc.fire(t, 3*time.Minute)
	collected := gc.end(t)
	p.faultEnded()
	applied := time.Now()
	kubectl(t, manifest, "apply", "-n", ns, "-f", "-")
	got := waitReady(t, c, key)
	took, ready := time.Since(start), time.Since(applied)

	lost, checks, unanswered := p.end(t)
	// The kubelets took every image no container used: the second on
	// every node, the first but where the workspace runs it.
	var want []string
	for _, node := range cluster.Nodes {
		if node != workspaceNode(t, ns) {
			want = append(want, node+":"+refsOf(entries)[0])
		}
		want = append(want, node+":"+refsOf(entries)[1])
	}
	sort.Strings(want)
	if strings.Join(lost, " ") != strings.Join(want, " ") {
		t.Errorf("images missing while the resource was gone:\n%v\nwant (every image no container ran):\n%v", lost, want)
	}
	restarted := restartCounts(t, "kip-operator") - before
	if restarted > 0 {
		t.Errorf("the operator restarted %d times", restarted)
	}
	// Its new puller elects itself on a Lease of its own, not on the one
	// the first could not release (60 s).
	if ready > 40*time.Second {
		t.Errorf("Ready again %s after the resource was recreated; want within 40 s", ready.Round(time.Second))
	}
	n := len(cluster.Nodes)
	if got.Status.NodesWarm != fmt.Sprintf("%d/%d", n, n) || got.Status.ImagesCached != fmt.Sprintf("%d/%d", 2*n, 2*n) {
		t.Errorf("recreated, Ready, but the status says %s nodes warm, %s images cached", got.Status.NodesWarm, got.Status.ImagesCached)
	}
	logFault(t, faultRow{name: "KubernetesImagePuller deleted, then recreated", mode: "operator, " + config.ModeDaemonSet, took: took, gc: collected,
		lost: len(lost), checks: checks, unanswered: unanswered, restarts: restarted,
		said: fmt.Sprintf("the resource and its DaemonSet gone, the unused image collected (by design: deleted is uninstalled); Ready=True %s after the apply, %s nodes warm, %s images cached",
			ready.Round(100*time.Millisecond), got.Status.NodesWarm, got.Status.ImagesCached)})
}

// workspaceNode is the node the one workspace pod in ns runs on.
func workspaceNode(t *testing.T, ns string) string {
	t.Helper()
	var pods corev1.PodList
	if err := cluster.c.List(context.Background(), &pods, client.InNamespace(ns), client.MatchingLabels{"app": "workspace"}); err != nil {
		t.Fatal(err)
	}
	if len(pods.Items) != 1 {
		t.Fatalf("%d workspace pods in %s; want 1", len(pods.Items), ns)
	}
	return pods.Items[0].Spec.NodeName
}
