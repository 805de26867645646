package main

import (
	"context"
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
	"github.com/kip-image-puller/kip/internal/template"
)

func benchCmd() *cobra.Command {
	var clusterDir, kipTag, registry string
	var counts []int
	var layers, parallelism int
	var sizeMB int64
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure both caching modes on the local cluster against straight CRI pulls, and print a table",
		Long: `Measure, in one run on the local cluster (make cluster-up), for each K of
--images and images of S MB, each set new to every node: the time from
kubectl apply of the ConfigMap to every node holding every image, in
daemonset mode and in agent mode; the same number of images pulled straight
through each node's CRI, one at a time, PULL_PARALLELISM at a time and all at
once (the floor); the memory each mode requests and uses per node; and a
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
			b := &bench{e: e, sizeMB: sizeMB, layers: layers, kipImage: kipTag, parallelism: parallelism, run: strconv.FormatInt(time.Now().Unix(), 36)}
			b.registry, b.push = e.Registry, e.RegistryPush
			if registry == "remote" {
				if e.RemoteRegistry == "" {
					return fmt.Errorf("--registry remote: the local cluster has no remote-like registry; bring it up again (make cluster-down cluster-up)")
				}
				b.registry, b.push = e.RemoteRegistry, e.RemoteRegistryPush
			}
			w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
			for i, k := range counts {
				if err := b.measure(cmd.Context(), w, k, i == 0); err != nil {
					return err
				}
			}
			return w.Flush()
		},
	}
	cmd.Flags().StringVar(&clusterDir, "cluster-dir", localcluster.DefaultDir, "the local cluster's directory")
	cmd.Flags().IntSliceVar(&counts, "images", []int{10, 50}, "K: images per measurement, one table each")
	cmd.Flags().Int64Var(&sizeMB, "size-mb", 10, "S: size of each image in MB")
	cmd.Flags().IntVar(&layers, "layers", 2, "layers per image")
	cmd.Flags().IntVar(&parallelism, "parallelism", 4, "agent mode's PULL_PARALLELISM")
	cmd.Flags().StringVar(&registry, "registry", "remote", "remote (like a remote registry) or local (loopback speed)")
	cmd.Flags().StringVar(&kipTag, "kip-image", "kip:dev", "the puller image in the local registry (make image)")
	return cmd
}

// bench is one benchmark run on the local cluster.
type bench struct {
	e              *localcluster.Env
	registry, push string // as nodes name the images, and as this host pushes them
	sizeMB         int64
	layers         int
	parallelism    int
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
	b.log("pushing 5 sets of %d images of %d MB to %s", k, b.sizeMB, b.registry)
	var sets [5][]string
	for i, set := range []string{"daemonset", "agent", "serial", "agentpar", "parallel"} {
		var err error
		if sets[i], err = b.images(fmt.Sprintf("k%d%s", k, set), k); err != nil {
			return err
		}
	}
	ns := fmt.Sprintf("kip-bench-%d", k)
	if err := b.install(ns); err != nil {
		return err
	}
	defer func() { _ = kubectl(e, "", "delete", "namespace", ns, "--wait=false") }()

	apply := func(mode string, refs []string) (time.Duration, error) {
		params := map[string]string{"IMAGES": entries(refs), "NAMESPACE": ns, "CACHING_MODE": mode,
			"CRI_SOCKET": e.SocketPattern(), "PULL_PARALLELISM": strconv.Itoa(b.parallelism)}
		manifest, err := processTemplate("configmap.yaml", params)
		if err != nil {
			return 0, err
		}
		b.log("%s mode: applying the ConfigMap with %d images", mode, k)
		start := time.Now()
		if err := kubectl(e, manifest, "apply", "-n", ns, "-f", "-"); err != nil {
			return 0, err
		}
		if err := e.WaitCached(ctx, e.Nodes, refs, 30*time.Minute); err != nil {
			return 0, err
		}
		took := time.Since(start)
		ds := "daemonset/" + config.ActiveDaemonSetName("kubernetes-image-puller", mode)
		return took, kubectl(e, "", "rollout", "status", "-n", ns, ds, "--timeout=10m")
	}
	sleeping, err := apply(config.ModeDaemonSet, sets[0])
	if err != nil {
		return err
	}
	time.Sleep(2 * time.Second)
	sleepingRSS, err := processRSS(e, func(cmdline string) bool { return strings.HasPrefix(cmdline, "/kip/sleep\x00") })
	if err != nil {
		return err
	}
	agentTime, err := apply(config.ModeAgent, sets[1])
	if err != nil {
		return err
	}
	time.Sleep(2 * time.Second)
	agentRSS, err := processRSS(e, func(cmdline string) bool { return strings.HasPrefix(cmdline, "/usr/bin/kip\x00agent\x00") })
	if err != nil {
		return err
	}

	b.log("CRI: pulling one at a time, %d at a time, all at once", b.parallelism)
	serial, err := pullOnEveryNode(ctx, e, sets[2], 1)
	if err != nil {
		return err
	}
	atP, err := pullOnEveryNode(ctx, e, sets[3], b.parallelism)
	if err != nil {
		return err
	}
	floor, err := pullOnEveryNode(ctx, e, sets[4], k)
	if err != nil {
		return err
	}

	cfg, _, err := config.Parse(map[string]string{config.KeyImages: entries(sets[0])})
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "\n%d images of %d MB, %d nodes, registry %s\n", k, b.sizeMB, len(e.Nodes), b.registry)
	fmt.Fprintln(w, "MEASUREMENT\tVALUE\tRATIO")
	fmt.Fprintf(w, "daemonset mode: kubectl apply ConfigMap -> every node holds every image\t%v\t%.2fx the CRI parallel floor\n", round(sleeping), ratio(sleeping, floor))
	fmt.Fprintf(w, "agent mode (PULL_PARALLELISM=%d): kubectl apply ConfigMap -> every node holds every image\t%v\t%.2fx the CRI parallel floor\n", b.parallelism, round(agentTime), ratio(agentTime, floor))
	fmt.Fprintf(w, "CRI PullImage, one at a time, every node\t%v\t%.2fx\n", round(serial), ratio(serial, floor))
	fmt.Fprintf(w, "CRI PullImage, %d at a time, every node\t%v\t%.2fx\n", b.parallelism, round(atP), ratio(atP, floor))
	fmt.Fprintf(w, "CRI PullImage, %d at a time, every node (floor)\t%v\t1.00x\n", k, round(floor))
	sleepingReq, agentReq := cfg.PerNode().MemoryRequest, daemonset.AgentMemoryRequest
	for _, node := range e.Nodes {
		fmt.Fprintf(w, "memory on %s, daemonset mode: requested / used\t%s / %.1fMi\t\n", node, sleepingReq.String(), float64(sleepingRSS[node])/(1<<20))
		fmt.Fprintf(w, "memory on %s, agent mode: requested / used\t%s / %.1fMi\t\n", node, agentReq.String(), float64(agentRSS[node])/(1<<20))
	}
	if workspace {
		cold, err := b.images("cold", 1)
		if err != nil {
			return err
		}
		b.log("workspace pods")
		warm, err := e.StartWorkspace("bench-warm", "node1", sets[1][0])
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
// namespace (agent mode needs one), idle with a placeholder image.
func (b *bench) install(ns string) error {
	e := b.e
	_ = kubectl(e, "", "delete", "namespace", ns, "--ignore-not-found", "--wait=true")
	if err := kubectl(e, "", "create", "namespace", ns); err != nil {
		return err
	}
	if err := kubectl(e, "", "label", "namespace", ns, "pod-security.kubernetes.io/enforce=privileged"); err != nil {
		return err
	}
	placeholder := "placeholder=" + e.Registry + "/pause:3.10"
	repo, tag, _ := strings.Cut(b.kipImage, ":")
	for _, step := range []struct {
		file   string
		params map[string]string
	}{
		{"serviceaccount.yaml", map[string]string{"NAMESPACE": ns}},
		{"configmap.yaml", map[string]string{"IMAGES": placeholder, "NAMESPACE": ns}},
		{"app.yaml", map[string]string{"IMAGE": e.Registry + "/" + repo, "IMAGE_TAG": tag}},
	} {
		manifest, err := processTemplate(step.file, step.params)
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
	return kubectl(e, "", "rollout", "status", "-n", ns, "daemonset/kubernetes-image-puller", "--timeout=5m")
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

// processRSS sums, per node, the resident memory of the processes whose
// command line match picks, found under their node's containerd shim.
func processRSS(e *localcluster.Env, match func(cmdline string) bool) (map[string]int64, error) {
	procs, err := filepath.Glob("/proc/[0-9]*")
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for _, p := range procs {
		cmdline, err := os.ReadFile(filepath.Join(p, "cmdline"))
		if err != nil || !match(string(cmdline)) {
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
