package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kip-image-puller/kip/internal/config"
	"github.com/kip-image-puller/kip/internal/dev/localcluster"
)

func benchScaleCmd() *cobra.Command {
	var clusterDir, kwok, stages, kip string
	var nodeCounts []int
	var images int
	var modes, installs []string
	cmd := &cobra.Command{
		Use:   "bench-scale",
		Short: "Measure the controller and the operator against hundreds or thousands of simulated nodes, and print a table",
		Long: `Measure the controller against --nodes simulated nodes (kwok, run by this
command against the local cluster's API server) and --images images, in each
caching mode of --modes, then the operator the same way, and print one table
per mode with a column per node count and the ratio of the largest to the
smallest.

The controller and the operator run on this host (bin/kip, with the local
cluster's kubeconfig), so that their memory and CPU are read from /proc and
their own metrics. The simulated nodes hold nothing: kwok's Stages
(hack/scale/kwok-stages.yaml) give the puller's pods their statuses, and in
agent mode this command writes each agent's report on its pod, by the same
rule (most nodes hold every image, 1 in 10 still pulls one, 2 in 100 fail
one).`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			e, err := localcluster.Load(clusterDir)
			if err != nil {
				return err
			}
			cfg, err := clientcmd.BuildConfigFromFlags("", e.Kubeconfig)
			if err != nil {
				return err
			}
			cfg.QPS, cfg.Burst = 200, 400
			cs, err := kubernetes.NewForConfig(cfg)
			if err != nil {
				return err
			}
			// Interrupted, it still stops what it started and removes
			// what it installed.
			ctx, cancel := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer cancel()
			s := &scale{e: e, cs: cs, kip: kip, images: images, results: results{}}
			stop, err := s.startKwok(kwok, stages)
			if err != nil {
				return err
			}
			defer stop()
			// The table, also of what was measured before a failure.
			defer func() {
				w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
				s.results.print(w, nodeCounts, images)
				_ = w.Flush()
			}()
			for _, n := range nodeCounts {
				if err := s.ensureNodes(ctx, n); err != nil {
					return err
				}
				for _, mode := range modes {
					for _, sc := range scenarios(installs, mode) {
						if err := s.measure(ctx, sc, n); err != nil {
							return fmt.Errorf("%s, %d nodes: %w", sc.name, n, err)
						}
					}
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&clusterDir, "cluster-dir", localcluster.DefaultDir, "the local cluster's directory")
	cmd.Flags().IntSliceVar(&nodeCounts, "nodes", []int{500, 2000}, "simulated node counts, smallest first")
	cmd.Flags().IntVar(&images, "images", 100, "images in the puller's configuration")
	cmd.Flags().StringSliceVar(&modes, "modes", []string{config.ModeDaemonSet, config.ModeAgent}, "caching modes")
	cmd.Flags().StringSliceVar(&installs, "installs", []string{"controller", "operator"}, "what runs the puller: the controller alone, the operator")
	cmd.Flags().StringVar(&kwok, "kwok", "kwok", "the kwok binary (sigs.k8s.io/kwok/cmd/kwok v0.8.0)")
	cmd.Flags().StringVar(&stages, "stages", "hack/scale/kwok-stages.yaml", "kwok's Stages")
	cmd.Flags().StringVar(&kip, "kip", "bin/kip", "the kip binary the controller and the operator run")
	return cmd
}

// scale is one bench-scale run.
type scale struct {
	e       *localcluster.Env
	cs      kubernetes.Interface
	kip     string
	images  int
	results results
}

func (s *scale) log(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s bench-scale: "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

// Simulated nodes are named fake-NNNN; the Stages and the simulated agents
// decide each node's image states by that name.
const (
	fakeNodeLabel = "kip.dev/bench-scale"
	kwokTaint     = "kwok.x-k8s.io/node"
)

func fakeNode(i int) string { return fmt.Sprintf("fake-%04d", i) }

// nodeOutcome is what a simulated node holds: every image, all but the
// last (still pulling), or all but the first (failing, with reason).
func nodeOutcome(node string) (pulling bool, failReason string) {
	switch {
	case strings.HasSuffix(node, "13"):
		return false, "ImagePullBackOff"
	case strings.HasSuffix(node, "42"):
		return false, "ErrImagePull"
	case strings.HasSuffix(node, "7"):
		return true, ""
	}
	return false, ""
}

// warmNodes is how many of the first n simulated nodes hold every image.
func warmNodes(n int) int {
	warm := 0
	for i := range n {
		if pulling, fail := nodeOutcome(fakeNode(i)); !pulling && fail == "" {
			warm++
		}
	}
	return warm
}

// ensureNodes creates the simulated nodes fake-0000 up to n (those missing),
// removes any beyond, and waits until kwok has made them all Ready.
func (s *scale) ensureNodes(ctx context.Context, n int) error {
	s.log("creating %d simulated nodes", n)
	list, err := s.cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: fakeNodeLabel + "=fake"})
	if err != nil {
		return err
	}
	var extra []string
	for _, node := range list.Items {
		if i, err := strconv.Atoi(strings.TrimPrefix(node.Name, "fake-")); err == nil && i >= n {
			extra = append(extra, node.Name)
		}
	}
	if err := forEach(ctx, len(extra), 32, func(ctx context.Context, i int) error {
		return s.cs.CoreV1().Nodes().Delete(ctx, extra[i], metav1.DeleteOptions{})
	}); err != nil {
		return err
	}
	err = forEach(ctx, n, 32, func(ctx context.Context, i int) error {
		node := &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{
				Name:        fakeNode(i),
				Labels:      map[string]string{fakeNodeLabel: "fake", corev1.LabelHostname: fakeNode(i), "type": "kwok"},
				Annotations: map[string]string{"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
			},
			Spec: corev1.NodeSpec{Taints: []corev1.Taint{{Key: kwokTaint, Value: "fake", Effect: corev1.TaintEffectNoSchedule}}},
		}
		_, err := s.cs.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return err
		}
		return nil
	})
	if err != nil {
		return err
	}
	return poll(ctx, 10*time.Minute, time.Second, fmt.Sprintf("%d simulated nodes Ready", n), func() (bool, error) {
		list, err := s.cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: fakeNodeLabel + "=fake", ResourceVersion: "0"})
		if err != nil {
			return false, err
		}
		ready := 0
		for _, node := range list.Items {
			for _, c := range node.Status.Conditions {
				if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
					ready++
				}
			}
		}
		return ready >= n, nil
	})
}

