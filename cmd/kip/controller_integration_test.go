//go:build integration

package main

import (
	"context"
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
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

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

func httpGet(url string) (int, string) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
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
		waitFor(path+" answers 200", func() bool { code, _ := httpGet("http://" + probeAddr + path); return code == 200 })
	}
	waitFor("metrics served", func() bool {
		code, body := httpGet("http://" + metricsAddr + "/metrics")
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
