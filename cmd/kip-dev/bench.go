package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/kip-image-puller/kip/internal/config"
	"github.com/kip-image-puller/kip/internal/cri"
	"github.com/kip-image-puller/kip/internal/imagebuild"
	"github.com/kip-image-puller/kip/internal/template"
	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"
)

// benchEnv is what hack/cluster.sh wrote to its env file.
type benchEnv struct {
	dir, kubeconfig, kubectl, registry, registryPush string
	nodes                                            []string
}

func readClusterEnv(dir string) (benchEnv, error) {
	f, err := os.Open(filepath.Join(dir, "env"))
	if err != nil {
		return benchEnv{}, fmt.Errorf("the local cluster is not up (make cluster-up): %w", err)
	}
	defer f.Close()
	kv := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(strings.TrimPrefix(sc.Text(), "export "), "="); ok {
			kv[k] = v
		}
	}
	e := benchEnv{dir: dir, kubeconfig: kv["KUBECONFIG"], kubectl: filepath.Join(kv["KIP_KUBE_BIN"], "kubectl"),
		registry: kv["KIP_REGISTRY"], registryPush: kv["KIP_REGISTRY_PUSH"]}
	n, _ := strconv.Atoi(kv["KIP_NODES"])
	for i := 1; i <= n; i++ {
		e.nodes = append(e.nodes, fmt.Sprintf("node%d", i))
	}
	return e, nil
}

func (e benchEnv) kubectlRun(stdin string, args ...string) error {
	cmd := exec.Command(e.kubectl, append([]string{"--kubeconfig", e.kubeconfig}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

func (e benchEnv) socket(node string) string {
	return filepath.Join(e.dir, "nodes", node, "containerd.sock")
}

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
			e, err := readClusterEnv(clusterDir)
			if err != nil {
				return err
			}
			return runBench(cmd.Context(), e, count, sizeMB, layers, kipTag)
		},
	}
	cmd.Flags().StringVar(&clusterDir, "cluster-dir", "/tmp/kip-cluster", "the local cluster's directory")
	cmd.Flags().IntVar(&count, "images", 10, "K: images per measurement")
	cmd.Flags().Int64Var(&sizeMB, "size-mb", 60, "S: size of each image in MB")
	cmd.Flags().IntVar(&layers, "layers", 3, "layers per image")
	cmd.Flags().StringVar(&kipTag, "kip-image", "kip:dev", "the puller image in the local registry (make image)")
	return cmd
}

