//go:build integration

package puller

import (
	"context"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kip-image-puller/kip/internal/config"
	"github.com/kip-image-puller/kip/internal/daemonset"
	"github.com/kip-image-puller/kip/internal/dev/testenv"
)

const dsName = "kubernetes-image-puller"

func TestCreatesDaemonSetOwnedByDeployment(t *testing.T) {
	ns := newNamespace(t)
	deploy := pullerDeployment(t, ns)
	ctx := context.Background()
	if err := k8s.Create(ctx, configMap(ns, map[string]string{
		config.KeyImages:           "java=reg.example.com/ws/java:17;node=reg.example.com/ws/node:22",
		config.KeyMemoryLimit:      "32Mi",
		config.KeyNodeSelector:     `{"kubernetes.io/os": "linux"}`,
		config.KeyImagePullSecrets: "regcred",
	})); err != nil {
		t.Fatal(err)
	}
	startController(t, ns)

	ds := waitForImages(t, ns, dsName, "java=reg.example.com/ws/java:17;node=reg.example.com/ws/node:22")
	if len(ds.OwnerReferences) != 1 || ds.OwnerReferences[0].UID != deploy.UID || ds.OwnerReferences[0].Kind != "Deployment" ||
		ds.OwnerReferences[0].Controller == nil || !*ds.OwnerReferences[0].Controller {
		t.Errorf("owner references = %+v, want the controller reference to Deployment %s", ds.OwnerReferences, deploy.UID)
	}
	spec := ds.Spec.Template.Spec
	if got := spec.InitContainers[0].Image; got != "registry.example.com/kip:from-deployment" {
		t.Errorf("init image %q, want the puller Deployment's own image", got)
	}
	if got := spec.Containers[0].Resources.Limits.Memory().String(); got != "32Mi" {
		t.Errorf("memory limit %s, want 32Mi", got)
	}
	if spec.NodeSelector["kubernetes.io/os"] != "linux" || len(spec.ImagePullSecrets) != 1 || spec.ImagePullSecrets[0].Name != "regcred" {
		t.Errorf("node selector %v, pull secrets %v", spec.NodeSelector, spec.ImagePullSecrets)
	}
	// The server-side apply landed exactly what the builder produces.
	cfg, _, err := config.Parse(configMap(ns, map[string]string{
		config.KeyImages:           "java=reg.example.com/ws/java:17;node=reg.example.com/ws/node:22",
		config.KeyMemoryLimit:      "32Mi",
		config.KeyNodeSelector:     `{"kubernetes.io/os": "linux"}`,
		config.KeyImagePullSecrets: "regcred",
	}).Data)
	if err != nil {
		t.Fatal(err)
	}
	want := daemonset.Build(cfg, daemonset.Options{KIPImage: "registry.example.com/kip:from-deployment", Owner: &ds.OwnerReferences[0], Refresh: daemonset.RecordedRefresh(ds)})
	if same, err := upToDate(ds, want, DefaultFieldOwner); err != nil || !same {
		t.Errorf("live DaemonSet differs from the built one (err %v)", err)
	}
	applied := waitForEvent(t, ns, ReasonApplied, "DaemonSet", "applied with 2 images")
	if applied.Regarding.UID != ds.UID || applied.Regarding.Name != dsName {
		t.Errorf("Applied event regards %+v, want the DaemonSet %s", applied.Regarding, ds.UID)
	}
}

func TestConfigMapChangeAppliesWithoutRestart(t *testing.T) {
	ns := newNamespace(t)
	ctx := context.Background()
	cm := configMap(ns, map[string]string{config.KeyImages: "a=reg.example.com/a:1;b=reg.example.com/b:1"})
	if err := k8s.Create(ctx, cm); err != nil {
		t.Fatal(err)
	}
	run := startController(t, ns)
	first := waitForImages(t, ns, dsName, "a=reg.example.com/a:1;b=reg.example.com/b:1")

	// Add one image, remove another.
	cm.Data[config.KeyImages] = "b=reg.example.com/b:1;c=reg.example.com/c:1"
	if err := k8s.Update(ctx, cm); err != nil {
		t.Fatal(err)
	}
	second := waitForImages(t, ns, dsName, "b=reg.example.com/b:1;c=reg.example.com/c:1")
	if second.UID != first.UID {
		t.Error("the DaemonSet was recreated; it should be updated in place")
	}
	if run.stopped() {
		t.Fatalf("the controller stopped: %v", run.err)
	}
}

