//go:build integration

package checluster_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kip-image-puller/kip/api/v1alpha1"
	"github.com/kip-image-puller/kip/internal/controller/checluster"
	"github.com/kip-image-puller/kip/internal/dev/testenv"
	"github.com/kip-image-puller/kip/internal/images"
	"github.com/kip-image-puller/kip/internal/labels"
	"github.com/kip-image-puller/kip/internal/manager"
	"github.com/kip-image-puller/kip/internal/operator"
)

// The API server and etcd the tests share; see testenv.RunOperator.
var env *testenv.Env

func TestMain(m *testing.M) { os.Exit(testenv.RunOperator(m, &env)) }

// newCheCluster creates a CheCluster (org.eclipse.che/v2) with the given
// spec.components.imagePuller and registry URLs in its status.
func newCheCluster(t *testing.T, c client.Client, ns, name string, imagePuller map[string]any, status map[string]any) *unstructured.Unstructured {
	t.Helper()
	cc := operator.NewCheCluster()
	cc.SetNamespace(ns)
	cc.SetName(name)
	if err := unstructured.SetNestedMap(cc.Object, imagePuller, "spec", "components", "imagePuller"); err != nil {
		t.Fatal(err)
	}
	if err := c.Create(context.Background(), cc); err != nil {
		t.Fatal(err)
	}
	if status != nil {
		if err := unstructured.SetNestedMap(cc.Object, status, "status"); err != nil {
			t.Fatal(err)
		}
		if err := c.Status().Update(context.Background(), cc); err != nil {
			t.Fatal(err)
		}
	}
	return cc
}

// setImagePuller edits spec.components.imagePuller as a user would.
func setImagePuller(t *testing.T, cc *unstructured.Unstructured, imagePuller map[string]any) {
	t.Helper()
	if err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(cc), cc); err != nil {
		t.Fatal(err)
	}
	if err := unstructured.SetNestedMap(cc.Object, imagePuller, "spec", "components", "imagePuller"); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Update(context.Background(), cc); err != nil {
		t.Fatal(err)
	}
}

// waitForPuller waits for the CheCluster's KubernetesImagePuller to satisfy ok.
func waitForPuller(t *testing.T, cc *unstructured.Unstructured, what string, ok func(*v1alpha1.KubernetesImagePuller) (bool, string)) *v1alpha1.KubernetesImagePuller {
	t.Helper()
	var kip v1alpha1.KubernetesImagePuller
	key := client.ObjectKey{Namespace: cc.GetNamespace(), Name: cc.GetName() + "-image-puller"}
	testenv.Eventually(t, 20*time.Second, what, func() (bool, string) {
		if err := env.Client.Get(context.Background(), key, &kip); err != nil {
			return false, err.Error()
		}
		return ok(&kip)
	})
	return &kip
}

func TestCheClusterEnableCustomImagesThenDisable(t *testing.T) {
	ns := env.Namespace(t)
	testenv.StartOperator(t, env.Config, manager.Options{Namespaces: []string{ns}}, 0)
	cc := newCheCluster(t, env.Client, ns, "devspaces", map[string]any{
		"enable": true,
		"spec":   map[string]any{"images": "java=reg.example.com/java:17", "cachingMemoryLimit": "30Mi"},
	}, nil)

	kip := waitForPuller(t, cc, "devspaces-image-puller with the CheCluster's spec", func(k *v1alpha1.KubernetesImagePuller) (bool, string) {
		return k.Spec.Images == "java=reg.example.com/java:17" && k.Spec.CachingMemoryLimit == "30Mi", fmt.Sprintf("spec %+v", k.Spec)
	})
	if kip.Labels[labels.Component] != "kubernetes-image-puller" || kip.Labels[labels.PartOf] != "che.eclipse.org" {
		t.Errorf("labels %v", kip.Labels)
	}
	if ref := metav1.GetControllerOf(kip); ref == nil || ref.UID != cc.GetUID() || ref.Kind != "CheCluster" || ref.APIVersion != "org.eclipse.che/v2" {
		t.Errorf("controller %+v, want the CheCluster", ref)
	}
	if meta.FindStatusCondition(kip.Status.Conditions, operator.TypeDefaultImages) != nil {
		t.Errorf("a DefaultImagesResolved condition with images given: %+v", kip.Status.Conditions)
	}
	// The resource is then run like any other.
	env.WaitForCondition(t, client.ObjectKeyFromObject(kip), operator.TypeProgressing, metav1.ConditionTrue, operator.ReasonDeploying)

	// A spec change on the CheCluster follows.
	setImagePuller(t, cc, map[string]any{"enable": true, "spec": map[string]any{"images": "node=reg.example.com/node:22"}})
	waitForPuller(t, cc, "the new images", func(k *v1alpha1.KubernetesImagePuller) (bool, string) {
		return k.Spec.Images == "node=reg.example.com/node:22" && k.Spec.CachingMemoryLimit == "", fmt.Sprintf("spec %+v", k.Spec)
	})

	// enable: false removes it.
	setImagePuller(t, cc, map[string]any{"enable": false})
	testenv.Eventually(t, 20*time.Second, "the KubernetesImagePuller removed", func() (bool, string) {
		err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(kip), &v1alpha1.KubernetesImagePuller{})
		return apierrors.IsNotFound(err), fmt.Sprint(err)
	})
}