// scenario is what one measurement installs: the controller alone (as the
// templates install it, in a given caching mode) or the operator and a
// KubernetesImagePuller.
type scenario struct {
	name     string
	mode     string
	operator bool
}

// scenarios are the installs measured in a caching mode.
func scenarios(installs []string, mode string) []scenario {
	var out []scenario
	for _, in := range installs {
		switch in {
		case "controller":
			out = append(out, standalone(mode))
		case "operator":
			out = append(out, operated(mode))
		}
	}
	return out
}

func standalone(mode string) scenario {
	return scenario{name: "controller, " + mode + " mode", mode: mode}
}

func operated(mode string) scenario {
	return scenario{name: "operator, " + mode + " mode", mode: mode, operator: true}
}

// benchImages is the configuration's image list: IMAGES entries pinned by
// digest (the simulated nodes pull nothing, and no registry is asked),
// with the last image's digest varied by generation.
func benchImages(n, generation int) []string {
	out := make([]string, n)
	for i := range out {
		g := 0
		if i == n-1 {
			g = generation
		}
		out[i] = fmt.Sprintf("img%d=registry.bench.invalid/scale/img%d@sha256:%064x", i+1, i+1, i*1000+g)
	}
	return out
}

// measure installs sc for n simulated nodes, measures it, and removes it.
func (s *scale) measure(ctx context.Context, sc scenario, n int) error {
	ns := "kip-scale-" + sc.mode
	if sc.operator {
		ns = "kip-scale-op-" + sc.mode
	}
	row := func(name string, v float64, unit string) { s.results.add(sc.name, name, n, v, unit) }
	warm := warmNodes(n)
	s.log("%s, %d nodes (%d of them warm by the Stages' rule), %d images", sc.name, n, warm, s.images)
	inst, err := s.install(ctx, sc, ns)
	if err != nil {
		return err
	}
	defer inst.remove()

	// 1. The first rollout: from the start to every node's report.
	before, err := s.apiserverMetrics(ctx)
	if err != nil {
		return err
	}
	start := time.Now()
	if err := inst.start(ctx); err != nil {
		return err
	}
	sim := inst.simulateAgents(ctx)
	if err := inst.waitWarm(ctx, n, warm, 15*time.Minute); err != nil {
		return err
	}
	rollout := time.Since(start)
	win := inst.proc.window(start, time.Now())
	row("first rollout: start -> every node reported", rollout.Seconds(), "s")
	row("first rollout: peak RSS", win.peakRSS, "MiB")
	row("first rollout: peak RSS, anonymous (not the binary's pages)", win.peakAnon, "MiB")
	row("first rollout: CPU (mean cores)", win.cores, "cores")
	after, err := s.apiserverMetrics(ctx)
	if err != nil {
		return err
	}
	row("start-up: watches opened (API server)", delta(before, after, "apiserver_longrunning_requests", `verb="WATCH"`), "")

	// 2. Steady state: no change for a minute.
	time.Sleep(10 * time.Second)
	writes0, err := inst.writes()
	if err != nil {
		return err
	}
	from := time.Now()
	prefix := filepath.Join(s.e.Dir, fmt.Sprintf("bench-scale-%s-%s-%d", map[bool]string{false: "controller", true: "operator"}[sc.operator], sc.mode, n))
	// The second half of the minute under a CPU profile.
	time.Sleep(30 * time.Second)
	if err := inst.proc.saveProfile("profile?seconds=25", prefix+".cpu"); err != nil {
		return err
	}
	time.Sleep(time.Until(from.Add(time.Minute)))
	writes1, err := inst.writes()
	if err != nil {
		return err
	}
	win = inst.proc.window(from, time.Now())
	row("steady: RSS", win.lastRSS, "MiB")
	row("steady: RSS, anonymous (not the binary's pages)", win.lastAnon, "MiB")
	row("steady: CPU (mean cores)", win.cores, "cores")
	row("steady: API writes per minute", (writes1-writes0)/time.Since(from).Minutes(), "/min")
	heap := prefix + ".heap"
	if err := inst.proc.saveProfile("heap", heap); err != nil {
		return err
	}
	s.log("heap and CPU profiles in steady state: %s, %s.cpu (go tool pprof -top %s FILE)", heap, prefix, s.kip)

	sim()

	// 3. One pod's status changes: an image starts failing on a node.
	node := fakeNode(1)
	from = time.Now()
	if err := inst.failImage(ctx, node, "img1"); err != nil {
		return err
	}
	if err := inst.waitFailingShown(ctx, node, "img1"); err != nil {
		return err
	}
	row("pod status change -> "+inst.statusName(), time.Since(from).Seconds()*1000, "ms")

	// 4. kip status, as an admin runs it.
	took, size, err := s.kipStatus(ctx, ns, prefix+"-kip-status.cpu")
	if err != nil {
		return err
	}
	s.log("CPU profile of one more kip status: %s (go tool pprof -top %s %s)", prefix+"-kip-status.cpu", s.kip, prefix+"-kip-status.cpu")
	row("kip status: wall time (best of 3)", took.Seconds()*1000, "ms")
	row("kip status: output", float64(size)/1024, "KiB")

	// 5. A restart with every pod in place: start-up traffic and time.
	warmBefore, err := inst.warmNow(ctx)
	if err != nil {
		return err
	}
	inst.proc.stop()
	before, err = s.apiserverMetrics(ctx)
	if err != nil {
		return err
	}
	from = time.Now()
	if err := inst.start(ctx); err != nil {
		return err
	}
	if err := inst.waitReported(ctx, n, warmBefore); err != nil {
		return err
	}
	row("restart -> first full report", time.Since(from).Seconds(), "s")
	after, err = s.apiserverMetrics(ctx)
	if err != nil {
		return err
	}
	row("restart: LIST requests (API server)", delta(before, after, "apiserver_request_total", `verb="LIST"`), "")
	row("restart: LIST bytes answered (API server)", delta(before, after, "apiserver_response_sizes_sum", `verb="LIST"`)/1024, "KiB")
	row("restart: pod watch events sent (API server, KiB)", delta(before, after, "apiserver_watch_events_sizes_sum", `resource="pods"`)/1024, "KiB")
	win = inst.proc.window(from, time.Now())
	row("restart: peak RSS", win.peakRSS, "MiB")

	// 6. A configuration change: one image's digest moves. (The rollout
	// that follows is not waited for: the first one measured a full
	// rollout, and kwok, replacing every pod, is its bottleneck.)
	from = time.Now()
	if err := inst.change(ctx, 1); err != nil {
		return err
	}
	if err := inst.waitDaemonSetUpdated(ctx); err != nil {
		return err
	}
	row("change -> DaemonSet updated", time.Since(from).Seconds(), "s")
	return nil
}
