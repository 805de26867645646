//go:build integration

package main

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/kip-image-puller/kip/internal/dev/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	os.Exit(testenv.Run(m, &env, func() error { return nil }))
}

// freeAddr returns a loopback address with a port nothing listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestControllerBinary runs the real kip binary as a cluster admin would,
// with a kubeconfig: it applies the DaemonSet, serves probes and metrics,
// and on SIGTERM exits 0 leaving the DaemonSet in place.
func TestControllerBinary(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "kip")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kubeconfig, env.KubeConfig, 0o600); err != nil {
		t.Fatal(err)
	}
	ns := env.Namespace(t)
	ctx := context.Background()
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "k8s-image-puller", Namespace: ns},
		// A registry on loopback that refuses at once: the controller's
		// refresh looks the tag up, and a test resolves no real hostname.
		Data: map[string]string{"IMAGES": "java=127.0.0.1:1/ws/java:17", "NAMESPACE": ns},
	}
	if err := env.Client.Create(ctx, cm); err != nil {
		t.Fatal(err)
	}

	metricsAddr, probeAddr := freeAddr(t), freeAddr(t)
	cmd := exec.Command(bin, "controller", "--kubeconfig", kubeconfig, "-n", ns,
		"--metrics-bind-address", metricsAddr, "--health-probe-bind-address", probeAddr,
		"--kip-image", "reg.example.com/kip:test")
	var logs strings.Builder
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil { // still running after a failure: stop the process we started
			_ = cmd.Process.Kill()
			if err := <-exited; err != nil {
				t.Logf("the controller, killed after a failure: %v", err)
			}
		}
		if t.Failed() {
			t.Logf("controller output:\n%s", logs.String())
		}
	})

	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 30s", what)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	var ds appsv1.DaemonSet
	key := types.NamespacedName{Namespace: ns, Name: "kubernetes-image-puller"}
	waitFor("DaemonSet applied", func() bool { return env.Client.Get(ctx, key, &ds) == nil })
	if got := ds.Spec.Template.Spec.InitContainers[0].Image; got != "reg.example.com/kip:test" {
		t.Errorf("init image %q, want --kip-image", got)
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		waitFor(path+" answers 200", func() bool { code, _ := scrape("http://"+probeAddr+path, ""); return code == 200 })
	}
	// Metrics: HTTPS, and only to a caller the API server lets get /metrics.
	url := "https://" + metricsAddr + "/metrics"
	waitFor("metrics served over HTTPS", func() bool { code, _ := scrape(url, ""); return code != 0 })
	if code, body := scrape(url, ""); code != http.StatusUnauthorized {
		t.Errorf("metrics without a token: %d %.200s, want 401", code, body)
	}
	if code, _ := scrape("http://"+metricsAddr+"/metrics", ""); code == http.StatusOK {
		t.Error("metrics answered over plain HTTP")
	}
	nobody := serviceAccountToken(t, ns, "nobody")
	if code, body := scrape(url, nobody); code != http.StatusForbidden {
		t.Errorf("metrics for a ServiceAccount without the reader role: %d %.200s, want 403", code, body)
	}
	reader := serviceAccountToken(t, ns, "prometheus")
	grantMetricsReader(t, ns, "prometheus")
	waitFor("metrics for the reader", func() bool {
		code, body := scrape(url, reader)
		return code == 200 && strings.Contains(body, `controller_runtime_reconcile_total{controller="puller"`)
	})

	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("exit after SIGTERM: %v, want status 0", err)
		}
		t.Logf("graceful shutdown in %v", time.Since(start))
	case <-time.After(20 * time.Second):
		t.Fatal("the controller did not stop within 20s of SIGTERM")
	}
	var after appsv1.DaemonSet
	if err := env.Client.Get(ctx, key, &after); err != nil || after.UID != ds.UID {
		t.Errorf("DaemonSet after shutdown: %v (uid %s, want %s)", err, after.UID, ds.UID)
	}
	if !strings.Contains(logs.String(), `"msg":"stopped; the DaemonSet stays in place"`) {
		t.Errorf("no structured shutdown log line in:\n%s", logs.String())
	}
}

// scrape GETs url, with a bearer token when one is given, trusting the
// metrics endpoint's self-signed certificate.
func scrape(url, token string) (int, string) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return 0, err.Error()
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, // the endpoint's certificate is self-signed
	}}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// serviceAccountToken creates a ServiceAccount and returns a token for it.
func serviceAccountToken(t *testing.T, ns, name string) string {
	t.Helper()
	cs, err := kubernetes.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := cs.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	tr, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, name, &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return tr.Status.Token
}

// grantMetricsReader binds the shipped metrics reader ClusterRole to a
// ServiceAccount, as an admin does for Prometheus.
func grantMetricsReader(t *testing.T, ns, sa string) {
	t.Helper()
	var role rbacv1.ClusterRole
	data, err := os.ReadFile(testenv.RepoFile(filepath.Join("deploy", "operator", "rbac", "metrics_reader_role.yaml")))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(data, &role); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := env.Client.Create(ctx, &role); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: ns + "-" + sa},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: sa, Namespace: ns}},
	}
	if err := env.Client.Create(ctx, binding); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), binding) })
}
