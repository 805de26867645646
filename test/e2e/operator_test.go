//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/kip-image-puller/kip/api/v1alpha1"
	"github.com/kip-image-puller/kip/deploy"
	"github.com/kip-image-puller/kip/internal/config"
	"github.com/kip-image-puller/kip/internal/daemonset"
	"github.com/kip-image-puller/kip/internal/dev/bundle"
	"github.com/kip-image-puller/kip/internal/dev/imagebuild"
	"github.com/kip-image-puller/kip/internal/dev/localcluster"
	"github.com/kip-image-puller/kip/internal/dev/testenv"
	"github.com/kip-image-puller/kip/internal/manager"
	"github.com/kip-image-puller/kip/internal/nodewarm"
	"github.com/kip-image-puller/kip/internal/operator"
	"github.com/kip-image-puller/kip/internal/privilege"
)

var operatorOnce struct {
	sync.Once
	c   client.Client
	err error
}

// installOperator installs the operator once, as `kubectl apply -k
// deploy/operator` does, with the image the tests pushed, after the
// CheCluster CRD, so the operator starts with the CheCluster switch on.
func installOperator(t *testing.T) client.Client {
	t.Helper()
	operatorOnce.Do(func() {
		operatorOnce.c, operatorOnce.err = doInstallOperator()
	})
	if operatorOnce.err != nil {
		t.Fatal(operatorOnce.err)
	}
	return operatorOnce.c
}

func doInstallOperator() (client.Client, error) {
	crd, err := testenv.CheClusterCRD()
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(crd)
	if err != nil {
		return nil, err
	}
	if _, err := cluster.RunKubectl(string(data), "apply", "--server-side", "-f", "-"); err != nil {
		return nil, err
	}
	objs, err := bundle.Render(filepath.Join(cluster.root, "deploy", "operator"))
	if err != nil {
		return nil, err
	}
	var docs []string
	for i := range objs {
		doc, err := yaml.Marshal(objs[i].Object)
		if err != nil {
			return nil, err
		}
		docs = append(docs, string(doc))
	}
	// The image the tests pushed, as `kustomize edit set image` would.
	manifests := strings.ReplaceAll(strings.Join(docs, "---\n"), "image: ghcr.io/kip-image-puller/kip:latest", "image: "+cluster.kipRepo+":"+cluster.kipTag)
	if !strings.Contains(manifests, "image: "+cluster.kipRepo) {
		return nil, fmt.Errorf("the operator Deployment does not run ghcr.io/kip-image-puller/kip:latest; update the test")
	}
	if _, err := cluster.RunKubectl(manifests, "apply", "--server-side", "-f", "-"); err != nil {
		return nil, err
	}
	// The test bed's per-node runtime sockets, allowed as the operator's
	// installer would allow them.
	if _, err := cluster.RunKubectl("", "-n", "kip-operator", "set", "env", "deployment/kip-operator", "KIP_CRI_SOCKET_ALLOW="+cluster.SocketPattern()); err != nil {
		return nil, err
	}
	if _, err := cluster.RunKubectl("", "-n", "kip-operator", "rollout", "status", "deployment/kip-operator", "--timeout", "180s"); err != nil {
		return nil, err
	}
	rc, err := clientcmd.BuildConfigFromFlags("", cluster.Kubeconfig)
	if err != nil {
		return nil, err
	}
	scheme, err := manager.Scheme()
	if err != nil {
		return nil, err
	}
	return client.New(rc, client.Options{Scheme: scheme})
}

// pullerResource is a KubernetesImagePuller named image-puller that caches
// entries, with more spec fields, one "field: value" per line.
func pullerResource(entries []string, spec string) string {
	var more strings.Builder
	for _, line := range strings.Split(strings.TrimSpace(spec), "\n") {
		if line != "" {
			more.WriteString("  " + line + "\n")
		}
	}
	return fmt.Sprintf("apiVersion: che.eclipse.org/v1alpha1\nkind: KubernetesImagePuller\nmetadata:\n  name: image-puller\nspec:\n  images: %q\n%s",
		strings.Join(entries, ";"), more.String())
}