func TestEnvironmentOnlyConfiguration(t *testing.T) {
	ns := newNamespace(t)
	startController(t, ns, withOptions(func(o *Options) {
		o.ConfigMapName = ""
		o.Env = map[string]string{config.KeyImages: "a=reg.example.com/a:1", config.KeyNamespace: ns, config.KeyDaemonSetName: "from-env"}
	}))
	ds := waitForImages(t, ns, "from-env", "a=reg.example.com/a:1")
	if len(ds.OwnerReferences) != 0 {
		t.Errorf("owner references %v without a puller Deployment", ds.OwnerReferences)
	}
	if got := ds.Spec.Template.Spec.InitContainers[0].Image; got != "registry.example.com/kip:default" {
		t.Errorf("init image %q, want the built-in default", got)
	}
}

func TestRestoresDeletedDaemonSet(t *testing.T) {
	ns := newNamespace(t)
	ctx := context.Background()
	if err := k8s.Create(ctx, configMap(ns, map[string]string{config.KeyImages: "a=reg.example.com/a:1"})); err != nil {
		t.Fatal(err)
	}
	startController(t, ns)
	first := waitForImages(t, ns, dsName, "a=reg.example.com/a:1")
	if err := k8s.Delete(ctx, first); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	testenv.Eventually(t, 20*time.Second, "DaemonSet recreated", func() (bool, string) {
		ds, err := getDaemonSet(ns, dsName)
		if err != nil {
			return false, err.Error()
		}
		return ds.UID != first.UID, "still the deleted one"
	})
	t.Logf("deleted DaemonSet restored in %v", time.Since(start))
	waitForEvent(t, ns, ReasonRestored, "DaemonSet", "deleted outside the puller")
}

func TestRestoresEditedDaemonSet(t *testing.T) {
	ns := newNamespace(t)
	ctx := context.Background()
	if err := k8s.Create(ctx, configMap(ns, map[string]string{config.KeyImages: "a=reg.example.com/a:1;b=reg.example.com/b:1"})); err != nil {
		t.Fatal(err)
	}
	startController(t, ns)
	ds := waitForImages(t, ns, dsName, "a=reg.example.com/a:1;b=reg.example.com/b:1")

	// A hand edit, as `kubectl edit` makes it: a plain update by another manager.
	ds.Spec.Template.Spec.Containers[0].Image = "reg.example.com/a:hacked"
	ds.Spec.Template.Spec.Containers[1].Resources.Limits[corev1.ResourceMemory] = ds.Spec.Template.Spec.Containers[1].Resources.Requests[corev1.ResourceMemory]
	if err := k8s.Update(ctx, ds, client.FieldOwner("kubectl-edit")); err != nil {
		t.Fatal(err)
	}
	restored := waitForImages(t, ns, dsName, "a=reg.example.com/a:1;b=reg.example.com/b:1")
	testenv.Eventually(t, 20*time.Second, "memory limit restored", func() (bool, string) {
		got, err := getDaemonSet(ns, dsName)
		if err != nil {
			return false, err.Error()
		}
		lim := got.Spec.Template.Spec.Containers[1].Resources.Limits.Memory().String()
		return lim == "20Mi", lim
	})
	if restored.UID != ds.UID {
		t.Error("the DaemonSet was recreated instead of restored")
	}
	waitForEvent(t, ns, ReasonRestored, "DaemonSet", "outside the puller")

	// A container removed by hand comes back too.
	ds, _ = getDaemonSet(ns, dsName)
	ds.Spec.Template.Spec.Containers = ds.Spec.Template.Spec.Containers[:1]
	if err := k8s.Update(ctx, ds, client.FieldOwner("kubectl-edit")); err != nil {
		t.Fatal(err)
	}
	waitForImages(t, ns, dsName, "a=reg.example.com/a:1;b=reg.example.com/b:1")
}