func runBench(ctx context.Context, e benchEnv, k int, sizeMB int64, layers int, kipImage string) error {
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
			ref, err := name.ParseReference(e.registryPush + "/" + repoTag)
			if err != nil {
				return nil, err
			}
			if err := remote.Write(ref, img, remote.WithAuth(authn.Anonymous)); err != nil {
				return nil, err
			}
			refs = append(refs, e.registry+"/"+repoTag)
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
	_ = e.kubectlRun("", "delete", "namespace", ns, "--ignore-not-found", "--wait=true")
	if err := e.kubectlRun("", "create", "namespace", ns); err != nil {
		return err
	}
	defer func() { _ = e.kubectlRun("", "delete", "namespace", ns, "--wait=false") }()
	process := func(file string, params map[string]string) (string, error) {
		data, err := os.ReadFile(filepath.Join("deploy", "openshift", file))
		if err != nil {
			return "", err
		}
		t, err := template.Parse(data)
		if err != nil {
			return "", err
		}
		objs, err := t.Process(params)
		if err != nil {
			return "", err
		}
		out, err := yaml.Marshal(template.List(objs))
		return string(out), err
	}
	placeholder := "placeholder=" + e.registry + "/pause:3.10"
	repo, tag, _ := strings.Cut(kipImage, ":")
	for _, step := range []struct {
		file   string
		params map[string]string
	}{
		{"serviceaccount.yaml", nil},
		{"configmap.yaml", map[string]string{"IMAGES": placeholder, "NAMESPACE": ns}},
		{"app.yaml", map[string]string{"IMAGE": e.registry + "/" + repo, "IMAGE_TAG": tag}},
	} {
		manifest, err := process(step.file, step.params)
		if err != nil {
			return err
		}
		if err := e.kubectlRun(manifest, "apply", "-n", ns, "-f", "-"); err != nil {
			return err
		}
	}
	if err := e.kubectlRun("", "wait", "-n", ns, "--for=create", "daemonset/kubernetes-image-puller", "--timeout=5m"); err != nil {
		return err
	}
	if err := e.kubectlRun("", "rollout", "status", "-n", ns, "daemonset/kubernetes-image-puller", "--timeout=5m"); err != nil {
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
	if err := e.kubectlRun(manifest, "apply", "-n", ns, "-f", "-"); err != nil {
		return err
	}
	if err := waitAllCached(ctx, e, sets[0], 15*time.Minute); err != nil {
		return err
	}
	pullerTime := time.Since(start)
	if err := e.kubectlRun("", "rollout", "status", "-n", ns, "daemonset/kubernetes-image-puller", "--timeout=5m"); err != nil {
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
	warm, err := workspaceStart(e, "bench-warm", sets[0][0])
	if err != nil {
		return err
	}
	coldStart, err := workspaceStart(e, "bench-cold", cold[0])
	if err != nil {
		return err
	}

	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "%d images of %d MB, %d nodes\n", k, sizeMB, len(e.nodes))
	fmt.Fprintln(w, "MEASUREMENT\tVALUE\tRATIO")
	fmt.Fprintf(w, "kubectl apply ConfigMap -> every node holds every image (puller)\t%v\t%.2fx the CRI parallel floor\n", round(pullerTime), ratio(pullerTime, parallel))
	fmt.Fprintf(w, "CRI PullImage, one at a time, every node\t%v\t%.2fx the parallel floor\n", round(serial), ratio(serial, parallel))
	fmt.Fprintf(w, "CRI PullImage, %d at a time, every node (floor)\t%v\t1.00x\n", k, round(parallel))
	for _, node := range e.nodes {
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

func waitAllCached(ctx context.Context, e benchEnv, refs []string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		all := true
		for _, node := range e.nodes {
			c, err := cri.Dial(e.socket(node))
			if err != nil {
				return err
			}
			held, err := c.ImageRefs(ctx)
			c.Close()
			if err != nil {
				return err
			}
			for _, r := range refs {
				if !cri.Has(held, r) {
					all = false
				}
			}
		}
		if all {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("images not on every node within %v", timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// pullOnEveryNode pulls refs on every node at once, parallel at a time per
// node, and returns the wall time until the last node is done.
func pullOnEveryNode(ctx context.Context, e benchEnv, refs []string, parallel int) (time.Duration, error) {
	var wg sync.WaitGroup
	errs := make(chan error, len(e.nodes))
	start := time.Now()
	for _, node := range e.nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := cri.Dial(e.socket(node))
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
func sleeperRSS(e benchEnv) (map[string]int64, error) {
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
func nodeOfProcess(e benchEnv, proc string) string {
	for i := 0; i < 5; i++ {
		status, err := os.ReadFile(filepath.Join(proc, "status"))
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
		cmdline, err := os.ReadFile(filepath.Join(proc, "cmdline"))
		if err != nil {
			return ""
		}
		if strings.Contains(string(cmdline), "containerd-shim") {
			for _, node := range e.nodes {
				if strings.Contains(string(cmdline), e.socket(node)) {
					return node
				}
			}
			return ""
		}
	}
	return ""
}

func workspaceStart(e benchEnv, podName, image string) (time.Duration, error) {
	pod := fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: %s, namespace: default}
spec:
  nodeName: node1
  automountServiceAccountToken: false
  securityContext: {runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}}
  containers:
  - name: workspace
    image: %s
    command: [/bin/sleep, "3600"]
    securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}, readOnlyRootFilesystem: true}
`, podName, image)
	_ = e.kubectlRun("", "delete", "pod", "-n", "default", podName, "--ignore-not-found", "--wait=true")
	start := time.Now()
	if err := e.kubectlRun(pod, "apply", "-f", "-"); err != nil {
		return 0, err
	}
	if err := e.kubectlRun("", "wait", "-n", "default", "--for=condition=Ready", "pod/"+podName, "--timeout=5m"); err != nil {
		return 0, err
	}
	d := time.Since(start)
	_ = e.kubectlRun("", "delete", "pod", "-n", "default", podName, "--wait=false")
	return d, nil
}