func TestCheClusterDefaultImagesFromTheRegistries(t *testing.T) {
	plugin := "quay.io/devfile/universal-developer-image:ubi9-latest\nquay.io/che-incubator/che-code:latest\n"
	devfile := "quay.io/devfile/universal-developer-image:ubi9-latest\nregistry.access.redhat.com/ubi9/nodejs-20:1\n"
	var down atomic.Bool
	down.Store(true)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			http.Error(w, "starting", http.StatusServiceUnavailable)
			return
		}
		switch r.URL.Path {
		case "/plugin-registry/v3/external_images.txt":
			fmt.Fprint(w, plugin)
		case "/devfile-registry/devfiles/external_images.txt":
			fmt.Fprint(w, devfile)
		case "/dashboard/api/editors":
			fmt.Fprint(w, `[{"components": [{"name": "ide", "container": {"image": "quay.io/che-incubator/che-code:latest"}}]}]`)
		case "/dashboard/api/airgap-sample":
			fmt.Fprint(w, `[{"url": "/samples/node/devfile.yaml"}]`)
		case "/samples/node/devfile.yaml":
			fmt.Fprint(w, "components:\n- name: node\n  container:\n    image: quay.io/example/node:22\n")
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()

	ns := env.Namespace(t)
	testenv.StartOperator(t, env.Config, manager.Options{Namespaces: []string{ns}, DashboardURL: srv.URL + "/dashboard/api"}, 0)
	cc := newCheCluster(t, env.Client, ns, "eclipse-che", map[string]any{"enable": true}, map[string]any{
		"pluginRegistryURL":  srv.URL + "/plugin-registry/v3",
		"devfileRegistryURL": srv.URL + "/devfile-registry",
	})

	// The registries are down: the resource says so, and the operator retries.
	kip := waitForPuller(t, cc, "RegistryUnreachable reported", func(k *v1alpha1.KubernetesImagePuller) (bool, string) {
		c := meta.FindStatusCondition(k.Status.Conditions, operator.TypeDefaultImages)
		if c == nil {
			return false, "no condition yet"
		}
		return c.Status == metav1.ConditionFalse && c.Reason == operator.ReasonRegistryUnreachable && strings.Contains(c.Message, srv.URL+"/plugin-registry/v3/external_images.txt"),
			fmt.Sprintf("%+v", *c)
	})
	if kip.Spec.Images != "" {
		t.Errorf("images %q before any list was read", kip.Spec.Images)
	}

	// They come up: the dashboard's and the registries' images, merged,
	// sorted, de-duplicated and named.
	down.Store(false)
	want := images.Value(images.Merge([]string{
		"quay.io/devfile/universal-developer-image:ubi9-latest", "quay.io/che-incubator/che-code:latest", "registry.access.redhat.com/ubi9/nodejs-20:1",
		"quay.io/example/node:22",
	}))
	waitForPuller(t, cc, "default images filled in", func(k *v1alpha1.KubernetesImagePuller) (bool, string) {
		return k.Spec.Images == want, k.Spec.Images
	})
	if want != "che-code-0=quay.io/che-incubator/che-code:latest;universal-developer-image-1=quay.io/devfile/universal-developer-image:ubi9-latest;node-2=quay.io/example/node:22;nodejs-20-3=registry.access.redhat.com/ubi9/nodejs-20:1" {
		t.Errorf("IMAGES %q not named <name>-<index>", want)
	}
	waitForPuller(t, cc, "DefaultImagesResolved=True", func(k *v1alpha1.KubernetesImagePuller) (bool, string) {
		c := meta.FindStatusCondition(k.Status.Conditions, operator.TypeDefaultImages)
		return c != nil && c.Status == metav1.ConditionTrue, fmt.Sprintf("%+v", c)
	})

	// A later outage keeps the images last read.
	down.Store(true)
	setImagePuller(t, cc, map[string]any{"enable": true, "spec": map[string]any{"cachingCPULimit": "300m"}})
	kip = waitForPuller(t, cc, "RegistryUnreachable again, images kept", func(k *v1alpha1.KubernetesImagePuller) (bool, string) {
		c := meta.FindStatusCondition(k.Status.Conditions, operator.TypeDefaultImages)
		return k.Spec.CachingCPULimit == "300m" && c != nil && c.Status == metav1.ConditionFalse, fmt.Sprintf("spec %+v, %+v", k.Spec, c)
	})
	if kip.Spec.Images != want {
		t.Errorf("images %q after an outage, want the last read %q", kip.Spec.Images, want)
	}
}