func TestInvalidConfigurationKeepsLastGoodDaemonSet(t *testing.T) {
	ns := newNamespace(t)
	ctx := context.Background()
	cm := configMap(ns, map[string]string{config.KeyImages: "a=reg.example.com/a:1"})
	if err := k8s.Create(ctx, cm); err != nil {
		t.Fatal(err)
	}
	run := startController(t, ns)
	good := waitForImages(t, ns, dsName, "a=reg.example.com/a:1")

	cm.Data[config.KeyImages] = "a=reg.example.com/a:2;Bad_Name=x:1"
	cm.Data[config.KeyMemoryLimit] = "lots"
	if err := k8s.Update(ctx, cm); err != nil {
		t.Fatal(err)
	}
	ev := waitForEvent(t, ns, ReasonInvalidConfiguration, "ConfigMap", "CACHING_MEMORY_LIMIT")
	for _, want := range []string{"IMAGES", "Bad_Name", "lots", "last applied DaemonSet stays"} {
		if !strings.Contains(ev.Note, want) {
			t.Errorf("event note lacks %q: %s", want, ev.Note)
		}
	}
	if ev.Type != corev1.EventTypeWarning {
		t.Errorf("event type %s, want Warning", ev.Type)
	}
	// The DaemonSet is untouched, and the controller keeps running: the
	// Event comes from the reconcile that saw the invalid configuration.
	now, err := getDaemonSet(ns, dsName)
	if err != nil || now.ResourceVersion != good.ResourceVersion {
		t.Errorf("DaemonSet changed under an invalid configuration (err %v)", err)
	}
	if run.stopped() {
		t.Fatalf("the controller stopped: %v", run.err)
	}
	if n := len(events(t, ns, ReasonInvalidConfiguration)); n != 1 {
		t.Errorf("%d InvalidConfiguration events, want 1", n)
	}

	// A NAMESPACE other than the controller's is refused the same way.
	cm.Data = map[string]string{config.KeyImages: "a=reg.example.com/a:3", config.KeyNamespace: "elsewhere"}
	if err := k8s.Update(ctx, cm); err != nil {
		t.Fatal(err)
	}
	waitForEvent(t, ns, ReasonInvalidConfiguration, "ConfigMap", "NAMESPACE")

	// Fixing it applies at once.
	cm.Data = map[string]string{config.KeyImages: "a=reg.example.com/a:2", config.KeyNamespace: ns}
	if err := k8s.Update(ctx, cm); err != nil {
		t.Fatal(err)
	}
	waitForImages(t, ns, dsName, "a=reg.example.com/a:2")
	waitForEvent(t, ns, ReasonConfigurationValid, "ConfigMap", "valid again")
}

// reconcileCount is how many times the puller controller has reconciled in
// this process.
func reconcileCount(t *testing.T) float64 { return testenv.ReconcileCount(t, "puller") }

// waitForReconcile is the sync point of the "nothing happened" assertions:
// it waits until controller has reconciled more than since times, proof
// that it saw the change, before the test counts what it wrote.
func waitForReconcile(t *testing.T, controller string, since float64) {
	t.Helper()
	testenv.WaitForReconciles(t, controller, since, 1)
}

func TestIdleMakesNoWrites(t *testing.T) {
	for _, mode := range []map[string]string{
		{config.KeyCachingMode: config.ModeDaemonSet},
		{config.KeyCachingMode: config.ModeAgent, config.KeyCRISocket: testSocket, config.KeyImagePullSecrets: "regcred"},
	} {
		t.Run(mode[config.KeyCachingMode], func(t *testing.T) { idleMakesNoWrites(t, mode) })
	}
}