// applyUntilReady applies manifest in key's namespace, waits until every
// node holds the images of entries and the resource key says Ready=True, and
// logs how long each took.
func applyUntilReady(t *testing.T, c client.Client, manifest string, key client.ObjectKey, entries []string) *v1alpha1.KubernetesImagePuller {
	t.Helper()
	start := time.Now()
	kubectl(t, manifest, "apply", "-n", key.Namespace, "-f", "-")
	waitCached(t, entries, cluster.Nodes, nil)
	cached := time.Since(start)
	got := waitReady(t, c, key)
	t.Logf("from kubectl apply: every node holds the images after %v, Ready=True after %v", cached.Round(time.Second), time.Since(start).Round(time.Second))
	return got
}

// waitReady waits until the resource says Ready=True.
func waitReady(t *testing.T, c client.Client, key client.ObjectKey) *v1alpha1.KubernetesImagePuller {
	t.Helper()
	var kip v1alpha1.KubernetesImagePuller
	eventually(t, 4*time.Minute, key.String()+" Ready=True", func() (bool, string) {
		if err := c.Get(context.Background(), key, &kip); err != nil {
			return false, err.Error()
		}
		r := meta.FindStatusCondition(kip.Status.Conditions, operator.TypeReady)
		if r == nil {
			return false, "no Ready condition"
		}
		return r.Status == metav1.ConditionTrue, fmt.Sprintf("Ready=%s %s: %s", r.Status, r.Reason, r.Message)
	})
	return &kip
}

// TestOperatorCachesTheDocumentedExample applies a KubernetesImagePuller as
// the documented example does, with two local images, and waits until every
// node holds both and the resource says Ready=True; then one failing image is
// named in its status, and deleting the resource removes everything.
func TestOperatorCachesTheDocumentedExample(t *testing.T) {
	c := installOperator(t)
	ns := namespace(t)
	entries := pushSamples(t, "op", 2, false)
	kip := pullerResource(entries, "")
	key := client.ObjectKey{Namespace: ns, Name: "image-puller"}
	got := applyUntilReady(t, c, kip, key, entries)
	want := fmt.Sprintf("%d/%d", 2*len(cluster.Nodes), 2*len(cluster.Nodes))
	if got.Status.ImagesCached != want || got.Status.NodesWarm != fmt.Sprintf("%d/%d", len(cluster.Nodes), len(cluster.Nodes)) ||
		!strings.HasPrefix(got.Status.ImagePullerImage, cluster.kipRepo+"@sha256:") {
		t.Errorf("status %+v: want %s images, all nodes warm, the operator's own image %s by digest", got.Status, want, cluster.kipRepo)
	}
	t.Logf("kubectl get kubernetesimagepullers -n %s\n%s", ns, kubectl(t, "", "get", "kubernetesimagepullers", "-n", ns))

	// One image that cannot be pulled: named, by node, in the status.
	missing := "missing=" + cluster.Registry + "/e2e/not-pushed:v1"
	kubectl(t, "", "patch", "kubernetesimagepuller", "image-puller", "-n", ns, "--type", "merge",
		"-p", fmt.Sprintf(`{"spec": {"images": %q}}`, strings.Join(append(entries, missing), ";")))
	eventually(t, 3*time.Minute, "the missing image named on every node", func() (bool, string) {
		if err := c.Get(context.Background(), key, got); err != nil {
			return false, err.Error()
		}
		d := meta.FindStatusCondition(got.Status.Conditions, operator.TypeDegraded)
		nodes := map[string]bool{}
		for _, f := range got.Status.Failing {
			if f.Name == "missing" && f.Image == cluster.Registry+"/e2e/not-pushed:v1" {
				nodes[f.Node] = true
			}
		}
		return d != nil && d.Reason == operator.ReasonImagesFailing && len(nodes) == len(cluster.Nodes) && len(got.Status.Failing) == len(cluster.Nodes),
			fmt.Sprintf("failing %+v, Degraded %+v", got.Status.Failing, d)
	})
	t.Logf("kubectl get kubernetesimagepullers -n %s\n%s", ns, kubectl(t, "", "get", "kubernetesimagepullers", "-n", ns))
	t.Logf("status with one failing image:\n%s", kubectl(t, "", "get", "kubernetesimagepuller", "image-puller", "-n", ns, "-o", "jsonpath={.status}"))

	// Deleting the resource removes what it owns, the DaemonSet with them.
	kubectl(t, "", "delete", "kubernetesimagepuller", "image-puller", "-n", ns)
	waitGone(t, c, ns)
}

