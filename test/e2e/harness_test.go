//go:build e2e

// Package e2e tests the puller on a real multi-node local cluster (one
// containerd and kubelet per node, hack/cluster.sh) with real registries,
// installed the way users install it, and checks what a user checks: pods
// per node, and images in each node's own containerd store.
package e2e

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/google/go-containerregistry/pkg/authn"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kip-image-puller/kip/deploy"
	"github.com/kip-image-puller/kip/internal/dev/cri"
	"github.com/kip-image-puller/kip/internal/dev/imagebuild"
	"github.com/kip-image-puller/kip/internal/dev/localcluster"
	"github.com/kip-image-puller/kip/internal/dev/netns"
	"github.com/kip-image-puller/kip/internal/dev/poll"
	"github.com/kip-image-puller/kip/internal/dev/registrytest"
	"github.com/kip-image-puller/kip/internal/privilege"
	"github.com/kip-image-puller/kip/internal/template"
)

// cluster is the local cluster the tests run on.
var cluster struct {
	*localcluster.Env
	kipRepo, kipTag string // the puller image, as nodes name it
	c               client.Client
	root            string // the repository
}

func TestMain(m *testing.M) {
	ctrl.SetLogger(logr.Discard())
	os.Exit(run(m))
}

func run(m *testing.M) (code int) {
	root, err := filepath.Abs("../..")
	if err != nil {
		return fail(err)
	}
	cluster.root = root
	if os.Getenv("KIP_E2E_REUSE") == "" {
		// A fresh cluster: nothing cached from an earlier run.
		if err := sh(root, "hack/cluster.sh", "down"); err != nil {
			return fail(err)
		}
	}
	// The cluster lives in a network namespace of its own: this host's
	// interfaces and addresses are the same before, during and after it.
	hostBefore, err := hostInterfaces()
	if err != nil {
		return fail(err)
	}
	// One node on containerd 2 (which pins images), the others on Debian's
	// containerd 1.6.20 (which cannot): agent mode's tests cover both.
	if os.Getenv("CONTAINERD2_NODES") == "" {
		if err := os.Setenv("CONTAINERD2_NODES", "3"); err != nil {
			return fail(err)
		}
	}
	// Every node keeps its images on a filesystem of its own, where the
	// fault tests make the kubelet's image GC run (gc_test.go).
	if os.Getenv("NODE_IMAGEFS_SIZE") == "" {
		if err := os.Setenv("NODE_IMAGEFS_SIZE", "8G"); err != nil {
			return fail(err)
		}
	}
	if err := sh(root, "hack/cluster.sh", "up", "3"); err != nil {
		return fail(err)
	}
	if err := sameHostInterfaces(hostBefore, "up"); err != nil {
		return fail(err)
	}
	if os.Getenv("KIP_E2E_KEEP") == "" {
		defer func() {
			if err := sh(root, "hack/cluster.sh", "down"); err != nil {
				fmt.Fprintln(os.Stderr, "cluster down:", err)
			}
			if err := sameHostInterfaces(hostBefore, "down"); err != nil {
				code = fail(err)
			}
		}()
	}
	env, err := localcluster.Load(envOr("KIP_CLUSTER_DIR", localcluster.DefaultDir))
	if err != nil {
		return fail(err)
	}
	cluster.Env = env
	rc, err := clientcmd.BuildConfigFromFlags("", env.Kubeconfig)
	if err != nil {
		return fail(err)
	}
	if cluster.c, err = client.New(rc, client.Options{}); err != nil {
		return fail(err)
	}
	if err := sh(root, "bin/kip-dev", "push-image", "--registry", env.RegistryPush, "--image", "kip:e2e", "--platform", "amd64="+filepath.Join(root, "bin")); err != nil {
		return fail(err)
	}
	cluster.kipRepo, cluster.kipTag = env.Registry+"/kip", "e2e"
	// kip's admission policies, as a cluster admin applies them with any
	// install: every agent of every test writes under kip-agent-token.
	if _, err := cluster.RunKubectl(string(deploy.Policies), "apply", "--server-side", "-f", "-"); err != nil {
		return fail(err)
	}
	return m.Run()
}

