// Package testenv starts the real kube-apiserver and etcd that integration
// tests run against (controller-runtime's envtest), from the binaries that
// hack/kube-binaries.sh builds from source. Only tests import it.
package testenv

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// Env is a running API server with an admin client.
type Env struct {
	*envtest.Environment
	Client client.Client
}

// Run starts the API server with the CRDs in crdPaths installed, calls
// ready, runs the tests and stops the API server, also when tests fail; for
// TestMain.
func Run(m *testing.M, env **Env, ready func(), crdPaths ...string) int {
	e, err := Start(crdPaths...)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() {
		if err := e.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stop kube-apiserver and etcd:", err)
		}
	}()
	*env = e
	ready()
	return m.Run()
}

// Start starts an API server with the CRDs in crdPaths installed; the
// caller stops it.
func Start(crdPaths ...string) (*Env, error) {
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		return nil, errors.New("KUBEBUILDER_ASSETS is not set: run `make test-integration`, which builds etcd and kube-apiserver from source")
	}
	te := &envtest.Environment{BinaryAssetsDirectory: assets, CRDDirectoryPaths: crdPaths, ErrorIfCRDPathMissing: true}
	cfg, err := te.Start()
	if err != nil {
		return nil, fmt.Errorf("start kube-apiserver and etcd from %s: %w", assets, err)
	}
	c, err := client.New(cfg, client.Options{})
	if err != nil {
		_ = te.Stop()
		return nil, err
	}
	return &Env{Environment: te, Client: c}, nil
}

// Namespace creates a namespace of its own for one test.
func (e *Env) Namespace(t testing.TB) string {
	t.Helper()
	ns := "kip-" + strings.ToLower(rand.String(6))
	if err := e.Client.Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	return ns
}