func idleMakesNoWrites(t *testing.T, mode map[string]string) {
	ns := grantedNamespace(t)
	pullerDeployment(t, ns)
	images := "a=reg.example.com/a:1;b=reg.example.com/b@sha256:" + strings.Repeat("b", 64)
	data := map[string]string{config.KeyImages: images}
	for k, v := range mode {
		data[k] = v
	}
	if err := k8s.Create(context.Background(), configMap(ns, data)); err != nil {
		t.Fatal(err)
	}
	// A short resync period makes the controller reconcile while idle, so
	// the check covers its decision not to write, not just its quiet.
	run := startController(t, ns, withLeaderElection("kip-idle-"+mode[config.KeyCachingMode]), withSyncPeriod(2*time.Second))
	waitForImages(t, ns, config.ActiveDaemonSetName(dsName, mode[config.KeyCachingMode]), images)
	// The start-up refresh is done when its failure is reported: the tag on
	// a made-up registry cannot be resolved (at once, on loopback only).
	waitForEvent(t, ns, ReasonResolveFailed, "DaemonSet", "reg.example.com/a:1")

	run.writes.Reset()
	before := reconcileCount(t)
	const idle = 10 * time.Second
	time.Sleep(idle)
	writes := run.writes.Count(false)
	reconciles := reconcileCount(t) - before
	t.Logf("idle %v: %d reconciles, %d writes (%d lease renewals not counted)", idle, int(reconciles), len(writes), len(run.writes.Count(true))-len(writes))
	if reconciles < 2 {
		t.Errorf("%v reconciles while idle; the resync should have caused several", reconciles)
	}
	if len(writes) != 0 {
		t.Errorf("writes while idle: %v", writes)
	}
}

func TestLeaderElectionTwoControllersNeverFight(t *testing.T) {
	ns := newNamespace(t)
	ctx := context.Background()
	cm := configMap(ns, map[string]string{config.KeyImages: "a=reg.example.com/a:1"})
	if err := k8s.Create(ctx, cm); err != nil {
		t.Fatal(err)
	}
	first := startController(t, ns, withLeaderElection("kip-le"))
	waitForImages(t, ns, dsName, "a=reg.example.com/a:1")
	second := startController(t, ns, withLeaderElection("kip-le"))

	// Both run; one leads. Changes are applied once, by the leader.
	for i, images := range []string{"a=reg.example.com/a:2", "a=reg.example.com/a:3"} {
		cm.Data[config.KeyImages] = images
		if err := k8s.Update(ctx, cm); err != nil {
			t.Fatal(err)
		}
		waitForImages(t, ns, dsName, images)
		time.Sleep(time.Second)
		if n := second.writes.Matching("/daemonsets/"); n != 0 {
			t.Fatalf("change %d: the follower wrote the DaemonSet %d times", i, n)
		}
	}
	if n := first.writes.Matching("/daemonsets/"); n != 3 {
		t.Errorf("the leader wrote the DaemonSet %d times for 3 configurations, want 3", n)
	}

	// The leader steps down; the other takes over without rewriting an
	// up-to-date DaemonSet, then applies the next change.
	electedAt := reconcileCount(t)
	first.stop(t)
	testenv.Eventually(t, 20*time.Second, "second controller leads", func() (bool, string) {
		select {
		case <-second.mgr.Elected():
			return true, ""
		default:
			return false, "not elected"
		}
	})
	// A new leader starts with a reconcile of its own; it must find the
	// DaemonSet up to date.
	waitForReconcile(t, "puller", electedAt)
	if n := second.writes.Matching("/daemonsets/"); n != 0 {
		t.Errorf("the new leader rewrote an up-to-date DaemonSet %d times", n)
	}
	cm.Data[config.KeyImages] = "a=reg.example.com/a:4"
	if err := k8s.Update(ctx, cm); err != nil {
		t.Fatal(err)
	}
	waitForImages(t, ns, dsName, "a=reg.example.com/a:4")
}

func TestShutdownKeepsDaemonSet(t *testing.T) {
	ns := newNamespace(t)
	if err := k8s.Create(context.Background(), configMap(ns, map[string]string{config.KeyImages: "a=reg.example.com/a:1"})); err != nil {
		t.Fatal(err)
	}
	run := startController(t, ns)
	before := waitForImages(t, ns, dsName, "a=reg.example.com/a:1")
	run.stop(t)

	after, err := getDaemonSet(ns, dsName)
	if apierrors.IsNotFound(err) {
		t.Fatal("the DaemonSet was deleted on shutdown")
	}
	if err != nil || after.UID != before.UID || after.ResourceVersion != before.ResourceVersion {
		t.Errorf("DaemonSet touched on shutdown (err %v)", err)
	}
	// And a restart leaves it as it is.
	since := reconcileCount(t)
	again := startController(t, ns)
	waitForReconcile(t, "puller", since)
	if n := again.writes.Matching("/daemonsets"); n != 0 {
		t.Errorf("a restart wrote the DaemonSet %d times", n)
	}
	if after, _ = getDaemonSet(ns, dsName); after.UID != before.UID {
		t.Error("a restart recreated the DaemonSet")
	}
}