// hostInterfaces lists this host's interfaces and their IPv4 addresses,
// what the cluster added to the host before it had a namespace of its own
// (a bridge, the API server's address on lo). Interface states and IPv6
// addresses are left out: the system may change them on its own.
func hostInterfaces() (string, error) {
	out, err := exec.Command("ip", "-4", "-o", "addr").Output()
	if err != nil {
		return "", fmt.Errorf("ip -4 -o addr: %w", err)
	}
	links, err := exec.Command("ip", "-o", "link").Output()
	if err != nil {
		return "", fmt.Errorf("ip -o link: %w", err)
	}
	var b strings.Builder
	for _, line := range strings.Split(strings.TrimSpace(string(links)), "\n") {
		if f := strings.Fields(line); len(f) > 1 {
			fmt.Fprintln(&b, "link", strings.TrimSuffix(f[1], ":"))
		}
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Fields(line); len(f) > 3 {
			fmt.Fprintln(&b, "addr", f[1], f[3])
		}
	}
	return b.String(), nil
}

// sameHostInterfaces fails when this host's interfaces changed since before.
func sameHostInterfaces(before, after string) error {
	now, err := hostInterfaces()
	if err != nil {
		return err
	}
	if now != before {
		return fmt.Errorf("this host's interfaces changed after cluster %s (the cluster belongs in its network namespace):\nbefore:\n%s\nafter:\n%s", after, before, now)
	}
	return nil
}

func fail(err error) int {
	fmt.Fprintln(os.Stderr, "e2e set-up:", err)
	return 1
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func sh(dir string, name string, args ...string) error {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), err)
	}
	return nil
}

// kubectl runs kubectl against the local cluster, with stdin when given.
func kubectl(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	out, err := cluster.RunKubectl(stdin, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// pushSamples pushes count small, unique workspace-like images and returns
// their IMAGES entries (name=ref), named as the nodes pull them.
func pushSamples(t *testing.T, prefix string, count int, private bool) []string {
	t.Helper()
	sleep, err := imagebuild.FileFromDisk(filepath.Join(cluster.root, "bin", "kip-sleep"), "/bin/sleep", 0o755)
	if err != nil {
		t.Fatal(err)
	}
	pushTo, nameAs, auth := cluster.RegistryPush, cluster.Registry, authn.Anonymous
	if private {
		pushTo, nameAs = cluster.AuthRegistryPush, cluster.AuthRegistry
		auth = &authn.Basic{Username: cluster.AuthUser, Password: cluster.AuthPassword}
	}
	suffix := strings.ToLower(rand.String(5))
	var entries []string
	for i := 1; i <= count; i++ {
		repoTag := fmt.Sprintf("e2e/%s%d-%s:v1", prefix, i, suffix)
		pushImage(t, pushTo+"/"+repoTag, auth, sleep)
		entries = append(entries, fmt.Sprintf("%s%d=%s/%s", prefix, i, nameAs, repoTag))
	}
	return entries
}

// pushImage pushes a small image of new random content as ref, and returns
// its digest.
func pushImage(t *testing.T, ref string, auth authn.Authenticator, sleep imagebuild.File) string {
	t.Helper()
	img, err := imagebuild.SampleImage(2<<20, 2, sleep)
	if err != nil {
		t.Fatal(err)
	}
	return registrytest.PushImage(t, ref, img, auth)
}

// namespace creates a namespace that enforces the restricted Pod Security
// Standard, removed when the test ends.
func namespace(t *testing.T) string {
	t.Helper()
	return namespaceAt(t, "restricted")
}

// namespaceAt creates a namespace that enforces the Pod Security Standard
// level, removed when the test ends. A privileged one is also granted
// agent mode, as a cluster admin would grant it (agent mode needs both).
func namespaceAt(t *testing.T, level string, grants ...string) string {
	t.Helper()
	ns := "e2e-" + strings.ToLower(rand.String(5))
	labels := map[string]string{"pod-security.kubernetes.io/enforce": level}
	if level == "privileged" {
		grants = append(grants, privilege.LabelAgentMode)
	}
	for _, g := range grants {
		labels[g] = privilege.Allowed
	}
	obj := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: labels}}
	if err := cluster.c.Create(context.Background(), obj); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if !t.Failed() || os.Getenv("KIP_E2E_KEEP") == "" {
			_ = cluster.c.Delete(context.Background(), obj)
		}
	})
	return ns
}

// processTemplate processes deploy/openshift/NAME the way `oc process` does.
func processTemplate(t *testing.T, file string, params map[string]string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(cluster.root, "deploy", "openshift", file))
	if err != nil {
		t.Fatal(err)
	}
	out, err := template.Render(data, params)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// install runs the documented procedure in ns: service account, then