// TestOperatorPullSecretIsMounted: an operator-run puller holds no Secret
// permission; the pull secret the resource names is mounted into its pod,
// and its refresh resolves the private tag with it (the digest is recorded
// on the DaemonSet) while the kubelet pulls the image with the same secret.
func TestOperatorPullSecretIsMounted(t *testing.T) {
	c := installOperator(t)
	ns := namespace(t)
	entries := pushSamples(t, "opsecret", 1, true)
	createPullSecret(t, ns, "regcred")
	kip := pullerResource(entries, "imagePullSecrets: regcred\n")
	applyUntilReady(t, c, kip, client.ObjectKey{Namespace: ns, Name: "image-puller"}, entries)
	// can-i exits 1 when it answers no: the answer is what counts.
	if out, _ := cluster.RunKubectl("", "auth", "can-i", "get", "secrets", "-n", ns, "--as", "system:serviceaccount:"+ns+":kubernetes-image-puller"); strings.TrimSpace(out) != "no" {
		t.Errorf("the operator-run puller may read Secrets: %q", out)
	}
	ref := refsOf(entries)[0]
	eventually(t, 2*time.Minute, "the private tag's digest recorded", func() (bool, string) {
		var ds appsv1.DaemonSet
		if err := c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "kubernetes-image-puller"}, &ds); err != nil {
			return false, err.Error()
		}
		recorded := ds.Annotations[daemonset.AnnotationDigests]
		return strings.Contains(recorded, ref), recorded
	})
}

// TestOperatorAgentMode: a KubernetesImagePuller with cachingMode: agent,
// in a privileged namespace: the operator binds the agents' ClusterRole to
// their ServiceAccount there, every node holds the images, pinned where
// the runtime pins, and the resource says Ready=True with the same counts
// as in daemonset mode; back to daemonset mode, the agents go.
func TestOperatorAgentMode(t *testing.T) {
	c := installOperator(t)
	ns := namespaceAt(t, "privileged")
	entries := pushSamples(t, "opagent", 2, false)
	kip := pullerResource(entries, fmt.Sprintf("cachingMode: agent\ncriSocket: %q\npullParallelism: \"8\"\n", cluster.SocketPattern()))
	key := client.ObjectKey{Namespace: ns, Name: "image-puller"}
	got := applyUntilReady(t, c, kip, key, entries)
	n := len(cluster.Nodes)
	if got.Status.ImagesCached != fmt.Sprintf("%d/%d", 2*n, 2*n) || got.Status.NodesWarm != fmt.Sprintf("%d/%d", n, n) {
		t.Errorf("status %+v: want every image on every node", got.Status)
	}
	var binding rbacv1.RoleBinding
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: daemonset.AgentServiceAccount}, &binding); err != nil {
		t.Fatalf("the agents' RoleBinding: %v", err)
	}
	if binding.RoleRef.Kind != "ClusterRole" || binding.RoleRef.Name != deploy.AgentClusterRole {
		t.Errorf("the agents' RoleBinding binds %+v", binding.RoleRef)
	}
	var ds appsv1.DaemonSet
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: dsName + config.AgentSuffix}, &ds); err != nil {
		t.Fatalf("the agents' DaemonSet: %v", err)
	}
	if args := strings.Join(ds.Spec.Template.Spec.Containers[0].Args, " "); !strings.Contains(args, "--parallelism=8") {
		t.Errorf("agent args %q: want pullParallelism 8", args)
	}
	for _, node := range pinningNodes(t) {
		pinned := pinnedOn(t, node)
		for _, ref := range refsOf(entries) {
			if !pinned[ref] {
				t.Errorf("%s: %s not pinned", node, ref)
			}
		}
	}
	t.Logf("kubectl get kubernetesimagepullers -n %s\n%s", ns, kubectl(t, "", "get", "kubernetesimagepullers", "-n", ns))

	kubectl(t, "", "patch", "kubernetesimagepuller", "image-puller", "-n", ns, "--type", "merge", "-p", `{"spec": {"cachingMode": "daemonset"}}`)
	eventually(t, 3*time.Minute, "back to daemonset mode: the agents' DaemonSet retired", func() (bool, string) {
		err := c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: dsName + config.AgentSuffix}, &appsv1.DaemonSet{})
		return apierrors.IsNotFound(err), fmt.Sprint(err)
	})
	waitCached(t, entries, cluster.Nodes, nil)
	waitReady(t, c, key)
}