// TestUninstallIsNotUndone deletes the puller Deployment: the garbage
// collector then deletes the DaemonSet (done here by hand: envtest runs no
// kube-controller-manager), and the still-running controller must not bring
// it back as an orphan.
func TestUninstallIsNotUndone(t *testing.T) {
	ns := newNamespace(t)
	ctx := context.Background()
	deploy := pullerDeployment(t, ns)
	if err := k8s.Create(ctx, configMap(ns, map[string]string{config.KeyImages: "a=reg.example.com/a:1"})); err != nil {
		t.Fatal(err)
	}
	run := startController(t, ns)
	ds := waitForImages(t, ns, dsName, "a=reg.example.com/a:1")
	if len(ds.OwnerReferences) != 1 {
		t.Fatalf("owner references %v", ds.OwnerReferences)
	}
	if err := k8s.Delete(ctx, deploy); err != nil {
		t.Fatal(err)
	}
	since := reconcileCount(t)
	if err := k8s.Delete(ctx, ds); err != nil {
		t.Fatal(err)
	}
	waitForReconcile(t, "puller", since) // the deletion wakes the controller
	if _, err := getDaemonSet(ns, dsName); !apierrors.IsNotFound(err) {
		t.Errorf("the DaemonSet came back after its Deployment was deleted (err %v)", err)
	}
	if n := run.writes.Matching("/daemonsets"); n != 1 {
		t.Errorf("%d DaemonSet writes, want only the first apply", n)
	}
}

// TestIdentityComesFromTheProcessNotTheConfigMap: a DEPLOYMENT_NAME key that
// names another Deployment neither makes the controller think it is being
// uninstalled nor changes the DaemonSet's owner; it is a warning naming both.
func TestIdentityComesFromTheProcessNotTheConfigMap(t *testing.T) {
	ns := newNamespace(t)
	ctx := context.Background()
	deploy := pullerDeployment(t, ns)
	cm := configMap(ns, map[string]string{config.KeyImages: "a=reg.example.com/a:1", config.KeyDeploymentName: "someone-else"})
	if err := k8s.Create(ctx, cm); err != nil {
		t.Fatal(err)
	}
	startController(t, ns, withOptions(func(o *Options) { o.DeploymentName = deploy.Name }))
	ds := waitForImages(t, ns, dsName, "a=reg.example.com/a:1")
	if ref := metav1.GetControllerOf(ds); ref == nil || ref.UID != deploy.UID {
		t.Errorf("DaemonSet controller %+v, want the controller's own Deployment %s", ref, deploy.UID)
	}
	waitForEvent(t, ns, ReasonConfigurationWarning, "ConfigMap", `"someone-else"`)
	if e := waitForEvent(t, ns, ReasonConfigurationWarning, "ConfigMap", deploy.Name); !strings.Contains(e.Note, config.KeyDeploymentName) {
		t.Errorf("warning %q does not name the key", e.Note)
	}
	cm.Data[config.KeyImages] = "b=reg.example.com/b:1"
	if err := k8s.Update(ctx, cm); err != nil {
		t.Fatal(err)
	}
	waitForImages(t, ns, dsName, "b=reg.example.com/b:1")
}

