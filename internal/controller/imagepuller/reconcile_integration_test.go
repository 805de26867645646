//go:build integration

package imagepuller_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kip-image-puller/kip/api/v1alpha1"
	"github.com/kip-image-puller/kip/deploy"
	"github.com/kip-image-puller/kip/internal/config"
	"github.com/kip-image-puller/kip/internal/daemonset"
	"github.com/kip-image-puller/kip/internal/dev/testenv"
	"github.com/kip-image-puller/kip/internal/manager"
	"github.com/kip-image-puller/kip/internal/operator"
	"github.com/kip-image-puller/kip/internal/privilege"
)

// The API server and etcd the tests share; see testenv.RunOperator.
var env *testenv.Env

func TestMain(m *testing.M) { os.Exit(testenv.RunOperator(m, &env)) }

func newPuller(ns, name string, spec v1alpha1.KubernetesImagePullerSpec) *v1alpha1.KubernetesImagePuller {
	return &v1alpha1.KubernetesImagePuller{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: spec}
}

// owned fetches an object and checks the resource is its controller.
func owned(t *testing.T, kip *v1alpha1.KubernetesImagePuller, name string, obj client.Object) {
	t.Helper()
	testenv.Eventually(t, 20*time.Second, "the operator creates "+name, func() (bool, string) {
		err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: kip.Namespace, Name: name}, obj)
		return err == nil, errString(err)
	})
	ref := metav1.GetControllerOf(obj)
	if ref == nil || ref.UID != kip.UID || ref.Kind != "KubernetesImagePuller" || ref.BlockOwnerDeletion == nil || !*ref.BlockOwnerDeletion {
		t.Errorf("%T %s: controller %+v, want the KubernetesImagePuller %s, blocking its deletion", obj, name, ref, kip.UID)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// markAvailable writes what the Deployment controller would once the puller runs.
func markAvailable(t *testing.T, d *appsv1.Deployment) {
	t.Helper()
	if err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(d), d); err != nil {
		t.Fatal(err)
	}
	d.Status = appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: 1, UpdatedReplicas: 1, ReadyReplicas: 1, AvailableReplicas: 1}
	if err := env.Client.Status().Update(context.Background(), d); err != nil {
		t.Fatal(err)
	}
}

// playPuller creates the DaemonSet the puller would make from the ConfigMap.
func playPuller(t *testing.T, cm *corev1.ConfigMap) *appsv1.DaemonSet {
	t.Helper()
	cfg, _, err := config.Parse(cm.Data)
	if err != nil {
		t.Fatal(err)
	}
	ds := daemonset.Build(cfg, daemonset.Options{KIPImage: testenv.OperatorPullerImage})
	env.Create(t, ds)
	return ds
}