// ConfigMap, then app, each `oc process -f X | oc apply -f -`.
func install(t *testing.T, ns string, config map[string]string) {
	t.Helper()
	installAllowing(t, ns, config, cluster.SocketPattern())
}

// installAllowing installs as install does, the controller allowing the
// runtime sockets allow names (its --cri-socket-allow).
func installAllowing(t *testing.T, ns string, config map[string]string, allow string) {
	t.Helper()
	params := map[string]string{"NAMESPACE": ns}
	for k, v := range config {
		params[k] = v
	}
	kubectl(t, processTemplate(t, "serviceaccount.yaml", map[string]string{"NAMESPACE": ns}), "apply", "-n", ns, "-f", "-")
	kubectl(t, processTemplate(t, "configmap.yaml", params), "apply", "-n", ns, "-f", "-")
	kubectl(t, processTemplate(t, "app.yaml", map[string]string{"IMAGE": cluster.kipRepo, "IMAGE_TAG": cluster.kipTag, "CRI_SOCKET_ALLOW": allow}), "apply", "-n", ns, "-f", "-")
}

// refsOf returns the image references of IMAGES entries.
func refsOf(entries []string) []string {
	var refs []string
	for _, e := range entries {
		refs = append(refs, e[strings.Index(e, "=")+1:])
	}
	return refs
}

// waitCached waits until each node in on holds every image of entries, and
// checks that the nodes in off hold none of them.
func waitCached(t *testing.T, entries []string, on, off []string) {
	t.Helper()
	refs := refsOf(entries)
	if err := cluster.WaitCached(context.Background(), on, refs, 3*time.Minute); err != nil {
		t.Fatal(err)
	}
	held, err := cluster.NodeImages(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, node := range off {
		for _, ref := range refs {
			if cri.Has(held[node], ref) {
				t.Errorf("%s holds %s, but is not selected", node, ref)
			}
		}
	}
}

// eventually polls cond until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	poll.Until(t, timeout, 500*time.Millisecond, what, cond)
}

// scrapeMetrics GETs https://POD:8443/metrics from inside the cluster's
// network namespace, with the token of a ServiceAccount bound to the
// install's metrics reader ClusterRole; and checks first that a request
// without a token is refused.
func scrapeMetrics(t *testing.T, ns, pod string) (string, error) {
	t.Helper()
	scraperTokens.Lock()
	defer scraperTokens.Unlock()
	token, ok := scraperTokens.byNamespace[ns]
	if !ok {
		kubectl(t, "", "create", "serviceaccount", "-n", ns, "scraper")
		binding := "kip-e2e-scraper-" + ns
		kubectl(t, "", "create", "clusterrolebinding", binding, "--serviceaccount="+ns+":scraper",
			"--clusterrole=kubernetes-image-puller-"+ns+"-metrics-reader")
		t.Cleanup(func() { _, _ = cluster.RunKubectl("", "delete", "clusterrolebinding", binding) })
		token = strings.TrimSpace(kubectl(t, "", "create", "token", "-n", ns, "scraper"))
		scraperTokens.byNamespace[ns] = token
	}
	ip := strings.TrimSpace(kubectl(t, "", "get", "pod", "-n", ns, pod, "-o", "jsonpath={.status.podIP}"))
	dialer, err := netns.NewDialer(cluster.NetnsPath)
	if err != nil {
		return "", err
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext:     func(ctx context.Context, _, addr string) (net.Conn, error) { return dialer.DialContext(ctx, addr) },
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, // the endpoint's certificate is self-signed
	}}
	get := func(token string) (int, string, error) {
		req, err := http.NewRequest(http.MethodGet, "https://"+net.JoinHostPort(ip, "8443")+"/metrics", nil)
		if err != nil {
			return 0, "", err
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body), err
	}
	if code, _, err := get(""); err != nil || code != http.StatusUnauthorized {
		return "", fmt.Errorf("without a token: HTTP %d, %w; want 401", code, err)
	}
	code, body, err := get(token)
	if err == nil && code != http.StatusOK {
		err = fmt.Errorf("HTTP %d: %.200s", code, body)
	}
	return body, err
}

// scraperTokens holds the scraper's token per namespace.
var scraperTokens = struct {
	sync.Mutex
	byNamespace map[string]string
}{byNamespace: map[string]string{}}
