//go:build integration

package puller

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kip-image-puller/kip/internal/config"
	"github.com/kip-image-puller/kip/internal/daemonset"
	"github.com/kip-image-puller/kip/internal/dev/registrytest"
	"github.com/kip-image-puller/kip/internal/dev/testenv"
	"github.com/kip-image-puller/kip/internal/privilege"
	"github.com/kip-image-puller/kip/internal/registry"
)

// The API server and etcd every integration test shares. Each test works in
// a namespace of its own.
var (
	env       *testenv.Env
	apiConfig *rest.Config
	k8s       client.Client
)

func TestMain(m *testing.M) {
	os.Exit(testenv.Run(m, &env, func() error {
		apiConfig, k8s = env.Config, env.Client
		return nil
	}))
}

func newNamespace(t testing.TB) string { return env.Namespace(t) }

// grantedNamespace is a namespace whose pullers a cluster admin allowed
// agent mode and node writes.
func grantedNamespace(t testing.TB) string {
	t.Helper()
	ns := env.Namespace(t)
	grant(t, ns)
	return ns
}

// grant labels ns as a cluster admin does to allow agent mode (with private
// images) and node writes.
func grant(t testing.TB, ns string) {
	t.Helper()
	patch := fmt.Sprintf(`{"metadata":{"labels":{%q:%q,%q:%q,%q:%q}}}`, privilege.LabelAgentMode, privilege.Allowed,
		privilege.LabelAgentPrivateImages, privilege.Allowed, privilege.LabelNodeWrites, privilege.Allowed)
	if err := k8s.Patch(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, client.RawPatch(types.MergePatchType, []byte(patch))); err != nil {
		t.Fatal(err)
	}
}

// testSocket is the runtime socket the agent-mode tests use; the tests'
// controllers allow it as an installer would (--cri-socket-allow).
const testSocket = "/var/lib/nodes/$(NODE_NAME)/containerd.sock"

// controllerRun is one running controller.
type controllerRun struct {
	writes *testenv.Writes
	cancel context.CancelFunc
	done   chan struct{} // closed when the manager returned, with err set
	err    error
	mgr    ctrl.Manager
}

// stopped reports whether the controller has stopped by itself.
func (c *controllerRun) stopped() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// stop ends the controller and waits for it, as a SIGTERM would.
func (c *controllerRun) stop(t *testing.T) {
	t.Helper()
	c.cancel()
	select {
	case <-c.done:
		if c.err != nil {
			t.Errorf("controller stopped with %v", c.err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("controller did not stop within 30s")
	}
}

// runSettings are what a runOption may change: the manager's options, the
// controller's, and the client's transport.
type runSettings struct {
	mo    *ctrl.Options
	o     *Options
	wraps []func(http.RoundTripper) http.RoundTripper
}

type runOption func(*runSettings)

func withLeaderElection(id string) runOption {
	return func(rs *runSettings) {
		mo := rs.mo
		mo.LeaderElection = true
		mo.LeaderElectionID = id
		mo.LeaderElectionReleaseOnCancel = true
		// controller-runtime's defaults for lease and renewal, so a loaded
		// machine does not lose a lease mid-test; the leader releases it on
		// stop, so a hand-over takes about one retry period.
		mo.LeaseDuration = ptr.To(15 * time.Second)
		mo.RenewDeadline = ptr.To(10 * time.Second)
		mo.RetryPeriod = ptr.To(time.Second)
	}
}

func withSyncPeriod(d time.Duration) runOption {
	return func(rs *runSettings) { rs.mo.Cache.SyncPeriod = &d }
}

func withOptions(f func(*Options)) runOption {
	return func(rs *runSettings) { f(rs.o) }
}

// withTransport wraps the controller's client transport, to see or stage
// what happens around its requests.
func withTransport(wrap func(http.RoundTripper) http.RoundTripper) runOption {
	return func(rs *runSettings) { rs.wraps = append(rs.wraps, wrap) }
}

// startController runs the controller for namespace ns until the test ends.
func startController(t testing.TB, ns string, opts ...runOption) *controllerRun {
	t.Helper()
	writes := &testenv.Writes{}
	rc := rest.CopyConfig(apiConfig)
	rc.Wrap(writes.Wrap)
	mo := testenv.ManagerOptions()
	mo.LeaderElectionNamespace = ns
	o := Options{
		Namespace: ns, ConfigMapName: config.DefaultConfigMapName, DefaultKIPImage: "registry.example.com/kip:default",
		AllowedSockets: []string{testSocket}, PrivilegeRecheck: 2 * time.Second,
		// Images on made-up registries fail at once, with no DNS lookup.
		Resolver: registry.Resolver{Timeout: 10 * time.Second, Parallel: 4, Transport: registrytest.LoopbackOnly()},
	}
	rs := &runSettings{mo: &mo, o: &o}
	for _, opt := range opts {
		opt(rs)
	}
	for _, wrap := range rs.wraps {
		rc.Wrap(wrap)
	}
	mgr, err := NewManager(rc, mo, o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	run := &controllerRun{writes: writes, cancel: cancel, done: make(chan struct{}), mgr: mgr}
	go func() {
		run.err = mgr.Start(ctx)
		close(run.done)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-run.done:
		case <-time.After(30 * time.Second):
		}
	})
	return run
}

func configMap(ns string, data map[string]string) *corev1.ConfigMap {
	d := map[string]string{config.KeyNamespace: ns}
	for k, v := range data {
		d[k] = v
	}
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: config.DefaultConfigMapName, Namespace: ns}, Data: d}
}