func TestLifecycleStatusAndSpecChange(t *testing.T) {
	ctx := context.Background()
	ns := env.Namespace(t)
	testenv.StartOperator(t, env.Config, manager.Options{Namespaces: []string{ns}}, 0)
	n1, n2 := ns+"-node1", ns+"-node2"
	selector := map[string]string{"kip-test": ns}
	env.ReadyNode(t, n1, selector)
	env.ReadyNode(t, n2, selector)

	kip := newPuller(ns, "image-puller", v1alpha1.KubernetesImagePullerSpec{
		Images:       "java=reg.example.com/java:17;node=reg.example.com/node:22",
		NodeSelector: `{"kip-test": "` + ns + `"}`,
	})
	env.Create(t, kip)
	// Everything the puller needs, owned by the resource, with defaults.
	var sa corev1.ServiceAccount
	var binding rbacv1.RoleBinding
	var cm corev1.ConfigMap
	var dep appsv1.Deployment
	owned(t, kip, "kubernetes-image-puller", &sa)
	owned(t, kip, "kubernetes-image-puller", &binding)
	owned(t, kip, config.DefaultConfigMapName, &cm)
	owned(t, kip, "kubernetes-image-puller", &dep)
	if got := cm.Data[config.KeyImages]; got != kip.Spec.Images {
		t.Errorf("ConfigMap IMAGES %q, want %q", got, kip.Spec.Images)
	}
	if cm.Data[config.KeyNamespace] != ns || cm.Data[config.KeyKIPImage] != "" {
		t.Errorf("ConfigMap data %v: want NAMESPACE %s and no KIP_IMAGE", cm.Data, ns)
	}
	c := dep.Spec.Template.Spec.Containers[0]
	var configMapEnv string
	for _, e := range c.Env {
		if e.Name == "CONFIGMAP_NAME" {
			configMapEnv = e.Value
		}
	}
	if c.Image != testenv.OperatorPullerImage || dep.Spec.Template.Spec.ServiceAccountName != sa.Name || configMapEnv != cm.Name {
		t.Errorf("Deployment runs %s as %s from ConfigMap %s; want %s as %s from %s",
			c.Image, dep.Spec.Template.Spec.ServiceAccountName, configMapEnv, testenv.OperatorPullerImage, sa.Name, cm.Name)
	}
	if binding.RoleRef.Kind != "ClusterRole" || binding.RoleRef.Name != deploy.PullerClusterRole || binding.Subjects[0].Name != sa.Name {
		t.Errorf("RoleBinding %+v does not bind ClusterRole %s to %s", binding, deploy.PullerClusterRole, sa.Name)
	}
	env.WaitForCondition(t, client.ObjectKeyFromObject(kip), operator.TypeReady, metav1.ConditionFalse, operator.ReasonDeploying)

	// The puller runs and makes its DaemonSet; one node holds both images,
	// the other fails to pull one.
	markAvailable(t, &dep)
	ds := playPuller(t, &cm)
	env.WaitForCondition(t, client.ObjectKeyFromObject(kip), operator.TypeProgressing, metav1.ConditionTrue, operator.ReasonPulling)
	p1 := env.DaemonSetPod(t, ds, n1)
	p2 := env.DaemonSetPod(t, ds, n2)
	env.SetContainers(t, p1, testenv.Running("java"), testenv.Running("node"))
	env.SetContainers(t, p2, testenv.Running("java"), testenv.Waiting("node", "ImagePullBackOff", `Back-off pulling image "reg.example.com/node:22"`))
	got := env.WaitForCondition(t, client.ObjectKeyFromObject(kip), operator.TypeDegraded, metav1.ConditionTrue, operator.ReasonImagesFailing)
	if ready := findCondition(got, operator.TypeReady); ready.Status != metav1.ConditionFalse || ready.Reason != operator.ReasonImagesFailing {
		t.Errorf("Ready %+v while an image fails", ready)
	}
	if got.Status.ImagesCached != "3/4" || got.Status.NodesWarm != "1/2" || got.Status.ImagePullerImage != testenv.OperatorPullerImage {
		t.Errorf("status %+v: want 3/4 images, 1/2 nodes, puller image %s", got.Status, testenv.OperatorPullerImage)
	}
	if len(got.Status.Failing) != 1 || got.Status.Failing[0].Node != n2 || got.Status.Failing[0].Image != "reg.example.com/node:22" || got.Status.Failing[0].Name != "node" || got.Status.Failing[0].Reason != "ImagePullBackOff" {
		t.Errorf("failing %+v, want node:22 on %s with ImagePullBackOff", got.Status.Failing, n2)
	}
	if msg := findCondition(got, operator.TypeDegraded).Message; !strings.Contains(msg, n2) || !strings.Contains(msg, "reg.example.com/node:22") {
		t.Errorf("Degraded message %q names neither the node nor the image", msg)
	}

	// The image arrives: Ready, and only then.
	env.SetContainers(t, p2, testenv.Running("java"), testenv.Running("node"))
	got = env.WaitForCondition(t, client.ObjectKeyFromObject(kip), operator.TypeReady, metav1.ConditionTrue, operator.ReasonAllImagesCached)
	if got.Status.ImagesCached != "4/4" || got.Status.NodesWarm != "2/2" || len(got.Status.Failing) != 0 {
		t.Errorf("status %+v: want 4/4 images, 2/2 nodes, nothing failing", got.Status)
	}
	if d := findCondition(got, operator.TypeDegraded); d.Status != metav1.ConditionFalse || got.Status.ObservedGeneration != got.Generation {
		t.Errorf("Degraded %+v, observedGeneration %d of %d", d, got.Status.ObservedGeneration, got.Generation)
	}

	// A spec change reaches the ConfigMap and the Deployment in place, and
	// the resource is not Ready until the puller has applied it.
	editSpec(t, kip, func(s *v1alpha1.KubernetesImagePullerSpec) {
		s.Images = "java=reg.example.com/java:21"
		s.ImagePullerImage = "registry.example.com/kip:v2"
	})
	// The Deployment rolls to the new image, then the puller applies the
	// new configuration: Ready=False all along.
	env.WaitForCondition(t, client.ObjectKeyFromObject(kip), operator.TypeReady, metav1.ConditionFalse, operator.ReasonDeploying)
	markAvailable(t, &dep)
	env.WaitForCondition(t, client.ObjectKeyFromObject(kip), operator.TypeReady, metav1.ConditionFalse, operator.ReasonApplying)
	var cm2 corev1.ConfigMap
	var dep2 appsv1.Deployment
	testenv.Eventually(t, 20*time.Second, "ConfigMap and Deployment updated", func() (bool, string) {
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(&cm), &cm2); err != nil {
			return false, err.Error()
		}
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(&dep), &dep2); err != nil {
			return false, err.Error()
		}
		img := dep2.Spec.Template.Spec.Containers[0].Image
		return cm2.Data[config.KeyImages] == "java=reg.example.com/java:21" && cm2.Data[config.KeyKIPImage] == "registry.example.com/kip:v2" && img == "registry.example.com/kip:v2",
			"IMAGES " + cm2.Data[config.KeyImages] + ", KIP_IMAGE " + cm2.Data[config.KeyKIPImage] + ", image " + img
	})
	if cm2.UID != cm.UID || dep2.UID != dep.UID {
		t.Error("the ConfigMap or the Deployment was recreated; a spec change must update them in place")
	}
}