// TestOperatorNodeCondition: nodeCondition on a KubernetesImagePuller binds
// the node condition's ClusterRole to its puller, which then keeps
// kip.dev/ImagesCached on every node; deleting the resource removes the
// binding, which no owner reference could.
func TestOperatorNodeCondition(t *testing.T) {
	c := installOperator(t)
	ns := namespaceAt(t, "restricted", privilege.LabelNodeWrites)
	forgetNodeCondition(t, ns)
	entries := pushSamples(t, "opcond", 3, false)
	kip := pullerResource(entries, "nodeCondition: \"true\"\n")
	key := client.ObjectKey{Namespace: ns, Name: "image-puller"}
	applyUntilReady(t, c, kip, key, entries)
	binding := operator.NodeBindingName(ns, "image-puller", deploy.NodeConditionClusterRole)
	if err := c.Get(context.Background(), client.ObjectKey{Name: binding}, &rbacv1.ClusterRoleBinding{}); err != nil {
		t.Errorf("the node condition's ClusterRoleBinding: %v", err)
	}
	for _, name := range cluster.Nodes {
		eventually(t, time.Minute, name+": "+string(nodewarm.ConditionType)+"=True for these 3 images", func() (bool, string) {
			n, err := getNode(t, name)
			if err != nil {
				return false, err.Error()
			}
			cond := nodewarm.Current(n)
			return cond != nil && cond.Status == corev1.ConditionTrue && strings.HasPrefix(cond.Message, "3/3 cached; kept by "+ns+"/"), fmt.Sprintf("%+v", cond)
		})
	}
	kubectl(t, "", "delete", "kubernetesimagepuller", "image-puller", "-n", ns)
	eventually(t, time.Minute, "the ClusterRoleBinding removed with the resource", func() (bool, string) {
		err := c.Get(context.Background(), client.ObjectKey{Name: binding}, &rbacv1.ClusterRoleBinding{})
		return apierrors.IsNotFound(err), fmt.Sprint(err)
	})
}

// waitResourceGone waits until the KubernetesImagePuller key is gone.
func waitResourceGone(t *testing.T, c client.Client, key client.ObjectKey, timeout time.Duration) {
	t.Helper()
	eventually(t, timeout, key.String()+" removed", func() (bool, string) {
		err := c.Get(context.Background(), key, &v1alpha1.KubernetesImagePuller{})
		return apierrors.IsNotFound(err), fmt.Sprint(err)
	})
}

// waitGone waits until the puller's Deployment and DaemonSet are gone from ns.
func waitGone(t *testing.T, c client.Client, ns string) {
	t.Helper()
	eventually(t, 2*time.Minute, "the puller Deployment and DaemonSet removed", func() (bool, string) {
		errDep := c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "kubernetes-image-puller"}, &appsv1.Deployment{})
		errDS := c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "kubernetes-image-puller"}, &appsv1.DaemonSet{})
		return apierrors.IsNotFound(errDep) && apierrors.IsNotFound(errDS), fmt.Sprintf("Deployment: %v; DaemonSet: %v", errDep, errDS)
	})
}

