package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
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
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure both caching modes on the local cluster against straight CRI pulls, and print a table",
		Long: `Measure, in one run on the local cluster (make cluster-up), for each K of
--images and images of S MB, each set new to every node: the time from
kubectl apply of the ConfigMap to every node holding every image, in
daemonset mode and in agent mode; the same number of images pulled straight
through each node's CRI at each --sweep parallelism and all at once, the
fastest of which is the CRI parallel floor (on a host bound by CPU, all at
once is not the fastest) and what PULL_PARALLELISM's default is chosen from;
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
			b := &bench{e: e, sizeMB: sizeMB, layers: layers, kipImage: kipTag, parallelism: parallelism, sweep: sweep, run: strconv.FormatInt(time.Now().Unix(), 36)}
			b.registry, b.push = e.Registry, e.RegistryPush
			if registry == "remote" {
				if e.RemoteRegistry == "" {
					return fmt.Errorf("--registry remote: the local cluster has no remote-like registry; bring it up again (make cluster-down cluster-up)")
				}
				b.registry, b.push = e.RemoteRegistry, e.RemoteRegistryPush
			}
			for i, k := range counts {
				w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
				if err := b.measure(cmd.Context(), w, k, i == 0); err != nil {
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

// measure runs every measurement for k images and writes its table.
func (b *bench) measure(ctx context.Context, w io.Writer, k int, workspace bool) error {
	e := b.e
	// A new set of images for each measurement: each one pulls to nodes
	// that hold none of them.
	names := []string{"daemonset", "agent", "all"}
	for _, p := range b.sweep {
		names = append(names, fmt.Sprintf("cri%d", p))
	}
	b.log("pushing %d sets of %d images of %d MB to %s", len(names), k, b.sizeMB, b.registry)
	sets := map[string][]string{}
	for _, set := range names {
		var err error
		if sets[set], err = b.images(fmt.Sprintf("k%d%s", k, set), k); err != nil {
			return err
		}
	}
	// Each mode in a namespace of its own, installed idle, then removed
	// with its pods: the other mode's containers cost the nodes nothing
	// while one is measured.
	measureMode := func(mode string, refs []string, containers func(string) bool, perNode int) (time.Duration, map[string]int64, error) {
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
		b.log("%s mode: applying the ConfigMap with %d images", mode, k)
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
		mem, err := workingSet(ctx, e, ns, containers, perNode)
		return took, mem, err
	}
	sleeping, sleepingMem, err := measureMode(config.ModeDaemonSet, sets["daemonset"], func(c string) bool { return strings.HasPrefix(c, "img") }, k)
	if err != nil {
		return err
	}
	agentTime, agentMem, err := measureMode(config.ModeAgent, sets["agent"], func(c string) bool { return c == daemonset.AgentContainer }, 1)
	if err != nil {
		return err
	}

	b.log("CRI: pulling %v at a time, then all at once", b.sweep)
	atP := map[int]time.Duration{}
	for _, p := range b.sweep {
		if atP[p], err = pullOnEveryNode(ctx, e, sets[fmt.Sprintf("cri%d", p)], p); err != nil {
			return err
		}
	}
	all, err := pullOnEveryNode(ctx, e, sets["all"], k)
	if err != nil {
		return err
	}
	floor := all
	for _, d := range atP {
		floor = min(floor, d)
	}

	cfg, _, err := config.Parse(map[string]string{config.KeyImages: entries(sets["daemonset"])})
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "\n%d images of %d MB, %d nodes, registry %s, daemonset mode with CACHING_CPU_REQUEST=%s\n", k, b.sizeMB, len(e.Nodes), b.registry, benchCPURequest)
	fmt.Fprintln(w, "MEASUREMENT\tVALUE\tRATIO")
	fmt.Fprintf(w, "daemonset mode: kubectl apply ConfigMap -> every node holds every image\t%v\t%.2fx the CRI parallel floor\n", round(sleeping), ratio(sleeping, floor))
	fmt.Fprintf(w, "agent mode (PULL_PARALLELISM=%d): kubectl apply ConfigMap -> every node holds every image\t%v\t%.2fx the CRI parallel floor\n", b.parallelism, round(agentTime), ratio(agentTime, floor))
	mark := func(d time.Duration) string {
		if d == floor {
			return " (the floor: the fastest)"
		}
		return ""
	}
	for _, p := range b.sweep {
		fmt.Fprintf(w, "CRI PullImage, %d at a time, every node%s\t%v\t%.2fx\n", p, mark(atP[p]), round(atP[p]), ratio(atP[p], floor))
	}
	fmt.Fprintf(w, "CRI PullImage, all %d at once, every node%s\t%v\t%.2fx\n", k, mark(all), round(all), ratio(all, floor))
	sleepingReq, agentReq := cfg.PerNode().MemoryRequest, daemonset.AgentMemoryRequest
	for _, node := range e.Nodes {
		fmt.Fprintf(w, "memory on %s, daemonset mode: requested / working set\t%s / %.1fMi\t\n", node, sleepingReq.String(), float64(sleepingMem[node])/(1<<20))
		fmt.Fprintf(w, "memory on %s, agent mode: requested / working set\t%s / %.1fMi\t\n", node, agentReq.String(), float64(agentMem[node])/(1<<20))
	}
	if workspace {
		cold, err := b.images("cold", 1)
		if err != nil {
			return err
		}
		b.log("workspace pods")
		warm, err := e.StartWorkspace("bench-warm", "node1", sets["agent"][0])
		if err != nil {
			return err
		}
		coldStart, err := e.StartWorkspace("bench-cold", "node1", cold[0])
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "workspace pod start, cached image\t%v\t\n", round(warm))
		fmt.Fprintf(w, "workspace pod start, uncached image\t%v\t%.1fx the cached start\n", round(coldStart), ratio(coldStart, warm))
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