// editSpec changes a resource's spec as a user would, retrying when the
// operator wrote its status in between.
func editSpec(t *testing.T, kip *v1alpha1.KubernetesImagePuller, edit func(*v1alpha1.KubernetesImagePullerSpec)) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var cur v1alpha1.KubernetesImagePuller
		if err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(kip), &cur); err != nil {
			return err
		}
		edit(&cur.Spec)
		return env.Client.Update(context.Background(), &cur)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func findCondition(kip *v1alpha1.KubernetesImagePuller, typ string) metav1.Condition {
	for _, c := range kip.Status.Conditions {
		if c.Type == typ {
			return c
		}
	}
	return metav1.Condition{}
}

func TestIdleOperatorMakesNoWrites(t *testing.T) {
	ns := env.Namespace(t)
	writes := testenv.StartOperator(t, env.Config, manager.Options{Namespaces: []string{ns}}, 2*time.Second)
	kip := newPuller(ns, "image-puller", v1alpha1.KubernetesImagePullerSpec{Images: "a=reg.example.com/a:1"})
	env.Create(t, kip)
	env.WaitForCondition(t, client.ObjectKeyFromObject(kip), operator.TypeProgressing, metav1.ConditionTrue, operator.ReasonDeploying)
	time.Sleep(2 * time.Second) // the status writes of the first reconciles settle
	writes.Reset()
	before := testenv.ReconcileCount(t, "kubernetesimagepuller")
	time.Sleep(7 * time.Second) // over three resyncs
	// The sync point: the operator did look, several times.
	if n := testenv.ReconcileCount(t, "kubernetesimagepuller") - before; n < 2 {
		t.Errorf("%v reconciles while idle; the 2 s resync should have caused several", n)
	}
	if w := writes.Count(false); len(w) != 0 {
		t.Errorf("writes while nothing changed: %v", w)
	}
}