// TestCheClusterSwitch enables the image puller on a CheCluster with its own
// images: the <name>-image-puller resource caches them on every node and
// says Ready=True; enable: false removes everything.
func TestCheClusterSwitch(t *testing.T) {
	c := installOperator(t)
	ns := namespace(t)
	entries := pushSamples(t, "che", 2, false)
	cc := fmt.Sprintf(`apiVersion: org.eclipse.che/v2
kind: CheCluster
metadata:
  name: devspaces
spec:
  components:
    imagePuller:
      enable: true
      spec:
        images: %q
`, strings.Join(entries, ";"))
	key := client.ObjectKey{Namespace: ns, Name: "devspaces-image-puller"}
	got := applyUntilReady(t, c, cc, key, entries)
	if got.Labels["app.kubernetes.io/part-of"] != "che.eclipse.org" || metav1.GetControllerOf(got) == nil || metav1.GetControllerOf(got).Kind != "CheCluster" {
		t.Errorf("resource %s: labels %v, controller %+v", key, got.Labels, metav1.GetControllerOf(got))
	}
	t.Logf("kubectl get kubernetesimagepullers -n %s\n%s", ns, kubectl(t, "", "get", "kubernetesimagepullers", "-n", ns))

	kubectl(t, "", "patch", "checluster", "devspaces", "-n", ns, "--type", "merge", "-p", `{"spec": {"components": {"imagePuller": {"enable": false}}}}`)
	waitResourceGone(t, c, key, time.Minute)
	waitGone(t, c, ns)

	// Enabled again, then the CheCluster deleted: the bridged resource and
	// the puller's objects go through the garbage collector.
	kubectl(t, "", "patch", "checluster", "devspaces", "-n", ns, "--type", "merge", "-p", `{"spec": {"components": {"imagePuller": {"enable": true}}}}`)
	waitReady(t, c, key)
	kubectl(t, "", "delete", "checluster", "devspaces", "-n", ns)
	waitResourceGone(t, c, key, 2*time.Minute)
	waitGone(t, c, ns)
}

// condition reads the resource's condition typ.
func condition(t *testing.T, c client.Client, key client.ObjectKey, typ string) (*v1alpha1.KubernetesImagePuller, *metav1.Condition) {
	t.Helper()
	var kip v1alpha1.KubernetesImagePuller
	if err := c.Get(context.Background(), key, &kip); err != nil {
		t.Fatal(err)
	}
	return &kip, meta.FindStatusCondition(kip.Status.Conditions, typ)
}

