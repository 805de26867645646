//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"golang.org/x/sys/unix"

	"github.com/kip-image-puller/kip/internal/dev/cri"
	"github.com/kip-image-puller/kip/internal/dev/registrytest"
)

// The kubelet's real image garbage collection, made to run during a fault.
//
// Every node of the test cluster keeps its images on a filesystem of its
// own (NODE_IMAGEFS_SIZE), where the kubelet's eviction manager frees every
// unused, unpinned image as soon as less than 15% of it is free (it checks
// every 10 s, with the image GC manager's own DeleteUnusedImages). The
// periodic image GC runs only every 5 minutes, longer than most faults.
//
// A control image, pulled on each node and used by no container, shows that
// the collection ran: armImageGC pulls it, then restarts the node's kubelet,
// which lists the node's images when it starts (the image GC never takes an
// image in the same pass that first sees it). fire then fills the node's
// image filesystem just past the threshold, by less than the control image
// takes, so that collecting it ends the pressure and no pod is evicted, and
// removes the filler once the control image is gone.

// gcControlSize is the control image's size; on the node it takes about
// twice that (its compressed blobs and its unpacked snapshot).
const gcControlSize = 96 << 20

// gcMargin is how far below the threshold the filler leaves the free space.
const gcMargin = 48 << 20

var gcControl struct {
	once sync.Once
	ref  string
}

// gcControlRef pushes the control image once per run, and names it as the
// nodes pull it.
func gcControlRef(t *testing.T) string {
	t.Helper()
	gcControl.once.Do(func() {
		registrytest.PushImage(t, cluster.RegistryPush+"/e2e/gc-control:v1", sampleImage(t, gcControlSize), authn.Anonymous)
		gcControl.ref = cluster.Registry + "/e2e/gc-control:v1"
	})
	if gcControl.ref == "" {
		t.Fatal("the control image could not be pushed")
	}
	return gcControl.ref
}

// imageGC is the kubelets' image GC, armed on some nodes.
type imageGC struct {
	control string
	nodes   []string
	from    time.Time

	mu        sync.Mutex
	collected map[string]time.Duration // node -> when, from fire
	failed    []string
	done      chan struct{}
}