func TestSecondResourceInNamespaceConflicts(t *testing.T) {
	ctx := context.Background()
	ns := env.Namespace(t)
	testenv.StartOperator(t, env.Config, manager.Options{Namespaces: []string{ns}}, 0)
	first := newPuller(ns, "first", v1alpha1.KubernetesImagePullerSpec{Images: "a=reg.example.com/a:1"})
	env.Create(t, first)
	env.WaitForCondition(t, client.ObjectKeyFromObject(first), operator.TypeProgressing, metav1.ConditionTrue, operator.ReasonDeploying)
	second := newPuller(ns, "second", v1alpha1.KubernetesImagePullerSpec{Images: "b=reg.example.com/b:1", ConfigMapName: "second", DeploymentName: "second"})
	env.Create(t, second)
	got := env.WaitForCondition(t, client.ObjectKeyFromObject(second), operator.TypeReady, metav1.ConditionFalse, operator.ReasonConflict)
	if msg := findCondition(got, operator.TypeReady).Message; !strings.Contains(msg, "first") {
		t.Errorf("Conflict message %q does not name the resource that holds the namespace", msg)
	}
	if d := findCondition(got, operator.TypeDegraded); d.Status != metav1.ConditionTrue || d.Reason != operator.ReasonConflict {
		t.Errorf("Degraded %+v, want True Conflict", d)
	}
	for _, obj := range []client.Object{&corev1.ConfigMap{}, &appsv1.Deployment{}, &corev1.ServiceAccount{}} {
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "second"}, obj); !apierrors.IsNotFound(err) {
			t.Errorf("%T second: %v; the conflicting resource must create nothing", obj, err)
		}
	}
	// The first one is unaffected.
	env.WaitForCondition(t, client.ObjectKeyFromObject(first), operator.TypeProgressing, metav1.ConditionTrue, operator.ReasonDeploying)

	// Once the first is gone, the second takes the namespace over.
	if err := env.Client.Delete(ctx, first); err != nil {
		t.Fatal(err)
	}
	env.WaitForCondition(t, client.ObjectKeyFromObject(second), operator.TypeProgressing, metav1.ConditionTrue, operator.ReasonDeploying)
	owned(t, second, "second", &corev1.ConfigMap{})
}

func TestInvalidSpecKeepsTheLastGoodState(t *testing.T) {
	ctx := context.Background()
	ns := env.Namespace(t)
	testenv.StartOperator(t, env.Config, manager.Options{Namespaces: []string{ns}}, 0)
	kip := newPuller(ns, "image-puller", v1alpha1.KubernetesImagePullerSpec{Images: "a=reg.example.com/a:1"})
	env.Create(t, kip)
	var cm corev1.ConfigMap
	owned(t, kip, config.DefaultConfigMapName, &cm)

	editSpec(t, kip, func(s *v1alpha1.KubernetesImagePullerSpec) {
		s.Images = "Bad Name=reg.example.com/a:2"
		s.CachingMemoryLimit = "lots"
	})
	got := env.WaitForCondition(t, client.ObjectKeyFromObject(kip), operator.TypeDegraded, metav1.ConditionTrue, operator.ReasonInvalidSpec)
	msg := findCondition(got, operator.TypeDegraded).Message
	for _, want := range []string{"spec.images (IMAGES)", "Bad Name", "spec.cachingMemoryLimit (CACHING_MEMORY_LIMIT)", `"lots"`} {
		if !strings.Contains(msg, want) {
			t.Errorf("Degraded message %q lacks %q", msg, want)
		}
	}
	if r := findCondition(got, operator.TypeReady); r.Status != metav1.ConditionFalse || r.Reason != operator.ReasonInvalidSpec {
		t.Errorf("Ready %+v, want False InvalidSpec", r)
	}
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(&cm), &cm); err != nil {
		t.Fatal(err)
	}
	if cm.Data[config.KeyImages] != "a=reg.example.com/a:1" || cm.Data[config.KeyMemoryLimit] != "" {
		t.Errorf("ConfigMap changed to %v; the last good configuration must stay", cm.Data)
	}
}

func TestWatchNamespaceLimitsTheOperator(t *testing.T) {
	ctx := context.Background()
	watched, other := env.Namespace(t), env.Namespace(t)
	testenv.StartOperator(t, env.Config, manager.Options{Namespaces: []string{watched}}, 0)
	outside := newPuller(other, "image-puller", v1alpha1.KubernetesImagePullerSpec{Images: "a=reg.example.com/a:1"})
	inside := newPuller(watched, "image-puller", v1alpha1.KubernetesImagePullerSpec{Images: "a=reg.example.com/a:1"})
	for _, k := range []*v1alpha1.KubernetesImagePuller{outside, inside} {
		env.Create(t, k)
	}
	env.WaitForCondition(t, client.ObjectKeyFromObject(inside), operator.TypeProgressing, metav1.ConditionTrue, operator.ReasonDeploying)
	// The sync point is that condition: the resource outside was created
	// first, so a watch on its namespace would have queued it before the
	// one inside was even created.
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: other, Name: config.DefaultConfigMapName}, &corev1.ConfigMap{}); !apierrors.IsNotFound(err) {
		t.Errorf("ConfigMap in the unwatched namespace: %v", err)
	}
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(outside), outside); err != nil || len(outside.Status.Conditions) != 0 {
		t.Errorf("the resource in the unwatched namespace got status %+v (%v)", outside.Status, err)
	}
}

