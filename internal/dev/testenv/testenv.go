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

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlconfig "sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
)

// Env is a running API server with an admin client.
type Env struct {
	*envtest.Environment
	Client client.Client
}

// Run starts the API server with the CRDs in crdPaths installed, calls
// ready, runs the tests and stops the API server, also when tests fail; for
// TestMain. When ready fails, no test runs.
// It sets controller-runtime's logger: KIP_TEST_LOGS=1 shows the
// controllers' logs, otherwise they are discarded.
func Run(m *testing.M, env **Env, ready func() error, crdPaths ...string) int {
	if os.Getenv("KIP_TEST_LOGS") != "" {
		ctrl.SetLogger(zap.New(zap.UseDevMode(true)))
	} else {
		ctrl.SetLogger(logr.Discard())
	}
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
	if err := ready(); err != nil {
		fmt.Fprintln(os.Stderr, "set up the tests:", err)
		return 1
	}
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

// ManagerOptions are the options of a manager started by a test: several
// may run in one process, and none serves metrics or probes.
func ManagerOptions() ctrl.Options {
	return ctrl.Options{
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Controller:             ctrlconfig.Controller{SkipNameValidation: ptr.To(true)},
	}
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