// TestOperatorOnALiveCluster: a tag bump that keeps the entry names is
// Ready only once every node holds the new references; an invalid spec
// keeps the objects last applied; a second resource in the namespace gets
// Conflict.
func TestOperatorOnALiveCluster(t *testing.T) {
	c := installOperator(t)
	ns := namespace(t)
	entries := pushSamples(t, "bump", 2, false)
	key := client.ObjectKey{Namespace: ns, Name: "image-puller"}
	manifest := func(images []string) string { return pullerResource(images, "") }
	applyUntilReady(t, c, manifest(entries), key, entries)

	// The same names, new tags.
	sleep, err := imagebuild.FileFromDisk(filepath.Join(cluster.root, "bin", "kip-sleep"), "/bin/sleep", 0o755)
	if err != nil {
		t.Fatal(err)
	}
	var bumped []string
	for _, e := range entries {
		name, ref, _ := strings.Cut(e, "=")
		v2 := strings.TrimSuffix(ref, ":v1") + ":v2"
		pushImage(t, cluster.RegistryPush+strings.TrimPrefix(v2, cluster.Registry), authn.Anonymous, sleep)
		bumped = append(bumped, name+"="+v2)
	}
	kubectl(t, manifest(bumped), "apply", "-n", ns, "-f", "-")
	eventually(t, 4*time.Minute, "Ready=True for the new tags, only once every node holds them", func() (bool, string) {
		kip, ready := condition(t, c, key, operator.TypeReady)
		if ready == nil || ready.Status != metav1.ConditionTrue || ready.ObservedGeneration != kip.Generation {
			return false, fmt.Sprintf("Ready %+v", ready)
		}
		held, err := cluster.NodeImages(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if missing := localcluster.Missing(held, cluster.Nodes, refsOf(bumped)); len(missing) > 0 {
			t.Fatalf("Ready=True (%s) while %v are not cached yet", ready.Message, missing)
		}
		return true, ""
	})

	// An invalid spec: said so, and the objects stay as last applied.
	var cm corev1.ConfigMap
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "k8s-image-puller"}, &cm); err != nil {
		t.Fatal(err)
	}
	var dep appsv1.Deployment
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "kubernetes-image-puller"}, &dep); err != nil {
		t.Fatal(err)
	}
	kubectl(t, "", "patch", "kubernetesimagepuller", "image-puller", "-n", ns, "--type", "merge", "-p", `{"spec": {"cachingMemoryLimit": "lots"}}`)
	eventually(t, time.Minute, "Ready=False and Degraded=True, InvalidSpec naming the field", func() (bool, string) {
		_, ready := condition(t, c, key, operator.TypeReady)
		_, degraded := condition(t, c, key, operator.TypeDegraded)
		return ready != nil && ready.Status == metav1.ConditionFalse && ready.Reason == operator.ReasonInvalidSpec &&
				degraded != nil && degraded.Reason == operator.ReasonInvalidSpec && strings.Contains(degraded.Message, "spec.cachingMemoryLimit"),
			fmt.Sprintf("Ready %+v; Degraded %+v", ready, degraded)
	})
	var cmAfter corev1.ConfigMap
	if err := c.Get(context.Background(), client.ObjectKeyFromObject(&cm), &cmAfter); err != nil || cmAfter.ResourceVersion != cm.ResourceVersion {
		t.Errorf("the ConfigMap changed under an invalid spec (%v): %v", err, cmAfter.Data)
	}
	var depAfter appsv1.Deployment
	if err := c.Get(context.Background(), client.ObjectKeyFromObject(&dep), &depAfter); err != nil || depAfter.Generation != dep.Generation {
		t.Errorf("the Deployment changed under an invalid spec (%v)", err)
	}

	// A second resource in the namespace: Conflict, naming the holder.
	kubectl(t, strings.Replace(manifest(entries), "name: image-puller", "name: second", 1), "apply", "-n", ns, "-f", "-")
	eventually(t, time.Minute, "the second resource in Conflict", func() (bool, string) {
		_, ready := condition(t, c, client.ObjectKey{Namespace: ns, Name: "second"}, operator.TypeReady)
		return ready != nil && ready.Reason == operator.ReasonConflict && strings.Contains(ready.Message, "image-puller"), fmt.Sprintf("%+v", ready)
	})
	kubectl(t, "", "delete", "kubernetesimagepuller", "--all", "-n", ns)
	waitGone(t, c, ns)
}