func TestRenamedObjectsReplaceTheOldOnes(t *testing.T) {
	ctx := context.Background()
	ns := env.Namespace(t)
	testenv.StartOperator(t, env.Config, manager.Options{Namespaces: []string{ns}}, 0)
	kip := newPuller(ns, "image-puller", v1alpha1.KubernetesImagePullerSpec{Images: "a=reg.example.com/a:1"})
	env.Create(t, kip)
	owned(t, kip, "kubernetes-image-puller", &appsv1.Deployment{})
	owned(t, kip, config.DefaultConfigMapName, &corev1.ConfigMap{})
	// Unrelated objects in the namespace stay whatever happens.
	bystander := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "bystander", Namespace: ns}}
	env.Create(t, bystander)

	editSpec(t, kip, func(s *v1alpha1.KubernetesImagePullerSpec) {
		s.DeploymentName = "puller"
		s.ConfigMapName = "puller-config"
	})
	owned(t, kip, "puller", &appsv1.Deployment{})
	owned(t, kip, "puller", &rbacv1.RoleBinding{})
	owned(t, kip, "puller-config", &corev1.ConfigMap{})
	testenv.Eventually(t, 20*time.Second, "the old Deployment, ServiceAccount, Role, RoleBinding and ConfigMap deleted", func() (bool, string) {
		for _, obj := range []client.Object{&appsv1.Deployment{}, &corev1.ServiceAccount{}, &rbacv1.Role{}, &rbacv1.RoleBinding{}} {
			if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "kubernetes-image-puller"}, obj); !apierrors.IsNotFound(err) {
				return false, fmt.Sprintf("%T kubernetes-image-puller: %v", obj, err)
			}
		}
		err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: config.DefaultConfigMapName}, &corev1.ConfigMap{})
		return apierrors.IsNotFound(err), fmt.Sprintf("ConfigMap %s: %v", config.DefaultConfigMapName, err)
	})
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(bystander), bystander); err != nil {
		t.Errorf("an unrelated ConfigMap: %v", err)
	}
}

// TestPullerRefusalIsAnInvalidSpec: when the puller reports that the API
// server refused the configuration the operator applied (an Event carrying
// its fingerprint, as the puller records it), the resource says
// InvalidSpec; a new spec clears it.
func TestPullerRefusalIsAnInvalidSpec(t *testing.T) {
	ns := env.Namespace(t)
	testenv.StartOperator(t, env.Config, manager.Options{Namespaces: []string{ns}}, 0)
	kip := newPuller(ns, "image-puller", v1alpha1.KubernetesImagePullerSpec{Images: "a=reg.example.com/a:1", NodeSelector: `{"forbidden": "yes"}`})
	env.Create(t, kip)
	var cm corev1.ConfigMap
	owned(t, kip, config.DefaultConfigMapName, &cm)
	refused := &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{Name: "refused", Namespace: ns,
			Annotations: map[string]string{config.AnnotationFingerprint: config.Fingerprint(cm.Data)}},
		InvolvedObject: corev1.ObjectReference{Kind: "ConfigMap", Name: cm.Name, Namespace: ns, UID: cm.UID},
		Reason:         config.ReasonInvalidConfiguration, Type: corev1.EventTypeWarning,
		Message:       "NODE_SELECTOR: refused by a policy; the last applied DaemonSet stays in place",
		LastTimestamp: metav1.Now(),
	}
	env.Create(t, refused)
	got := env.WaitForCondition(t, client.ObjectKeyFromObject(kip), operator.TypeDegraded, metav1.ConditionTrue, operator.ReasonInvalidSpec)
	if msg := findCondition(got, operator.TypeDegraded).Message; !strings.Contains(msg, "refused by a policy") {
		t.Errorf("Degraded message %q does not carry the puller's report", msg)
	}
	editSpec(t, kip, func(s *v1alpha1.KubernetesImagePullerSpec) { s.NodeSelector = "" })
	env.WaitForCondition(t, client.ObjectKeyFromObject(kip), operator.TypeDegraded, metav1.ConditionFalse, operator.ReasonAsExpected)
}

