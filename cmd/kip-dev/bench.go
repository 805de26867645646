package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/kip-image-puller/kip/internal/config"
	"github.com/kip-image-puller/kip/internal/daemonset"
	"github.com/kip-image-puller/kip/internal/dev/cri"
	"github.com/kip-image-puller/kip/internal/dev/imagebuild"
	"github.com/kip-image-puller/kip/internal/dev/localcluster"
	"github.com/kip-image-puller/kip/internal/privilege"
	"github.com/kip-image-puller/kip/internal/template"
)

func benchCmd() *cobra.Command {
	var clusterDir, kipTag, registry string
	var counts []int
	var layers, parallelism int
	var sweep []int
	var sizeMB int64
	var runs int
	var seed uint64
	var rawFile string
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure both caching modes on the local cluster against straight CRI pulls, and print a table",
		Long: `Measure, on the local cluster (make cluster-up), for each K of --images and
images of S MB, each set new to every node, --runs times per cell in rounds
of a new random order each, with the median and the range: the time from
kubectl apply of the ConfigMap to every node holding every image, in
daemonset mode and in agent mode; the same number of images pulled straight
through each node's CRI at each --sweep parallelism and all at once, the
fastest median of which is the CRI parallel floor (on a host bound by CPU,
all at once is not the fastest) and what PULL_PARALLELISM's default is
chosen from;
the memory each mode requests and uses per node; and a
workspace pod's start from a cached image against an uncached one.

--registry remote (the default) pulls from the local cluster's remote-like
registry (a first-byte latency and a per-stream bandwidth cap): loopback
pulls are bound by CPU, and would not show what pulling in parallel is
worth.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			e, err := localcluster.Load(clusterDir)
			if err != nil {
				return err
			}
			if runs < 1 {
				return fmt.Errorf("--runs %d: want at least 1", runs)
			}
			b := &bench{e: e, sizeMB: sizeMB, layers: layers, kipImage: kipTag, parallelism: parallelism, sweep: sweep, runs: runs,
				run: strconv.FormatInt(time.Now().Unix(), 36), rand: rand.New(rand.NewPCG(seed, seed))} //nolint:gosec // the order of the rounds, printed with its seed, not a secret
			raw := io.Discard
			if rawFile != "" {
				f, err := os.Create(rawFile)
				if err != nil {
					return err
				}
				defer f.Close()
				raw = f
				fmt.Fprintf(raw, "# kip-dev bench %s, seed %d: one sample per line\n# images\trun\tcell\tseconds\n", strings.Join(os.Args[2:], " "), seed)
			}
			b.registry, b.push = e.Registry, e.RegistryPush
			if registry == "remote" {
				if e.RemoteRegistry == "" {
					return fmt.Errorf("--registry remote: the local cluster has no remote-like registry; bring it up again (make cluster-down cluster-up)")
				}
				b.registry, b.push = e.RemoteRegistry, e.RemoteRegistryPush
			}
			for i, k := range counts {
				w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
				if err := b.measure(cmd.Context(), w, raw, k, i == 0); err != nil {
					return err
				}
				if err := w.Flush(); err != nil {
					return err
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&clusterDir, "cluster-dir", localcluster.DefaultDir, "the local cluster's directory")
	cmd.Flags().IntSliceVar(&counts, "images", []int{10, 50}, "K: images per measurement, one table each")
	cmd.Flags().Int64Var(&sizeMB, "size-mb", 10, "S: size of each image in MB")
	cmd.Flags().IntVar(&layers, "layers", 2, "layers per image")
	defaultParallelism, _ := strconv.Atoi(config.Defaults[config.KeyPullParallelism])
	cmd.Flags().IntVar(&parallelism, "parallelism", defaultParallelism, "agent mode's PULL_PARALLELISM")
	cmd.Flags().IntSliceVar(&sweep, "sweep", []int{1, 4, 8, 16}, "the parallelism of each straight CRI measurement, besides all at once")
	cmd.Flags().StringVar(&registry, "registry", "remote", "remote (like a remote registry) or local (loopback speed)")
	cmd.Flags().StringVar(&kipTag, "kip-image", "kip:dev", "the puller image in the local registry (make image)")
	cmd.Flags().IntVar(&runs, "runs", 5, "samples of each cell, taken in rounds, each round in a new random order")
	cmd.Flags().Uint64Var(&seed, "seed", uint64(time.Now().UnixNano()), "the seed of the rounds' orders")
	cmd.Flags().StringVar(&rawFile, "raw", "", "write every sample to this file (tab-separated)")
	return cmd
}

// benchCPURequest is daemonset mode's CACHING_CPU_REQUEST in the benchmark.
const benchCPURequest = "10m"

// bench is one benchmark run on the local cluster.
type bench struct {
	e              *localcluster.Env
	registry, push string // as nodes name the images, and as this host pushes them
	sizeMB         int64
	layers         int
	parallelism    int
	sweep          []int
	kipImage, run  string
	runs           int
	rand           *rand.Rand
}

func (b *bench) log(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
}

// images pushes n new images of the set and returns their references.
func (b *bench) images(set string, n int) ([]string, error) {
	sleep, err := imagebuild.FileFromDisk("bin/kip-sleep", "/bin/sleep", 0o755)
	if err != nil {
		return nil, err
	}
	var refs []string
	for i := 1; i <= n; i++ {
		img, err := imagebuild.SampleImage(b.sizeMB<<20, b.layers, sleep)
		if err != nil {
			return nil, err
		}
		repoTag := fmt.Sprintf("bench/%s%d:%s", set, i, b.run)
		if _, err := (&pushFlags{registry: b.push}).push(repoTag, img); err != nil {
			return nil, err
		}
		refs = append(refs, b.registry+"/"+repoTag)
	}
	return refs, nil
}

func entries(refs []string) string {
	var out []string
	for i, ref := range refs {
		out = append(out, fmt.Sprintf("img%d=%s", i+1, ref))
	}
	return strings.Join(out, ";")
}

// cell is one measurement of the table, taken runs times.
type cell struct {
	key, label string
	// run takes one sample, from a state in which no node holds the cell's
	// images (reset brings that state back after it).
	run   func(ctx context.Context) (time.Duration, error)
	reset func(ctx context.Context) error
}

// measure takes every cell for k images runs times, interleaved (each
// round in a new random order, so that drift and order effects spread over
// every cell), and writes a table of medians and spreads, and every sample
// to raw.
func (b *bench) measure(ctx context.Context, w, raw io.Writer, k int, workspace bool) error {
	e := b.e
	// A set of images for each cell: each sample pulls them to nodes that
	// hold none of them (reset removes them from every node after it).
	names := []string{"daemonset", "agent"}
	for _, p := range b.sweep {
		names = append(names, fmt.Sprintf("cri%d", p))
	}
	names = append(names, "all")
	b.log("pushing %d sets of %d images of %d MB to %s", len(names), k, b.sizeMB, b.registry)
	sets := map[string][]string{}
	for _, set := range names {
		var err error
		if sets[set], err = b.images(fmt.Sprintf("k%d%s", k, set), k); err != nil {
			return err
		}
	}
	memory := map[string][]int64{} // "mode node" -> working sets
	var cells []cell
	for _, mode := range []string{config.ModeDaemonSet, config.ModeAgent} {
		refs := sets[mode]
		label := "daemonset mode: kubectl apply ConfigMap -> every node holds every image"
		if mode == config.ModeAgent {
			label = fmt.Sprintf("agent mode (PULL_PARALLELISM=%d): kubectl apply ConfigMap -> every node holds every image", b.parallelism)
		}
		cells = append(cells, cell{key: mode, label: label,
			run: func(ctx context.Context) (time.Duration, error) {
				took, mem, err := b.measureMode(ctx, k, mode, refs)
				for node, m := range mem {
					memory[mode+" "+node] = append(memory[mode+" "+node], m)
				}
				return took, err
			},
			reset: func(ctx context.Context) error { return removeEverywhere(ctx, e, refs) },
		})
	}
	for _, p := range b.sweep {
		refs := sets[fmt.Sprintf("cri%d", p)]
		cells = append(cells, cell{key: fmt.Sprintf("cri%d", p), label: fmt.Sprintf("CRI PullImage, %d at a time, every node", p),
			run:   func(ctx context.Context) (time.Duration, error) { return pullOnEveryNode(ctx, e, refs, p) },
			reset: func(ctx context.Context) error { return removeEverywhere(ctx, e, refs) },
		})
	}
	cells = append(cells, cell{key: "all", label: fmt.Sprintf("CRI PullImage, all %d at once, every node", k),
		run:   func(ctx context.Context) (time.Duration, error) { return pullOnEveryNode(ctx, e, sets["all"], k) },
		reset: func(ctx context.Context) error { return removeEverywhere(ctx, e, sets["all"]) },
	})
	if workspace {
		ws, err := b.images("workspace", 1)
		if err != nil {
			return err
		}
		onNode1 := &localcluster.Env{Nodes: []string{"node1"}, Dir: e.Dir}
		cells = append(cells,
			cell{key: "warm", label: "workspace pod start, cached image",
				run: func(ctx context.Context) (time.Duration, error) {
					if _, err := pullOnEveryNode(ctx, onNode1, ws, 1); err != nil {
						return 0, err
					}
					return e.StartWorkspace("bench-warm", "node1", ws[0])
				},
				reset: func(ctx context.Context) error { return removeWorkspace(ctx, e, "bench-warm", ws) },
			},
			cell{key: "cold", label: "workspace pod start, uncached image",
				run:   func(context.Context) (time.Duration, error) { return e.StartWorkspace("bench-cold", "node1", ws[0]) },
				reset: func(ctx context.Context) error { return removeWorkspace(ctx, e, "bench-cold", ws) },
			})
	}

	samples := map[string][]time.Duration{}
	for _, c := range cells {
		if err := c.reset(ctx); err != nil {
			return err
		}
	}
	for round := 1; round <= b.runs; round++ {
		for _, i := range b.rand.Perm(len(cells)) {
			c := cells[i]
			b.log("%d images, run %d of %d: %s", k, round, b.runs, c.key)
			d, err := c.run(ctx)
			if err != nil {
				return fmt.Errorf("%s, run %d: %w", c.key, round, err)
			}
			if err := c.reset(ctx); err != nil {
				return fmt.Errorf("%s, run %d: reset: %w", c.key, round, err)
			}
			samples[c.key] = append(samples[c.key], d)
			fmt.Fprintf(raw, "%d\t%d\t%s\t%.3f\n", k, round, c.key, d.Seconds())
		}
	}

	floorKey := ""
	for _, c := range cells {
		if strings.HasPrefix(c.key, "cri") || c.key == "all" {
			if floorKey == "" || median(samples[c.key]) < median(samples[floorKey]) {
				floorKey = c.key
			}
		}
	}
	floor := median(samples[floorKey])
	fmt.Fprintf(w, "\n%d images of %d MB, %d nodes, registry %s, daemonset mode with CACHING_CPU_REQUEST=%s; %d runs per cell, interleaved\n", k, b.sizeMB, len(e.Nodes), b.registry, benchCPURequest, b.runs)
	fmt.Fprintln(w, "MEASUREMENT\tMEDIAN\tMIN - MAX\tRATIO OF MEDIANS")
	for _, c := range cells {
		d := samples[c.key]
		var note string
		switch c.key {
		case config.ModeDaemonSet, config.ModeAgent:
			note = fmt.Sprintf("%.2fx the CRI parallel floor", ratio(median(d), floor))
		case floorKey:
			note = "1.00x (the floor: the fastest median)"
		case "cold":
			note = fmt.Sprintf("%.1fx the cached start", ratio(median(d), median(samples["warm"])))
		case "warm":
		default:
			note = fmt.Sprintf("%.2fx", ratio(median(d), floor))
		}
		fmt.Fprintf(w, "%s\t%v\t%v - %v\t%s\n", c.label, round(median(d)), round(slices.Min(d)), round(slices.Max(d)), note)
	}
	cfg, _, err := config.Parse(map[string]string{config.KeyImages: entries(sets["daemonset"])})
	if err != nil {
		return err
	}
	sleepingReq, agentReq := cfg.PerNode().MemoryRequest, daemonset.AgentMemoryRequest
	for _, node := range e.Nodes {
		fmt.Fprintf(w, "memory on %s, daemonset mode: requested / working set, median\t%s / %.1fMi\t\t\n", node, sleepingReq.String(), float64(median(memory[config.ModeDaemonSet+" "+node]))/(1<<20))
		fmt.Fprintf(w, "memory on %s, agent mode: requested / working set, median\t%s / %.1fMi\t\t\n", node, agentReq.String(), float64(median(memory[config.ModeAgent+" "+node]))/(1<<20))
	}
	return nil
}

// median is the middle sample (the mean of the two middle ones for an even
// count); zero for none.
func median[T time.Duration | int64](xs []T) T {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// measureMode installs the puller in mode in a namespace of its own, idle,
// applies the ConfigMap with refs, and returns the time until every node
// holds every image and each node's working set of the mode's containers;
// then removes the namespace with its pods, so that the images are unused.
func (b *bench) measureMode(ctx context.Context, k int, mode string, refs []string) (time.Duration, map[string]int64, error) {
	e := b.e
	ns := fmt.Sprintf("kip-bench-%d-%s", k, mode)
	params := map[string]string{"NAMESPACE": ns, "CACHING_MODE": mode,
		"CRI_SOCKET": e.SocketPattern(), "PULL_PARALLELISM": strconv.Itoa(b.parallelism),
		// 50 images at the default .05 CPU each ask 2.5 CPU: more than a
		// node of this VM has, and the pods would not be scheduled.
		"CACHING_CPU_REQUEST": benchCPURequest}
	if err := b.install(ns, params); err != nil {
		return 0, nil, err
	}
	defer func() { _ = kubectl(e, "", "delete", "namespace", ns, "--wait=true", "--timeout=5m") }()
	params["IMAGES"] = entries(refs)
	manifest, err := processTemplate("configmap.yaml", params)
	if err != nil {
		return 0, nil, err
	}
	start := time.Now()
	if err := kubectl(e, manifest, "apply", "-n", ns, "-f", "-"); err != nil {
		return 0, nil, err
	}
	if err := e.WaitCached(ctx, e.Nodes, refs, 30*time.Minute); err != nil {
		return 0, nil, err
	}
	took := time.Since(start)
	ds := "daemonset/" + config.ActiveDaemonSetName("kubernetes-image-puller", mode)
	if err := kubectl(e, "", "rollout", "status", "-n", ns, ds, "--timeout=10m"); err != nil {
		return 0, nil, err
	}
	containers, perNode := func(c string) bool { return strings.HasPrefix(c, "img") }, k
	if mode == config.ModeAgent {
		containers, perNode = func(c string) bool { return c == daemonset.AgentContainer }, 1
	}
	mem, err := workingSet(ctx, e, ns, containers, perNode)
	return took, mem, err
}

// removeWorkspace deletes the workspace pod name, waiting until it is gone,
// then its image from every node.
func removeWorkspace(ctx context.Context, e *localcluster.Env, name string, refs []string) error {
	if err := kubectl(e, "", "delete", "pod", "-n", "default", name, "--ignore-not-found", "--wait=true", "--timeout=2m"); err != nil {
		return err
	}
	return removeEverywhere(ctx, e, refs)
}

// removeEverywhere removes refs from every node's runtime, those a node
// holds; the containers that used them must be gone.
func removeEverywhere(ctx context.Context, e *localcluster.Env, refs []string) error {
	for _, node := range e.Nodes {
		c, err := cri.Dial(e.Socket(node))
		if err != nil {
			return err
		}
		held, err := c.ImageRefs(ctx)
		if err != nil {
			_ = c.Close()
			return err
		}
		var there []string
		for _, ref := range refs {
			if cri.Has(held, ref) {
				there = append(there, ref)
			}
		}
		err = c.RemoveImages(ctx, there)
		_ = c.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", node, err)
		}
	}
	return nil
}

// install installs the puller with the templates in a new privileged
// namespace (agent mode needs one), configured by params, idle with a
// placeholder image.
func (b *bench) install(ns string, params map[string]string) error {
	e := b.e
	_ = kubectl(e, "", "delete", "namespace", ns, "--ignore-not-found", "--wait=true")
	if err := kubectl(e, "", "create", "namespace", ns); err != nil {
		return err
	}
	if err := kubectl(e, "", "label", "namespace", ns, "pod-security.kubernetes.io/enforce=privileged", privilege.LabelAgentMode+"="+privilege.Allowed); err != nil {
		return err
	}
	placeholder := "placeholder=" + e.Registry + "/pause:3.10"
	repo, tag, _ := strings.Cut(b.kipImage, ":")
	for _, step := range []struct {
		file   string
		params map[string]string
	}{
		{"serviceaccount.yaml", map[string]string{"NAMESPACE": ns}},
		{"configmap.yaml", withImages(params, placeholder)},
		{"app.yaml", map[string]string{"IMAGE": e.Registry + "/" + repo, "IMAGE_TAG": tag, "CRI_SOCKET_ALLOW": e.SocketPattern()}},
	} {
		manifest, err := processTemplate(step.file, step.params)
		if err != nil {
			return err
		}
		if err := kubectl(e, manifest, "apply", "-n", ns, "-f", "-"); err != nil {
			return err
		}
	}
	ds := "daemonset/" + config.ActiveDaemonSetName("kubernetes-image-puller", params["CACHING_MODE"])
	if err := kubectl(e, "", "wait", "-n", ns, "--for=create", ds, "--timeout=5m"); err != nil {
		return err
	}
	return kubectl(e, "", "rollout", "status", "-n", ns, ds, "--timeout=5m")
}

// withImages is params with IMAGES set.
func withImages(params map[string]string, images string) map[string]string {
	out := map[string]string{"IMAGES": images}
	for k, v := range params {
		if k != "IMAGES" {
			out[k] = v
		}
	}
	return out
}

// processTemplate processes deploy/openshift/FILE as oc process does.
func processTemplate(file string, params map[string]string) (string, error) {
	data, err := os.ReadFile(filepath.Join("deploy", "openshift", file))
	if err != nil {
		return "", err
	}
	out, err := template.Render(data, params)
	return string(out), err
}

func round(d time.Duration) time.Duration { return d.Round(10 * time.Millisecond) }

func ratio(a, b time.Duration) float64 { return float64(a) / float64(b) }

// pullOnEveryNode pulls refs on every node at once, parallel at a time per
// node, and returns the wall time until the last node is done.
func pullOnEveryNode(ctx context.Context, e *localcluster.Env, refs []string, parallel int) (time.Duration, error) {
	var wg sync.WaitGroup
	errs := make(chan error, len(e.Nodes))
	start := time.Now()
	for _, node := range e.Nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := cri.Dial(e.Socket(node))
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			for _, r := range c.Pull(ctx, refs, parallel) {
				if r.Err != nil {
					errs <- fmt.Errorf("%s: %s: %w", node, r.Ref, r.Err)
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(errs)
	for err := range errs {
		return 0, err
	}
	return elapsed, nil
}

// workingSet sums, per node, the memory working set (what the kubelet
// evicts by, and kubectl top shows) of the containers of namespace ns that
// match picks, from each kubelet's summary API. It waits, for at most two
// minutes, until every node reports want of them.
func workingSet(ctx context.Context, e *localcluster.Env, ns string, match func(container string) bool, want int) (map[string]int64, error) {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		out, counted := map[string]int64{}, map[string]int{}
		for _, node := range e.Nodes {
			raw, err := e.RunKubectl("", "get", "--raw", "/api/v1/nodes/"+node+"/proxy/stats/summary")
			if err != nil {
				return nil, err
			}
			var summary struct {
				Pods []struct {
					PodRef     struct{ Namespace string }
					Containers []struct {
						Name   string
						Memory struct{ WorkingSetBytes *int64 }
					}
				}
			}
			if err := json.Unmarshal([]byte(raw), &summary); err != nil {
				return nil, fmt.Errorf("%s's stats summary: %w", node, err)
			}
			for _, p := range summary.Pods {
				if p.PodRef.Namespace != ns {
					continue
				}
				for _, c := range p.Containers {
					if match(c.Name) && c.Memory.WorkingSetBytes != nil {
						out[node] += *c.Memory.WorkingSetBytes
						counted[node]++
					}
				}
			}
		}
		complete := true
		for _, node := range e.Nodes {
			complete = complete && counted[node] >= want
		}
		if complete {
			return out, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("the kubelets report %v of the %d containers per node in %s", counted, want, ns)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
}

// kubectl runs kubectl on the local cluster, for its error only.
func kubectl(e *localcluster.Env, stdin string, args ...string) error {
	_, err := e.RunKubectl(stdin, args...)
	return err
}