// TestCheOperatorStandInIsNeverFought: a stand-in for che-operator writes
// the CheCluster's KubernetesImagePuller with its labels, a controller
// reference to the CheCluster and its own images, and does a full Update
// back to them every second. Over 60 s, with the CheCluster edited every 5 s
// to provoke the bridge, the operator never writes the resource's metadata
// or spec (no field of it is managed by kip-operator), the puller caches
// che-operator's images, and the CheCluster's Event says why the bridge
// stands back. Deleting the CheCluster then removes it all.
func TestCheOperatorStandInIsNeverFought(t *testing.T) {
	c := installOperator(t)
	ns := namespace(t)
	entries := pushSamples(t, "chestand", 2, false)
	cc := operator.NewCheCluster()
	cc.SetNamespace(ns)
	cc.SetName("eclipse-che")
	if err := unstructured.SetNestedMap(cc.Object, map[string]any{"enable": false, "spec": map[string]any{"images": "ours=" + cluster.Registry + "/e2e/ours:v1"}}, "spec", "components", "imagePuller"); err != nil {
		t.Fatal(err)
	}
	if err := c.Create(context.Background(), cc); err != nil {
		t.Fatal(err)
	}
	key := client.ObjectKey{Namespace: ns, Name: operator.PullerName(cc.GetName())}
	standInWrites, stopStandIn, err := testenv.CheOperatorStandIn(c, cc, strings.Join(entries, ";"))
	if err != nil {
		t.Fatal(err)
	}
	defer stopStandIn()

	kubectl(t, "", "patch", "checluster", cc.GetName(), "-n", ns, "--type", "merge", "-p", `{"spec": {"components": {"imagePuller": {"enable": true}}}}`)
	waitCached(t, entries, cluster.Nodes, nil)
	waitReady(t, c, key)
	start, before := time.Now(), standInWrites.Load()
	for i := 0; time.Since(start) < 60*time.Second; i++ {
		kubectl(t, "", "patch", "checluster", cc.GetName(), "-n", ns, "--type", "merge",
			"-p", fmt.Sprintf(`{"spec": {"components": {"imagePuller": {"spec": {"images": "ours=%s/e2e/ours:v%d"}}}}}`, cluster.Registry, i))
		time.Sleep(5 * time.Second)
	}
	var got v1alpha1.KubernetesImagePuller
	if err := c.Get(context.Background(), key, &got); err != nil {
		t.Fatal(err)
	}
	ours := 0
	for _, m := range got.ManagedFields {
		if m.Subresource == "" && m.Manager != "che-operator" {
			ours++
			t.Errorf("manager %s (%s) holds fields of che-operator's resource: %s", m.Manager, m.Operation, m.FieldsV1.GetRawString())
		}
	}
	t.Logf("in %v: the stand-in wrote %d times; fields of the resource's metadata or spec written by others: %d", time.Since(start).Round(time.Second), standInWrites.Load()-before, ours)
	if got.Spec.Images != strings.Join(entries, ";") || got.Labels["app.kubernetes.io/managed-by"] != "che.eclipse.org" {
		t.Errorf("the resource is no longer che-operator's: spec %+v, labels %v", got.Spec, got.Labels)
	}
	t.Logf("kubectl get kubernetesimagepullers -A\n%s", kubectl(t, "", "get", "kubernetesimagepullers", "-A"))
	t.Logf("the CheCluster's Events:\n%s", kubectl(t, "", "get", "events", "-n", ns, "--field-selector", "involvedObject.kind=CheCluster", "-o", "custom-columns=REASON:.reason,MESSAGE:.message"))

	// Deleting the CheCluster: its resource and the puller go through the garbage collector.
	stopStandIn()
	kubectl(t, "", "delete", "checluster", cc.GetName(), "-n", ns)
	waitResourceGone(t, c, key, 2*time.Minute)
	waitGone(t, c, ns)
}