// TestForeignDeploymentIsNeverAdopted: deploymentName naming a Deployment
// the operator did not make (here, the workspace platform's own) does not
// aim the operator's apply at it: the Deployment stays as it was, and the
// resource says why, in its Degraded condition and a Warning Event.
func TestForeignDeploymentIsNeverAdopted(t *testing.T) {
	ctx := context.Background()
	ns := env.Namespace(t)
	one := int32(1)
	victim := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "che", Namespace: ns, Labels: map[string]string{"app.kubernetes.io/name": "che"}},
		Spec: appsv1.DeploymentSpec{
			Replicas: &one,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "che"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "che"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "che", Image: "quay.io/eclipse/che-server:7"}}},
			},
		},
	}
	env.Create(t, victim)
	testenv.StartOperator(t, env.Config, manager.Options{Namespaces: []string{ns}}, 0)
	kip := newPuller(ns, "image-puller", v1alpha1.KubernetesImagePullerSpec{Images: "a=reg.example.com/a:1", DeploymentName: "che"})
	env.Create(t, kip)

	got := env.WaitForCondition(t, client.ObjectKeyFromObject(kip), operator.TypeDegraded, metav1.ConditionTrue, operator.ReasonApplyFailed)
	if msg := findCondition(got, operator.TypeDegraded).Message; !strings.Contains(msg, "Deployment che already exists and is not the operator's") {
		t.Errorf("Degraded message %q does not name the foreign Deployment", msg)
	}
	testenv.Eventually(t, 20*time.Second, "a ForeignObject Event on the resource", func() (bool, string) {
		var list corev1.EventList
		if err := env.Client.List(ctx, &list, client.InNamespace(ns)); err != nil {
			return false, err.Error()
		}
		for _, e := range list.Items {
			if e.InvolvedObject.UID == got.UID && e.Reason == "ForeignObject" && e.Type == corev1.EventTypeWarning && strings.Contains(e.Message, "Deployment che") {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d events, none ForeignObject", len(list.Items))
	})
	var after appsv1.Deployment
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(victim), &after); err != nil {
		t.Fatal(err)
	}
	if after.Generation != 1 || after.Spec.Template.Spec.Containers[0].Image != "quay.io/eclipse/che-server:7" || len(after.OwnerReferences) != 0 ||
		after.Labels["app.kubernetes.io/managed-by"] != "" {
		t.Errorf("the foreign Deployment was written: generation %d, image %s, owners %v, labels %v",
			after.Generation, after.Spec.Template.Spec.Containers[0].Image, after.OwnerReferences, after.Labels)
	}
}

// TestRefusedPrivilegeIsACondition: agent mode asked in a namespace no
// cluster admin granted it: the resource says PrivilegeGranted=False,
// naming the key and the label, while daemonset mode is applied; once an
// admin labels the namespace, the condition goes (the operator looks
// again every RetryAfter: it does not watch Namespaces).
func TestRefusedPrivilegeIsACondition(t *testing.T) {
	ctx := context.Background()
	ns := env.Namespace(t)
	testenv.StartOperator(t, env.Config, manager.Options{Namespaces: []string{ns}, RetryAfter: time.Second}, 0)
	kip := newPuller(ns, "image-puller", v1alpha1.KubernetesImagePullerSpec{Images: "a=reg.example.com/a:1", CachingMode: config.ModeAgent})
	env.Create(t, kip)
	got := env.WaitForCondition(t, client.ObjectKeyFromObject(kip), operator.TypePrivilegeGranted, metav1.ConditionFalse, operator.ReasonPrivilegeNotGranted)
	if msg := findCondition(got, operator.TypePrivilegeGranted).Message; !strings.Contains(msg, config.KeyCachingMode) || !strings.Contains(msg, privilege.LabelAgentMode+"=allowed") {
		t.Errorf("PrivilegeGranted message %q does not name the key and the label", msg)
	}
	patch := fmt.Sprintf(`{"metadata":{"labels":{%q:%q}}}`, privilege.LabelAgentMode, privilege.Allowed)
	if err := env.Client.Patch(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, client.RawPatch(types.MergePatchType, []byte(patch))); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 20*time.Second, "PrivilegeGranted gone once granted", func() (bool, string) {
		var k v1alpha1.KubernetesImagePuller
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(kip), &k); err != nil {
			return false, err.Error()
		}
		c := findCondition(&k, operator.TypePrivilegeGranted)
		return c.Type == "", fmt.Sprintf("%+v", c)
	})
}
