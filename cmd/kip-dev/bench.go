package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/kip-image-puller/kip/internal/config"
	"github.com/kip-image-puller/kip/internal/dev/cri"
	"github.com/kip-image-puller/kip/internal/dev/imagebuild"
	"github.com/kip-image-puller/kip/internal/dev/localcluster"
	"github.com/kip-image-puller/kip/internal/template"
)

func benchCmd() *cobra.Command {
	var clusterDir, kipTag string
	var count, layers int
	var sizeMB int64
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure the puller on the local cluster against straight CRI pulls, and print a table",
		Long: `Measure, in one run on the local cluster (make cluster-up), for K images
of S MB: the time from kubectl apply of the ConfigMap to every node holding
every image; the same number of images pulled straight through each node's
CRI one at a time and all at once (the floor); the memory the puller pods
request and use per node; and a workspace pod's start from a cached image
against an uncached one. Each measurement uses images no node holds yet.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			e, err := localcluster.Load(clusterDir)
			if err != nil {
				return err
			}
			return runBench(cmd.Context(), e, count, sizeMB, layers, kipTag)
		},
	}
	cmd.Flags().StringVar(&clusterDir, "cluster-dir", localcluster.DefaultDir, "the local cluster's directory")
	cmd.Flags().IntVar(&count, "images", 10, "K: images per measurement")
	cmd.Flags().Int64Var(&sizeMB, "size-mb", 60, "S: size of each image in MB")
	cmd.Flags().IntVar(&layers, "layers", 3, "layers per image")
	cmd.Flags().StringVar(&kipTag, "kip-image", "kip:dev", "the puller image in the local registry (make image)")
	return cmd
}

func runBench(ctx context.Context, e *localcluster.Env, k int, sizeMB int64, layers int, kipImage string) error {
	log := func(format string, args ...any) { fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...) }
	run := strconv.FormatInt(time.Now().Unix(), 36)
	sleep, err := imagebuild.FileFromDisk("bin/kip-sleep", "/bin/sleep", 0o755)
	if err != nil {
		return err
	}
	push := func(set string, n int) ([]string, error) {
		var refs []string
		for i := 1; i <= n; i++ {
			img, err := imagebuild.SampleImage(sizeMB<<20, layers, sleep)
			if err != nil {
				return nil, err
			}
			repoTag := fmt.Sprintf("bench/%s%d:%s", set, i, run)
			if _, err := (&pushFlags{registry: e.RegistryPush}).push(repoTag, img); err != nil {
				return nil, err
			}
			refs = append(refs, e.Registry+"/"+repoTag)
		}
		return refs, nil
	}
	log("pushing 3 sets of %d images of %d MB, and one more", k, sizeMB)
	var sets [3][]string
	for i, set := range []string{"puller", "serial", "parallel"} {
		if sets[i], err = push(set, k); err != nil {
			return err
		}
	}
	cold, err := push("cold", 1)
	if err != nil {
		return err
	}

	// The puller, installed by the templates, idle with a placeholder image.
	const ns = "kip-bench"
	_ = kubectl(e, "", "delete", "namespace", ns, "--ignore-not-found", "--wait=true")
	if err := kubectl(e, "", "create", "namespace", ns); err != nil {
		return err
	}
	defer func() { _ = kubectl(e, "", "delete", "namespace", ns, "--wait=false") }()
	process := func(file string, params map[string]string) (string, error) {
		data, err := os.ReadFile(filepath.Join("deploy", "openshift", file))
		if err != nil {
			return "", err
		}
		out, err := template.Render(data, params)
		return string(out), err
	}
	placeholder := "placeholder=" + e.Registry + "/pause:3.10"
	repo, tag, _ := strings.Cut(kipImage, ":")
	for _, step := range []struct {
		file   string
		params map[string]string
	}{
		{"serviceaccount.yaml", map[string]string{"NAMESPACE": ns}},
		{"configmap.yaml", map[string]string{"IMAGES": placeholder, "NAMESPACE": ns}},
		{"app.yaml", map[string]string{"IMAGE": e.Registry + "/" + repo, "IMAGE_TAG": tag}},
	} {
		manifest, err := process(step.file, step.params)
		if err != nil {
			return err
		}
		if err := kubectl(e, manifest, "apply", "-n", ns, "-f", "-"); err != nil {
			return err
		}
	}
	if err := kubectl(e, "", "wait", "-n", ns, "--for=create", "daemonset/kubernetes-image-puller", "--timeout=5m"); err != nil {
		return err
	}
	if err := kubectl(e, "", "rollout", "status", "-n", ns, "daemonset/kubernetes-image-puller", "--timeout=5m"); err != nil {
		return err
	}

	// 1. kubectl apply of the ConfigMap -> every node holds every image.
	var entries []string
	for i, ref := range sets[0] {
		entries = append(entries, fmt.Sprintf("img%d=%s", i+1, ref))
	}
	manifest, err := process("configmap.yaml", map[string]string{"IMAGES": strings.Join(entries, ";"), "NAMESPACE": ns})
	if err != nil {
		return err
	}
	log("puller: applying the ConfigMap with %d images", k)
	start := time.Now()
	if err := kubectl(e, manifest, "apply", "-n", ns, "-f", "-"); err != nil {
		return err
	}
	if err := e.WaitCached(ctx, e.Nodes, sets[0], 15*time.Minute); err != nil {
		return err
	}
	pullerTime := time.Since(start)
	if err := kubectl(e, "", "rollout", "status", "-n", ns, "daemonset/kubernetes-image-puller", "--timeout=5m"); err != nil {
		return err
	}

	// 2. The floor: the same number of images straight through each node's CRI, nodes at once.
	log("CRI: pulling one at a time")
	serial, err := pullOnEveryNode(ctx, e, sets[1], 1)
	if err != nil {
		return err
	}
	log("CRI: pulling all at once")
	parallel, err := pullOnEveryNode(ctx, e, sets[2], k)
	if err != nil {
		return err
	}

	// 3. Memory per node: what the puller pod requests, what its containers use.
	time.Sleep(2 * time.Second)
	cfg, _, err := config.Parse(map[string]string{config.KeyImages: strings.Join(entries, ";")})
	if err != nil {
		return err
	}
	req := cfg.PerNode().MemoryRequest
	rss, err := sleeperRSS(e)
	if err != nil {
		return err
	}

	// 4. A workspace pod on node1: cached image against uncached.
	log("workspace pods")
	warm, err := e.StartWorkspace("bench-warm", "node1", sets[0][0])
	if err != nil {
		return err
	}
	coldStart, err := e.StartWorkspace("bench-cold", "node1", cold[0])
	if err != nil {
		return err
	}

	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "%d images of %d MB, %d nodes\n", k, sizeMB, len(e.Nodes))
	fmt.Fprintln(w, "MEASUREMENT\tVALUE\tRATIO")
	fmt.Fprintf(w, "kubectl apply ConfigMap -> every node holds every image (puller)\t%v\t%.2fx the CRI parallel floor\n", round(pullerTime), ratio(pullerTime, parallel))
	fmt.Fprintf(w, "CRI PullImage, one at a time, every node\t%v\t%.2fx the parallel floor\n", round(serial), ratio(serial, parallel))
	fmt.Fprintf(w, "CRI PullImage, %d at a time, every node (floor)\t%v\t1.00x\n", k, round(parallel))
	for _, node := range e.Nodes {
		used := rss[node]
		fmt.Fprintf(w, "memory on %s: requested / used by the puller containers\t%s / %.1fMi\t%.1f%% of the request used\n",
			node, req.String(), float64(used)/(1<<20), 100*float64(used)/float64(req.Value()))
	}
	fmt.Fprintf(w, "workspace pod start, cached image\t%v\t\n", round(warm))
	fmt.Fprintf(w, "workspace pod start, uncached image\t%v\t%.1fx the cached start\n", round(coldStart), ratio(coldStart, warm))
	return w.Flush()
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

// sleeperRSS sums, per node, the resident memory of the puller's sleeping
// containers, found through their shim's CRI socket address.
func sleeperRSS(e *localcluster.Env) (map[string]int64, error) {
	procs, err := filepath.Glob("/proc/[0-9]*")
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for _, p := range procs {
		cmdline, err := os.ReadFile(filepath.Join(p, "cmdline"))
		if err != nil || !strings.HasPrefix(string(cmdline), "/kip/sleep\x00") {
			continue
		}
		node := nodeOfProcess(e, p)
		if node == "" {
			continue
		}
		status, err := os.ReadFile(filepath.Join(p, "status"))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(status), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				out[node] += kb << 10
			}
		}
	}
	return out, nil
}

// nodeOfProcess walks up to the containerd shim and reads which node's
// containerd it serves.
func nodeOfProcess(e *localcluster.Env, proc string) string {
	for i := 0; i < 5; i++ {
		status, err := os.ReadFile(filepath.Join(proc, "status")) //nolint:gosec // G703: a /proc path this tool built from PIDs it read
		if err != nil {
			return ""
		}
		ppid := ""
		for _, line := range strings.Split(string(status), "\n") {
			if strings.HasPrefix(line, "PPid:") {
				ppid = strings.TrimSpace(strings.TrimPrefix(line, "PPid:"))
			}
		}
		proc = "/proc/" + ppid
		cmdline, err := os.ReadFile(filepath.Join(proc, "cmdline")) //nolint:gosec // G703: a /proc path this tool built from PIDs it read
		if err != nil {
			return ""
		}
		if strings.Contains(string(cmdline), "containerd-shim") {
			for _, node := range e.Nodes {
				if strings.Contains(string(cmdline), e.Socket(node)) {
					return node
				}
			}
			return ""
		}
	}
	return ""
}

// kubectl runs kubectl on the local cluster, for its error only.
func kubectl(e *localcluster.Env, stdin string, args ...string) error {
	_, err := e.RunKubectl(stdin, args...)
	return err
}
