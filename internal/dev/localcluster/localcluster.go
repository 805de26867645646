// Package localcluster reads what hack/cluster.sh wrote about the local
// test cluster (kubeconfig, registries, nodes) and asks its nodes, through
// their CRI sockets, which images they hold. The end-to-end tests, the demo
// and the benchmark use it.
package localcluster

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/kip-image-puller/kip/internal/dev/cri"
)

// DefaultDir is where hack/cluster.sh keeps the cluster.
const DefaultDir = "/tmp/kip-cluster"

// Env is the local cluster as hack/cluster.sh describes it in DIR/env.
type Env struct {
	Dir, Kubeconfig, Kubectl string
	// Registries as images are named (reachable from nodes and pods), and
	// as this host pushes to them.
	Registry, RegistryPush         string
	AuthRegistry, AuthRegistryPush string
	AuthUser, AuthPassword         string
	// RemoteRegistry answers like a remote registry (first-byte latency,
	// a per-stream bandwidth cap), for benchmarks.
	RemoteRegistry, RemoteRegistryPush string
	Nodes                              []string
	// NetnsPath is the network namespace the cluster lives in; pod
	// addresses are reachable only from inside it.
	NetnsPath string
	// PinningNodes run containerd 2, which honours the pin label; the
	// others run Debian's containerd 1.6.20, which does not.
	PinningNodes []string
}

// Load reads DIR/env.
func Load(dir string) (*Env, error) {
	f, err := os.Open(filepath.Join(dir, "env"))
	if err != nil {
		return nil, fmt.Errorf("the local cluster is not up (make cluster-up): %w", err)
	}
	defer f.Close()
	kv := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(strings.TrimPrefix(sc.Text(), "export "), "="); ok {
			kv[k] = v
		}
	}
	e := &Env{
		Dir: dir, Kubeconfig: kv["KUBECONFIG"], Kubectl: filepath.Join(kv["KIP_KUBE_BIN"], "kubectl"),
		Registry: kv["KIP_REGISTRY"], RegistryPush: kv["KIP_REGISTRY_PUSH"],
		AuthRegistry: kv["KIP_AUTH_REGISTRY"], AuthRegistryPush: kv["KIP_AUTH_REGISTRY_PUSH"],
		AuthUser: kv["KIP_AUTH_REGISTRY_USER"], NetnsPath: kv["KIP_NETNS_PATH"],
		RemoteRegistry: kv["KIP_REMOTE_REGISTRY"], RemoteRegistryPush: kv["KIP_REMOTE_REGISTRY_PUSH"],
	}
	e.PinningNodes = strings.Fields(strings.Trim(kv["KIP_CONTAINERD2_NODES"], `"`))
	if pw, err := os.ReadFile(kv["KIP_AUTH_REGISTRY_PASSWORD_FILE"]); err == nil {
		e.AuthPassword = strings.TrimSpace(string(pw))
	}
	n, _ := strconv.Atoi(kv["KIP_NODES"])
	for i := 1; i <= n; i++ {
		e.Nodes = append(e.Nodes, fmt.Sprintf("node%d", i))
	}
	return e, nil
}

// Socket is the CRI socket of a node's containerd.
func (e *Env) Socket(node string) string {
	return filepath.Join(e.Dir, "sockets", node, "containerd.sock")
}

// SocketPattern is every node's CRI socket as agent mode's CRI_SOCKET
// names it: the node's name as a path component, expanded per node.
func (e *Env) SocketPattern() string {
	return e.Socket("$(NODE_NAME)")
}

// RunKubectl runs kubectl against the cluster, with stdin, and returns its output.
func (e *Env) RunKubectl(stdin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.Kubectl, append([]string{"--kubeconfig", e.Kubeconfig}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("kubectl %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// NodeImages asks each node's containerd which image references it holds.
func (e *Env) NodeImages(ctx context.Context) (map[string]map[string]bool, error) {
	out := map[string]map[string]bool{}
	for _, node := range e.Nodes {
		c, err := cri.Dial(e.Socket(node))
		if err != nil {
			return nil, err
		}
		refs, err := c.ImageRefs(ctx)
		c.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", node, err)
		}
		out[node] = refs
	}
	return out, nil
}

// Missing lists node:ref for each of refs that a node of nodes does not hold.
func Missing(held map[string]map[string]bool, nodes, refs []string) []string {
	var missing []string
	for _, node := range nodes {
		for _, ref := range refs {
			if !cri.Has(held[node], ref) {
				missing = append(missing, node+":"+ref)
			}
		}
	}
	return missing
}

// WaitCached waits until every node of nodes holds every ref.
func (e *Env) WaitCached(ctx context.Context, nodes, refs []string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		held, err := e.NodeImages(ctx)
		if err != nil {
			return err
		}
		missing := Missing(held, nodes, refs)
		if len(missing) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not cached within %v: %v", timeout, missing)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// WorkspacePod is a pod like a developer workspace, passing the restricted
// Pod Security Standard, running image on node.
func WorkspacePod(name, node, image string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: %s, namespace: default}
spec:
  nodeName: %s
  automountServiceAccountToken: false
  securityContext: {runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}}
  containers:
  - name: workspace
    image: %s
    command: [/bin/sleep, "3600"]
    securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}, readOnlyRootFilesystem: true}
`, name, node, image)
}

// StartWorkspace starts a workspace pod on node and returns the time from
// its creation until it is Ready; the pod is deleted afterwards.
func (e *Env) StartWorkspace(name, node, image string) (time.Duration, error) {
	_, _ = e.RunKubectl("", "delete", "pod", "-n", "default", name, "--ignore-not-found", "--wait=true")
	start := time.Now()
	if _, err := e.RunKubectl(WorkspacePod(name, node, image), "apply", "-f", "-"); err != nil {
		return 0, err
	}
	if _, err := e.RunKubectl("", "wait", "-n", "default", "--for=condition=Ready", "pod/"+name, "--timeout=5m"); err != nil {
		return 0, err
	}
	d := time.Since(start)
	_, _ = e.RunKubectl("", "delete", "pod", "-n", "default", name, "--wait=false")
	return d, nil
}