// TestDeletedConfigMapKeepsTheLastDaemonSet: deleting the ConfigMap does not
// fall back to the environment; the last good DaemonSet stays, the reason is
// an Event, and a recreated ConfigMap resumes.
func TestDeletedConfigMapKeepsTheLastDaemonSet(t *testing.T) {
	ns := newNamespace(t)
	ctx := context.Background()
	deploy := pullerDeployment(t, ns)
	cm := configMap(ns, map[string]string{config.KeyImages: "a=reg.example.com/a:1"})
	if err := k8s.Create(ctx, cm); err != nil {
		t.Fatal(err)
	}
	startController(t, ns, withOptions(func(o *Options) {
		o.DeploymentName = deploy.Name
		o.Env = map[string]string{config.KeyImages: "env=reg.example.com/env:1", config.KeyNamespace: ns}
	}))
	first := waitForImages(t, ns, dsName, "a=reg.example.com/a:1")
	if err := k8s.Delete(ctx, cm); err != nil {
		t.Fatal(err)
	}
	waitForEvent(t, ns, ReasonConfigMapMissing, "Deployment", cm.Name)
	ds, err := getDaemonSet(ns, dsName)
	if err != nil {
		t.Fatal(err)
	}
	if got := containerImages(ds); got != "a=reg.example.com/a:1" || ds.Generation != first.Generation {
		t.Errorf("after the ConfigMap was deleted the DaemonSet runs %s (generation %d, was %d)", got, ds.Generation, first.Generation)
	}
	if err := k8s.Create(ctx, configMap(ns, map[string]string{config.KeyImages: "b=reg.example.com/b:1"})); err != nil {
		t.Fatal(err)
	}
	waitForImages(t, ns, dsName, "b=reg.example.com/b:1")
}

// TestDaemonSetOfAnotherControllerIsNotTakenOver: a second install that
// names the same DaemonSet reports Conflict and never writes it.
func TestDaemonSetOfAnotherControllerIsNotTakenOver(t *testing.T) {
	ns := newNamespace(t)
	ctx := context.Background()
	own := pullerDeployment(t, ns)
	other := own.DeepCopy()
	other.ObjectMeta = metav1.ObjectMeta{Name: "other-puller", Namespace: ns}
	if err := k8s.Create(ctx, other); err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{"app": "other"}
	theirs := &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: dsName, Namespace: ns, Labels: map[string]string{"app.kubernetes.io/managed-by": "kip"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: other.Name, UID: other.UID, Controller: ptr.To(true)}}},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "theirs", Image: "reg.example.com/theirs:1"}}},
			},
		},
	}
	if err := k8s.Create(ctx, theirs); err != nil {
		t.Fatal(err)
	}
	if err := k8s.Create(ctx, configMap(ns, map[string]string{config.KeyImages: "a=reg.example.com/a:1"})); err != nil {
		t.Fatal(err)
	}
	run := startController(t, ns, withOptions(func(o *Options) { o.DeploymentName = own.Name }))
	waitForEvent(t, ns, ReasonConflict, "DaemonSet", "Deployment "+other.Name)
	time.Sleep(2 * time.Second)
	if n := run.writes.Matching("/daemonsets/"); n != 0 {
		t.Errorf("the DaemonSet of another controller was written %d times", n)
	}
	ds, err := getDaemonSet(ns, dsName)
	if err != nil {
		t.Fatal(err)
	}
	if got := containerImages(ds); got != "theirs=reg.example.com/theirs:1" || ds.Generation != 1 {
		t.Errorf("the other controller's DaemonSet now runs %s (generation %d)", got, ds.Generation)
	}
	if n := len(events(t, ns, ReasonConflict)); n != 1 {
		t.Errorf("%d Conflict Events for one lasting conflict, want 1", n)
	}
}

// TestRenamedDaemonSetRetiresTheOldOneWhenWarm: after DAEMONSET_NAME or
// CACHING_MODE changes, the old DaemonSet stays until the new one holds
// every image on its nodes (envtest runs no DaemonSet controller: the test
// writes the status a warm DaemonSet has), then it is removed.
func TestRenamedDaemonSetRetiresTheOldOneWhenWarm(t *testing.T) {
	for _, tc := range []struct {
		name          string
		before, after map[string]string
		oldDS, newDS  string
	}{
		{"DAEMONSET_NAME", map[string]string{config.KeyDaemonSetName: "old-name"}, map[string]string{config.KeyDaemonSetName: "new-name"}, "old-name", "new-name"},
		{"to agent mode", map[string]string{config.KeyDaemonSetName: "cache"}, map[string]string{config.KeyCachingMode: config.ModeAgent}, "cache", "cache-agent"},
		{"to daemonset mode", map[string]string{config.KeyDaemonSetName: "cache", config.KeyCachingMode: config.ModeAgent}, map[string]string{config.KeyCachingMode: config.ModeDaemonSet}, "cache-agent", "cache"},
	} {
		t.Run(tc.name, func(t *testing.T) { retiresTheOldOneWhenWarm(t, tc.before, tc.after, tc.oldDS, tc.newDS) })
	}
}

