package testenv

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kip-image-puller/kip/api/v1alpha1"
	"github.com/kip-image-puller/kip/internal/dev/poll"
	"github.com/kip-image-puller/kip/internal/manager"
)

// OperatorPullerImage is the puller image of the operators tests start.
const OperatorPullerImage = "registry.example.com/kip:operator-default"

// RunOperator is TestMain for the operator's controllers: an API server with
// the KubernetesImagePuller CRD and a CheCluster CRD (the project's fixture,
// or the one $KIP_CHECLUSTER_CRD names), and an admin client that knows
// both. Each test then works in a namespace of its own, with an operator
// that watches only that namespace.
func RunOperator(m *testing.M, env **Env) int {
	che, err := CheClusterCRD()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return Run(m, env, func() error {
		scheme, err := manager.Scheme()
		if err == nil {
			(*env).Client, err = client.New((*env).Config, client.Options{Scheme: scheme})
		}
		return err
	}, RepoFile("deploy/operator/crd"), che)
}

// StartOperator runs the whole operator (manager.NewOperator) against rc
// until the test ends, and records its writes. A zero PullerImage or
// RetryAfter in o takes the tests' defaults.
func StartOperator(t *testing.T, rc *rest.Config, o manager.Options, syncPeriod time.Duration) *Writes {
	t.Helper()
	writes := &Writes{}
	rc = rest.CopyConfig(rc)
	rc.Wrap(writes.Wrap)
	if o.PullerImage == "" {
		o.PullerImage = OperatorPullerImage
	}
	if o.RetryAfter == 0 {
		o.RetryAfter = 300 * time.Millisecond
	}
	if o.DashboardURL == "" {
		// Never the in-cluster name, which a test would look up in DNS:
		// a loopback port where nothing listens fails at once.
		o.DashboardURL = "http://127.0.0.1:1/dashboard/api"
	}
	mo := ManagerOptions()
	if syncPeriod > 0 {
		mo.Cache.SyncPeriod = &syncPeriod
	}
	mgr, err := manager.NewOperator(rc, mo, o)
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

// Eventually polls cond every 50ms until it holds, failing the test with
// cond's last word after timeout.
func Eventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	poll.Until(t, timeout, 50*time.Millisecond, what, cond)
}

// WaitForCondition waits until the resource's condition typ has status and reason.
func (e *Env) WaitForCondition(t *testing.T, key client.ObjectKey, typ string, status metav1.ConditionStatus, reason string) *v1alpha1.KubernetesImagePuller {
	t.Helper()
	var kip v1alpha1.KubernetesImagePuller
	Eventually(t, 20*time.Second, fmt.Sprintf("%s %s=%s (%s)", key, typ, status, reason), func() (bool, string) {
		if err := e.Client.Get(context.Background(), key, &kip); err != nil {
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

// Create creates obj, failing the test when it cannot.
func (e *Env) Create(t *testing.T, obj client.Object) {
	t.Helper()
	if err := e.Client.Create(context.Background(), obj); err != nil {
		t.Fatal(err)
	}
}