// armImageGC pulls the control image on nodes and restarts their kubelets,
// so that each kubelet knows it (their containers keep running).
func armImageGC(t *testing.T, nodes []string) *imageGC {
	t.Helper()
	g := &imageGC{control: gcControlRef(t), nodes: nodes, collected: map[string]time.Duration{}}
	errs := make(chan error, len(nodes))
	for _, node := range nodes {
		go func() {
			errs <- func() error {
				if _, err := imagefsThreshold(node); err != nil {
					return err
				}
				c, err := cri.Dial(cluster.Socket(node))
				if err != nil {
					return err
				}
				defer func() { _ = c.Close() }()
				for _, r := range c.Pull(context.Background(), []string{g.control}, 1) {
					if r.Err != nil {
						return fmt.Errorf("%s: pull the control image: %w", node, r.Err)
					}
				}
				_, err = runCluster("restart-kubelet", strings.TrimPrefix(node, "node"))
				return err
			}()
		}()
	}
	for range nodes {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	return g
}

// fire presses every armed node's image filesystem past the kubelet's
// threshold, and lets go of each once its control image is gone, or after
// timeout.
func (g *imageGC) fire(t *testing.T, timeout time.Duration) {
	t.Helper()
	g.from = time.Now()
	g.done = make(chan struct{})
	var wg sync.WaitGroup
	for _, node := range g.nodes {
		filler := filepath.Join(cluster.Dir, "nodes", node, "containerd", "kip-gc-filler")
		t.Cleanup(func() { _ = os.Remove(filler) })
		wg.Add(1)
		go func() {
			defer wg.Done()
			took, err := g.collect(node, filler, timeout)
			g.mu.Lock()
			defer g.mu.Unlock()
			if err != nil {
				g.failed = append(g.failed, fmt.Sprintf("%s: %v", node, err))
				return
			}
			g.collected[node] = took
		}()
	}
	go func() {
		wg.Wait()
		close(g.done)
	}()
}

func (g *imageGC) collect(node, filler string, timeout time.Duration) (time.Duration, error) {
	defer func() { _ = os.Remove(filler) }()
	if err := fillPastThreshold(node, filler); err != nil {
		return 0, err
	}
	deadline := g.from.Add(timeout)
	for time.Now().Before(deadline) {
		if held, err := heldOn(node); err == nil && !cri.Has(held, g.control) {
			return time.Since(g.from), nil
		}
		time.Sleep(time.Second)
	}
	return 0, fmt.Errorf("the control image %s still held %s after the filesystem was pressed: the kubelet's image GC did not run", g.control, timeout)
}

// end waits for fire and fails the test for every node where the control
// image was not collected. It returns what the GC did, for the table.
func (g *imageGC) end(t *testing.T) string {
	t.Helper()
	<-g.done
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, f := range g.failed {
		t.Error(f)
	}
	var out []string
	for _, node := range g.nodes {
		if took, ok := g.collected[node]; ok {
			out = append(out, fmt.Sprintf("%s %s", node, took.Round(time.Second)))
		}
	}
	return "control collected: " + strings.Join(out, ", ")
}

// imagefsThreshold is the free space, in bytes, below which node's kubelet
// collects images: its evictionHard imagefs.available, a percentage of the
// node's image filesystem, which must be a filesystem of its own.
func imagefsThreshold(node string) (int64, error) {
	store := filepath.Join(cluster.Dir, "nodes", node, "containerd")
	var st, parent unix.Statfs_t
	if err := unix.Statfs(store, &st); err != nil {
		return 0, err
	}
	if err := unix.Statfs(filepath.Dir(store), &parent); err != nil {
		return 0, err
	}
	if st.Fsid == parent.Fsid {
		return 0, fmt.Errorf("%s's image store %s is not a filesystem of its own: bring the cluster up with NODE_IMAGEFS_SIZE (the e2e harness does, unless KIP_E2E_REUSE keeps a cluster without)", node, store)
	}
	conf, err := os.ReadFile(filepath.Join(cluster.Dir, "nodes", node, "kubelet.yaml"))
	if err != nil {
		return 0, err
	}
	m := regexp.MustCompile(`imagefs\.available: "(\d+)%"`).FindSubmatch(conf)
	if m == nil {
		return 0, fmt.Errorf("%s's kubelet.yaml sets no imagefs.available percentage", node)
	}
	pct, _ := strconv.ParseInt(string(m[1]), 10, 64)
	return int64(st.Blocks) * st.Bsize * pct / 100, nil
}

// fillPastThreshold allocates filler on node's image filesystem, leaving
// gcMargin less free than the kubelet's threshold.
func fillPastThreshold(node, filler string) error {
	threshold, err := imagefsThreshold(node)
	if err != nil {
		return err
	}
	var st unix.Statfs_t
	if err := unix.Statfs(filepath.Dir(filler), &st); err != nil {
		return err
	}
	size := int64(st.Bavail)*st.Bsize - threshold + gcMargin
	if size <= 0 {
		return fmt.Errorf("%s's image filesystem is already past the kubelet's threshold (%d bytes free, threshold %d)", node, int64(st.Bavail)*st.Bsize, threshold)
	}
	f, err := os.Create(filler)
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }()
	if err := unix.Fallocate(int(f.Fd()), 0, 0, size); err != nil {
		return fmt.Errorf("allocate %d bytes on %s's image filesystem: %w", size, node, err)
	}
	return nil
}

// TestCachedImagesSurviveImageGC is daemonset mode's central claim, the twin
// of agent mode's TestPinnedImagesSurviveImageGC: on every node, the
// kubelet's real image GC collects an unused control image and none of the
// images the sleeping containers hold, which keep running, unrestarted.
func TestCachedImagesSurviveImageGC(t *testing.T) {
	ns := namespace(t)
	entries := pushSamples(t, "gckept", 3, false)
	installRolledOut(t, ns, strings.Join(entries, ";"))
	waitCached(t, entries, cluster.Nodes, nil)
	p := protect(refsOf(entries))
	gc := armImageGC(t, cluster.Nodes)
	kept := continuityOf(t, ns, false)
	before := restartCounts(t, ns)

	gc.fire(t, 2*time.Minute)
	collected := gc.end(t)
	p.faultEnded()
	lost, checks, _ := p.end(t)
	mustKeep(t, lost, checks)
	kept.sameAs(t, continuityOf(t, ns, false), true)
	if n := restartCounts(t, ns) - before; n != 0 {
		t.Errorf("%d restarts: %s", n, restartsExplained(t, ns))
	}
	t.Logf("%s; every cached image held on every node in %d checks", collected, checks)
}