func retiresTheOldOneWhenWarm(t *testing.T, before, after map[string]string, oldDS, newDS string) {
	ns := grantedNamespace(t)
	ctx := context.Background()
	own := pullerDeployment(t, ns)
	data := map[string]string{config.KeyImages: "a=reg.example.com/a:1"}
	for k, v := range before {
		data[k] = v
	}
	cm := configMap(ns, data)
	if err := k8s.Create(ctx, cm); err != nil {
		t.Fatal(err)
	}
	startController(t, ns, withOptions(func(o *Options) { o.DeploymentName = own.Name }))
	old := waitForImages(t, ns, oldDS, "a=reg.example.com/a:1")

	for k, v := range after {
		cm.Data[k] = v
	}
	if err := k8s.Update(ctx, cm); err != nil {
		t.Fatal(err)
	}
	renamed := waitForImages(t, ns, newDS, "a=reg.example.com/a:1")
	// The sync point: two more reconciles, one begun after the new
	// DaemonSet was seen (the retirement is checked again every
	// retireCheck), each of which could have removed the old one.
	testenv.WaitForReconciles(t, "puller", reconcileCount(t), 2)
	if _, err := getDaemonSet(ns, oldDS); err != nil {
		t.Fatalf("the old DaemonSet went before the new one was warm: %v", err)
	}

	renamed.Status = appsv1.DaemonSetStatus{ObservedGeneration: renamed.Generation, DesiredNumberScheduled: 3, CurrentNumberScheduled: 3, UpdatedNumberScheduled: 3, NumberReady: 3, NumberAvailable: 3}
	if err := k8s.Status().Update(ctx, renamed); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 4*retireCheck, "the old DaemonSet removed", func() (bool, string) {
		ds, err := getDaemonSet(ns, oldDS)
		switch {
		case apierrors.IsNotFound(err):
			return true, ""
		case err != nil:
			return false, err.Error()
		}
		return ds.DeletionTimestamp != nil && ds.UID == old.UID, "still there"
	})
	waitForEvent(t, ns, ReasonRetired, "DaemonSet", "removed "+oldDS)
}

// TestInvalidEntryDoesNotBlockTheOthers: an edit that adds good entries
// and one bad one applies the good ones and names the bad one.
func TestInvalidEntryDoesNotBlockTheOthers(t *testing.T) {
	ns := newNamespace(t)
	ctx := context.Background()
	cm := configMap(ns, map[string]string{config.KeyImages: "a=reg.example.com/a:1"})
	if err := k8s.Create(ctx, cm); err != nil {
		t.Fatal(err)
	}
	startController(t, ns)
	waitForImages(t, ns, dsName, "a=reg.example.com/a:1")
	cm.Data[config.KeyImages] = "a=reg.example.com/a:1;b=reg.example.com/b:1;Bad=reg.example.com/x:1;c=reg.example.com/c:1;d=reg.example.com/d:1"
	if err := k8s.Update(ctx, cm); err != nil {
		t.Fatal(err)
	}
	waitForImages(t, ns, dsName, "a=reg.example.com/a:1;b=reg.example.com/b:1;c=reg.example.com/c:1;d=reg.example.com/d:1")
	e := waitForEvent(t, ns, ReasonInvalidImageEntries, "ConfigMap", `"Bad=reg.example.com/x:1"`)
	if !strings.Contains(e.Note, "entry 3") || !strings.Contains(e.Note, "the other 4 images are cached") {
		t.Errorf("Event %q does not name the entry's position and what is cached", e.Note)
	}
}