// pullerDeployment creates the puller's own Deployment (nothing runs it on
// envtest; the controller only reads it).
func pullerDeployment(t *testing.T, ns string) *appsv1.Deployment {
	t.Helper()
	labels := map[string]string{"app": "kip"}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "kubernetes-image-puller", Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "kip", Image: "registry.example.com/kip:from-deployment"}}},
			},
		},
	}
	if err := k8s.Create(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	return d
}

func getDaemonSet(ns, name string) (*appsv1.DaemonSet, error) {
	var ds appsv1.DaemonSet
	err := k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, &ds)
	return &ds, err
}

func containerImages(ds *appsv1.DaemonSet) string {
	var parts []string
	if daemonset.IsAgents(ds) {
		images, _ := daemonset.AgentImages(ds)
		for _, img := range images {
			parts = append(parts, img.Name+"="+img.Ref)
		}
		return strings.Join(parts, ";")
	}
	for _, c := range ds.Spec.Template.Spec.Containers {
		parts = append(parts, c.Name+"="+c.Image)
	}
	return strings.Join(parts, ";")
}

// waitForImages waits until the DaemonSet runs exactly the given IMAGES value.
func waitForImages(t *testing.T, ns, name, images string) *appsv1.DaemonSet {
	t.Helper()
	var ds *appsv1.DaemonSet
	testenv.Eventually(t, 20*time.Second, "DaemonSet "+name+" with "+images, func() (bool, string) {
		var err error
		ds, err = getDaemonSet(ns, name)
		if err != nil {
			return false, err.Error()
		}
		got := containerImages(ds)
		return got == images, got
	})
	return ds
}

// events lists the Events of a namespace with the given reason.
func events(t *testing.T, ns, reason string) []eventsv1.Event {
	t.Helper()
	var list eventsv1.EventList
	if err := k8s.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	var out []eventsv1.Event
	for _, e := range list.Items {
		if e.Reason == reason {
			out = append(out, e)
		}
	}
	return out
}

// eventsAbout lists the Events of reason whose note contains s.
func eventsAbout(t *testing.T, ns, reason, s string) []eventsv1.Event {
	t.Helper()
	var out []eventsv1.Event
	for _, e := range events(t, ns, reason) {
		if strings.Contains(e.Note, s) {
			out = append(out, e)
		}
	}
	return out
}

func waitForEvent(t *testing.T, ns, reason, regardingKind, contains string) eventsv1.Event {
	t.Helper()
	var found eventsv1.Event
	testenv.Eventually(t, 20*time.Second, "Event "+reason, func() (bool, string) {
		for _, e := range events(t, ns, reason) {
			if e.Regarding.Kind == regardingKind && strings.Contains(e.Note, contains) {
				found = e
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d %s events", len(events(t, ns, reason)), reason)
	})
	return found
}