// TestCheClusterCRDInstalledAfterTheOperator removes the CheCluster CRD
// from under the running operator and applies it again, as installing Che
// after the image puller operator does: the bridge stops and starts with it
// (Events on the operator's Deployment), a CheCluster then caches its images
// on every node, and the operator never restarted.
func TestCheClusterCRDInstalledAfterTheOperator(t *testing.T) {
	c := installOperator(t)
	restarts := func() int {
		n := 0
		out := kubectl(t, "", "get", "pods", "-n", "kip-operator", "-o", "jsonpath={.items[*].status.containerStatuses[*].restartCount}")
		for _, f := range strings.Fields(out) {
			r, err := strconv.Atoi(f)
			if err != nil {
				t.Fatalf("restart count %q: %v", f, err)
			}
			n += r
		}
		return n
	}
	before := restarts()
	crd, err := testenv.CheClusterCRD()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(crd)
	if err != nil {
		t.Fatal(err)
	}
	operatorEvent := func(reason, action string) {
		t.Helper()
		eventually(t, time.Minute, reason+" "+action+" on the operator's Deployment", func() (bool, string) {
			out, err := cluster.RunKubectl("", "get", "events.events.k8s.io", "-n", "kip-operator", "-o",
				"jsonpath={range .items[*]}{.reason}/{.action}/{.regarding.kind}{\"\\n\"}{end}")
			return err == nil && strings.Contains(out, reason+"/"+action+"/Deployment"), out
		})
	}
	kubectl(t, "", "delete", "crd", "checlusters.org.eclipse.che", "--wait=true")
	operatorEvent(manager.ReasonAPIGone, "CheClusterBridge")
	kubectl(t, string(data), "apply", "--server-side", "-f", "-")
	operatorEvent(manager.ReasonAPIServed, "CheClusterBridge")

	// The CheCluster as che-operator's sample writes it (internal registries
	// disabled, as on current platforms), with the puller on and no images:
	// the defaults come from the dashboard, which runs in its namespace.
	ns := namespace(t)
	entries := pushSamples(t, "dash", 3, false)
	startDashboard(t, ns, "che", dashboardLists{editors: refsOf(entries[:1]), samples: refsOf(entries[1:])})
	cc := `apiVersion: org.eclipse.che/v2
kind: CheCluster
metadata:
  name: eclipse-che
spec:
  components:
    cheServer: {debug: false, logLevel: INFO}
    devfileRegistry: {disableInternalRegistry: true}
    pluginRegistry: {disableInternalRegistry: true}
    imagePuller: {enable: true}
  devEnvironments:
    startTimeoutSeconds: 300
    secondsOfRunBeforeIdling: -1
    maxNumberOfWorkspacesPerUser: -1
    defaultNamespace: {template: <username>-che}
    storage: {pvcStrategy: per-user}
`
	eventually(t, time.Minute, "the CheCluster API usable again", func() (bool, string) {
		_, err := cluster.RunKubectl(cc, "apply", "-n", ns, "-f", "-")
		return err == nil, fmt.Sprint(err)
	})
	waitCached(t, entries, cluster.Nodes, nil)
	key := client.ObjectKey{Namespace: ns, Name: "eclipse-che-image-puller"}
	got := waitReady(t, c, key)
	for _, ref := range refsOf(entries) {
		if !strings.Contains(got.Spec.Images, "="+ref) {
			t.Errorf("images %q: no %s from the dashboard", got.Spec.Images, ref)
		}
	}
	if _, cond := condition(t, c, key, operator.TypeDefaultImages); cond == nil || cond.Status != metav1.ConditionTrue {
		t.Errorf("condition %s: %+v", operator.TypeDefaultImages, cond)
	}
	t.Logf("kubectl get kubernetesimagepullers -n %s\n%s", ns, kubectl(t, "", "get", "kubernetesimagepullers", "-n", ns))
	if after := restarts(); after != before {
		t.Errorf("the operator restarted %d times while the CRD came and went", after-before)
	}
	kubectl(t, "", "delete", "checluster", "eclipse-che", "-n", ns)
	waitGone(t, c, ns)

	// A dashboard whose airgap list sends the operator elsewhere (here the
	// registry's catalog, a service inside the cluster): the operator does
	// not follow it, and the resource's condition says so.
	ns2 := namespace(t)
	startDashboard(t, ns2, "che", dashboardLists{editors: refsOf(entries[:1]), elsewhere: []string{"http://" + cluster.Registry + "/v2/_catalog"}})
	kubectl(t, cc, "apply", "-n", ns2, "-f", "-")
	key2 := client.ObjectKey{Namespace: ns2, Name: "eclipse-che-image-puller"}
	eventually(t, 2*time.Minute, "DefaultImagesResolved=False, the off-origin sample refused", func() (bool, string) {
		var kip v1alpha1.KubernetesImagePuller
		if err := c.Get(context.Background(), key2, &kip); err != nil {
			return false, err.Error()
		}
		cond := meta.FindStatusCondition(kip.Status.Conditions, operator.TypeDefaultImages)
		return cond != nil && cond.Status == metav1.ConditionFalse && strings.Contains(cond.Message, "sample 1 is not on the dashboard's origin"), fmt.Sprintf("%+v", cond)
	})
	var kip2 v1alpha1.KubernetesImagePuller
	if err := c.Get(context.Background(), key2, &kip2); err != nil || kip2.Spec.Images != "" {
		t.Errorf("images %q read through a refused list (%v)", kip2.Spec.Images, err)
	}
	kubectl(t, "", "delete", "checluster", "eclipse-che", "-n", ns2)
}