func TestCheClusterWithoutThePullerAPI(t *testing.T) {
	che, err := testenv.CheClusterCRD()
	if err != nil {
		t.Fatal(err)
	}
	ns := "che"
	bare, c := apiServerOfItsOwn(t, ns, che) // CheClusters, but no KubernetesImagePuller CRD
	testenv.StartOperator(t, bare.Config, manager.Options{}, 0)
	cc := newCheCluster(t, c, ns, "devspaces", map[string]any{"enable": true}, nil)
	testenv.Eventually(t, 20*time.Second, "a Warning Event on the CheCluster naming the missing API", func() (bool, string) {
		var list corev1.EventList
		if err := c.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
			return false, err.Error()
		}
		for _, e := range list.Items {
			if e.InvolvedObject.UID == cc.GetUID() && e.Reason == checluster.ReasonPullerAPIMissing && e.Type == corev1.EventTypeWarning &&
				strings.Contains(e.Message, "kubernetesimagepullers.che.eclipse.org") {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d events, none from the operator about the missing API", len(list.Items))
	})
}

// TestDefaultImagesFollowTheDashboard: the default images are read again
// every DefaultImagesRefresh, conditionally (ETag), so a platform upgrade
// that changes the dashboard's editors reaches the resource without any
// change to the CheCluster.
func TestDefaultImagesFollowTheDashboard(t *testing.T) {
	var editor atomic.Value
	editor.Store("quay.io/che-incubator/che-code:1.0")
	var notModified atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/dashboard/api/editors":
			body := fmt.Sprintf(`[{"components": [{"name": "ide", "container": {"image": %q}}]}]`, editor.Load())
			etag := fmt.Sprintf("%q", editor.Load())
			if r.Header.Get("If-None-Match") == etag {
				notModified.Add(1)
				w.WriteHeader(http.StatusNotModified)
				return
			}
			w.Header().Set("ETag", etag)
			fmt.Fprint(w, body)
		case "/dashboard/api/airgap-sample":
			fmt.Fprint(w, `[]`)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	ns := env.Namespace(t)
	testenv.StartOperator(t, env.Config, manager.Options{Namespaces: []string{ns}, DashboardURL: srv.URL + "/dashboard/api", DefaultImagesRefresh: 300 * time.Millisecond}, 0)
	cc := newCheCluster(t, env.Client, ns, "eclipse-che", map[string]any{"enable": true}, nil)
	waitForPuller(t, cc, "the dashboard's editor", func(k *v1alpha1.KubernetesImagePuller) (bool, string) {
		return k.Spec.Images == "che-code-0=quay.io/che-incubator/che-code:1.0", k.Spec.Images
	})
	testenv.Eventually(t, 20*time.Second, "the list asked again conditionally", func() (bool, string) {
		return notModified.Load() >= 2, fmt.Sprintf("%d 304 answers", notModified.Load())
	})
	editor.Store("quay.io/che-incubator/che-code:2.0") // a platform upgrade
	waitForPuller(t, cc, "the new editor, the CheCluster untouched", func(k *v1alpha1.KubernetesImagePuller) (bool, string) {
		return k.Spec.Images == "che-code-0=quay.io/che-incubator/che-code:2.0", k.Spec.Images
	})
}

// TestDefaultImagesStayOnTheDashboardsOrigin: the lists a dashboard and a
// CheCluster's status name may only send the operator to the dashboard's
// own origin. A sample elsewhere fails the read; a registry elsewhere is
// left unread and named; neither is fetched, and the condition quotes
// nothing any server answered.
func TestDefaultImagesStayOnTheDashboardsOrigin(t *testing.T) {
	var elsewhereHits atomic.Int64
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		elsewhereHits.Add(1)
		fmt.Fprint(w, "quay.io/attacker/miner:1\n")
	}))
	defer elsewhere.Close()
	var samples atomic.Value
	samples.Store(`[{"url": "` + elsewhere.URL + `/devfile.yaml"}]`)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/dashboard/api/editors":
			fmt.Fprint(w, `[{"components": [{"name": "ide", "container": {"image": "quay.io/che-incubator/che-code:latest"}}]}]`)
		case "/dashboard/api/airgap-sample":
			fmt.Fprint(w, samples.Load())
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()

	ns := env.Namespace(t)
	testenv.StartOperator(t, env.Config, manager.Options{Namespaces: []string{ns}, DashboardURL: srv.URL + "/dashboard/api", RetryAfter: 300 * time.Millisecond}, 0)
	cc := newCheCluster(t, env.Client, ns, "eclipse-che", map[string]any{"enable": true}, map[string]any{
		"pluginRegistryURL": elsewhere.URL + "/plugin-registry/v3",
	})
	waitForPuller(t, cc, "the off-origin sample refused", func(k *v1alpha1.KubernetesImagePuller) (bool, string) {
		c := meta.FindStatusCondition(k.Status.Conditions, operator.TypeDefaultImages)
		return c != nil && c.Status == metav1.ConditionFalse && strings.Contains(c.Message, "sample 1 is not on the dashboard's origin"), fmt.Sprintf("%+v", c)
	})

	// A response that is not what was expected: the condition names the
	// URL, and quotes none of the response.
	samples.Store(`{"secret": "token-of-an-internal-service"}`)
	kip := waitForPuller(t, cc, "the bad response reported", func(k *v1alpha1.KubernetesImagePuller) (bool, string) {
		c := meta.FindStatusCondition(k.Status.Conditions, operator.TypeDefaultImages)
		return c != nil && c.Status == metav1.ConditionFalse && strings.Contains(c.Message, "/airgap-sample: expected a JSON array"), fmt.Sprintf("%+v", c)
	})
	if c := meta.FindStatusCondition(kip.Status.Conditions, operator.TypeDefaultImages); strings.Contains(c.Message, "token-of") || strings.Contains(c.Message, "secret") {
		t.Errorf("the condition quotes the response: %s", c.Message)
	}

	samples.Store(`[]`)
	kip = waitForPuller(t, cc, "the dashboard's images, the off-origin registry named", func(k *v1alpha1.KubernetesImagePuller) (bool, string) {
		c := meta.FindStatusCondition(k.Status.Conditions, operator.TypeDefaultImages)
		return c != nil && c.Status == metav1.ConditionTrue && strings.Contains(c.Message, "not read, as they are not on the dashboard's origin: "+elsewhere.URL+"/plugin-registry/v3/external_images.txt"),
			fmt.Sprintf("%+v", c)
	})
	if kip.Spec.Images != "che-code-0=quay.io/che-incubator/che-code:latest" {
		t.Errorf("images %q, want the dashboard's editor only", kip.Spec.Images)
	}
	if n := elsewhereHits.Load(); n != 0 {
		t.Errorf("the operator fetched %d times from another origin", n)
	}
}
