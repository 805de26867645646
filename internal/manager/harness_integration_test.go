//go:build integration

package manager

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/kip-image-puller/kip/api/v1alpha1"
	"github.com/kip-image-puller/kip/internal/dev/poll"
	"github.com/kip-image-puller/kip/internal/dev/testenv"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// The API server and etcd the tests share, with the KubernetesImagePuller
// and the real CheCluster CRDs. Each test works in a namespace of its own,
// with an operator that watches only that namespace.
var (
	env *testenv.Env
	k8s client.Client
)

const pullerImage = "registry.example.com/kip:operator-default"

func TestMain(m *testing.M) {
	che, err := testenv.CheClusterCRD()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(testenv.Run(m, &env, func() {
		scheme, err := Scheme()
		if err == nil {
			k8s, err = client.New(env.Config, client.Options{Scheme: scheme})
		}
		if err != nil {
			panic(err)
		}
		env.Client = k8s
	}, testenv.RepoFile("deploy/operator/crd"), che))
}

// startOperator runs an operator that watches namespaces until the test ends.
func startOperator(t *testing.T, rc *rest.Config, o Options, syncPeriod time.Duration) *testenv.Writes {
	t.Helper()
	writes := &testenv.Writes{}
	rc = rest.CopyConfig(rc)
	rc.Wrap(writes.Wrap)
	if o.PullerImage == "" {
		o.PullerImage = pullerImage
	}
	if o.RetryAfter == 0 {
		o.RetryAfter = 300 * time.Millisecond
	}
	mo := testenv.ManagerOptions()
	if syncPeriod > 0 {
		mo.Cache.SyncPeriod = &syncPeriod
	}
	mgr, err := NewOperator(rc, mo, o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("operator stopped with %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("operator did not stop within 30s")
		}
	})
	return writes
}

func eventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	poll.Until(t, timeout, 50*time.Millisecond, what, cond)
}

// waitForCondition waits until the resource's condition typ has status and reason.
func waitForCondition(t *testing.T, key client.ObjectKey, typ string, status metav1.ConditionStatus, reason string) *v1alpha1.KubernetesImagePuller {
	t.Helper()
	var kip v1alpha1.KubernetesImagePuller
	eventually(t, 20*time.Second, fmt.Sprintf("%s %s=%s (%s)", key, typ, status, reason), func() (bool, string) {
		if err := k8s.Get(context.Background(), key, &kip); err != nil {
			return false, err.Error()
		}
		c := meta.FindStatusCondition(kip.Status.Conditions, typ)
		if c == nil {
			return false, fmt.Sprintf("no %s condition; status %+v", typ, kip.Status)
		}
		return c.Status == status && c.Reason == reason, fmt.Sprintf("%s=%s (%s): %s", typ, c.Status, c.Reason, c.Message)
	})
	return &kip
}

// create creates obj, failing the test when it cannot.
func create(t *testing.T, obj client.Object) {
	t.Helper()
	if err := k8s.Create(context.Background(), obj); err != nil {
		t.Fatal(err)
	}
}

func newPuller(ns, name string, spec v1alpha1.KubernetesImagePullerSpec) *v1alpha1.KubernetesImagePuller {
	return &v1alpha1.KubernetesImagePuller{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: spec}
}
