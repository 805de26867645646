//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kip-image-puller/kip/internal/dev/cri"
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
// counted apart: it cannot say, and its containers keep running.
type protection struct {
	mu         sync.Mutex
	checks     int
	lost       []string // node:ref missing, with the time
	unanswered int
	stop       chan struct{}
	done       chan struct{}
}

func protect(refs []string) *protection {
	p := &protection{stop: make(chan struct{}), done: make(chan struct{})}
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
	at := time.Now().Format("15:04:05")
	var lost []string
	unanswered := 0
	for _, node := range cluster.Nodes {
		held, err := heldOn(node)
		if err != nil {
			unanswered++
			continue
		}
		for _, ref := range refs {
			if !cri.Has(held, ref) {
				lost = append(lost, at+" "+node+":"+ref)
			}
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.checks++
	p.unanswered += unanswered
	p.lost = append(p.lost, lost...)
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

// end stops the checks and fails the test for every image lost.
func (p *protection) end(t *testing.T) (checks, unanswered int) {
	t.Helper()
	close(p.stop)
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.lost) > 0 {
		t.Errorf("the protection dropped: %d of %d checks found images missing: %v", len(p.lost), p.checks, p.lost)
	}
	return p.checks, p.unanswered
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

// warmStatus waits until `kip status -o json` says every selected node
// holds every image, and returns how long that took and the report.
func warmStatus(t *testing.T, ns string, timeout time.Duration) (time.Duration, status.Report) {
	t.Helper()
	start := time.Now()
	var r status.Report
	eventually(t, timeout, "kip status: every node warm", func() (bool, string) {
		out, code := kipStatus(t, ns, "-o", "json")
		r = status.Report{}
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			return false, fmt.Sprintf("exit %d: %v", code, err)
		}
		return r.Summary.Complete() && len(r.Summary.Failing) == 0, r.Line()
	})
	return time.Since(start), r
}

// fault is one fault injection: the puller warm in daemonset mode with a
// workspace running, the fault, then the time until `kip status` says every
// node is warm again, counted from the fault's end.
type fault struct {
	name, prefix string
	// inject causes the fault and returns once it has ended, with what the
	// status said during it, if anything.
	inject func(t *testing.T, ns string) (during string)
	// maxRestarts is what the fault explains.
	maxRestarts int32
	recovery    time.Duration // the longest wait for warm again
}

func (f fault) run(t *testing.T) {
	t.Helper()
	ns, entries := warmPuller(t, f.prefix)
	before := restartCounts(t, ns)
	p := protect(refsOf(entries))
	during := f.inject(t, ns)
	took, r := warmStatus(t, ns, f.recovery)
	checks, unanswered := p.end(t)
	restarted := restartCounts(t, ns) - before
	if restarted > f.maxRestarts {
		t.Errorf("%d restarts; want at most %d", restarted, f.maxRestarts)
	}
	said := r.Line()
	if during != "" {
		said = during + "; after: " + said
	}
	t.Logf("FAULT | %s | daemonset | recovered %s after the fault ended | images lost 0 (%d checks through the CRI, %d runtime answers missing) | restarts %d | status: %s",
		f.name, took.Round(100*time.Millisecond), checks, unanswered, restarted, said)
}

// outage is an inject that stops WHAT for seconds (hack/cluster.sh outage).
func outage(what, seconds string) func(*testing.T, string) string {
	return func(t *testing.T, _ string) string {
		t.Helper()
		if _, err := runCluster("outage", what, seconds); err != nil {
			t.Fatal(err)
		}
		return ""
	}
}

// warmPuller installs the puller in daemonset mode with two images, and a
// workspace pod that runs one of them.
func warmPuller(t *testing.T, prefix string) (string, []string) {
	t.Helper()
	ns := namespace(t)
	entries := pushSamples(t, prefix, 2, false)
	installRolledOut(t, ns, strings.Join(entries, ";"))
	waitCached(t, entries, cluster.Nodes, nil)
	kubectl(t, workspaces(ns, refsOf(entries)[0], 1), "apply", "-f", "-")
	kubectl(t, "", "rollout", "status", "-n", ns, "deployment/workspaces", "--timeout=3m")
	return ns, entries
}

// TestFaultAPIServerDown: the API server is killed for 30 s, then started
// again. The sleeping containers hold the images throughout; the
// controller keeps its leader Lease (renewed within 45 s) and runs on.
func TestFaultAPIServerDown(t *testing.T) {
	fault{name: "API server killed for 30 s", prefix: "fapi", inject: outage("kube-apiserver", "30"), recovery: 3 * time.Minute}.run(t)
}

// TestFaultConfigMapDeleted: the ConfigMap is deleted, then created again.
// The last applied DaemonSet stays, a ConfigMapMissing Event says why, and
// the recreated ConfigMap is applied; no pod restarts.
func TestFaultConfigMapDeleted(t *testing.T) {
	fault{name: "ConfigMap deleted, then recreated", prefix: "fcm", recovery: time.Minute, inject: func(t *testing.T, ns string) string {
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
	fault{name: "node2's kubelet stopped for 60 s", prefix: "fkubelet", recovery: 3 * time.Minute, inject: func(t *testing.T, ns string) string {
		done := make(chan error, 1)
		go func() {
			_, err := runCluster("outage", "kubelet-node2", "60")
			done <- err
		}()
		sawNotReady := false
		for {
			select {
			case err := <-done:
				if err != nil {
					t.Fatal(err)
				}
				if sawNotReady {
					return "node2 NotReady during the outage, never failing"
				}
				return ""
			case <-time.After(2 * time.Second):
			}
			out, _ := kipStatus(t, ns, "-o", "json")
			var r status.Report
			if json.Unmarshal([]byte(out), &r) != nil {
				continue
			}
			for _, n := range r.Nodes {
				sawNotReady = sawNotReady || (n.Name == "node2" && !n.Ready)
			}
			for _, f := range r.Summary.Failing {
				if f.Node == "node2" {
					t.Errorf("node2 counted as failing while its kubelet is down: %+v", f)
				}
			}
		}
	}}.run(t)
}

// TestFaultRuntimeRestarted: node1's containerd stops for 5 s and starts
// again; its containers keep running and it still holds every image.
func TestFaultRuntimeRestarted(t *testing.T) {
	fault{name: "node1's containerd stopped for 5 s", prefix: "fruntime", inject: outage("containerd-node1", "5"), recovery: 2 * time.Minute}.run(t)
}
