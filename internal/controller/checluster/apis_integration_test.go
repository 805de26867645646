//go:build integration

package checluster_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/kip-image-puller/kip/api/v1alpha1"
	"github.com/kip-image-puller/kip/internal/config"
	"github.com/kip-image-puller/kip/internal/dev/testenv"
	"github.com/kip-image-puller/kip/internal/manager"
)

// apiServerOfItsOwn starts an API server with only the CRDs given, for a
// test that needs other APIs than the shared one, stopped after the test
// (and after the operator the test starts); it returns the server and an
// admin client, with namespace ns created.
func apiServerOfItsOwn(t *testing.T, ns string, crds ...string) (*testenv.Env, client.Client) {
	t.Helper()
	bare, err := testenv.Start(crds...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { // after the operator's own cleanup, which stops it first
		if err := bare.Stop(); err != nil {
			t.Error(err)
		}
	})
	scheme, err := manager.Scheme()
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(bare.Config, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	return bare, c
}

// TestAPIsInstalledLater: on an API server with neither CRD, the operator
// starts the KubernetesImagePuller controller and then the CheCluster
// bridge as each CRD is installed, stops each cleanly when its CRD is
// removed, and says so in Events on its Deployment; no restart.
func TestAPIsInstalledLater(t *testing.T) {
	ctx := context.Background()
	ns := "workspaces"
	bare, c := apiServerOfItsOwn(t, ns)
	self := &types.NamespacedName{Namespace: ns, Name: "kip-operator"}
	testenv.StartOperator(t, bare.Config, manager.Options{APIPoll: 500 * time.Millisecond, Self: self}, 0)

	waitForEvent := func(reason, contains string) {
		t.Helper()
		testenv.Eventually(t, 30*time.Second, "Event "+reason+" "+contains, func() (bool, string) {
			var list corev1.EventList
			if err := c.List(ctx, &list, client.InNamespace(ns)); err != nil {
				return false, err.Error()
			}
			for _, e := range list.Items {
				if e.Reason == reason && e.InvolvedObject.Kind == "Deployment" && e.InvolvedObject.Name == self.Name && strings.Contains(e.Message, contains) {
					return true, ""
				}
			}
			return false, fmt.Sprintf("%d events", len(list.Items))
		})
	}

	// The KubernetesImagePuller CRD arrives: a resource is served.
	pullerCRDs, err := envtest.InstallCRDs(bare.Config, envtest.CRDInstallOptions{Paths: []string{testenv.RepoFile("deploy/operator/crd")}, ErrorIfPathMissing: true})
	if err != nil {
		t.Fatal(err)
	}
	waitForEvent(manager.ReasonAPIServed, "the KubernetesImagePuller controller")
	kip := &v1alpha1.KubernetesImagePuller{ObjectMeta: metav1.ObjectMeta{Name: "image-puller", Namespace: ns}, Spec: v1alpha1.KubernetesImagePullerSpec{Images: "a=reg.example.com/a:1"}}
	testenv.Eventually(t, 30*time.Second, "the KubernetesImagePuller API usable", func() (bool, string) {
		err := c.Create(ctx, kip)
		return err == nil, fmt.Sprint(err)
	})
	testenv.Eventually(t, 30*time.Second, "the puller's ConfigMap", func() (bool, string) {
		err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: config.DefaultConfigMapName}, &corev1.ConfigMap{})
		return err == nil, fmt.Sprint(err)
	})

	// The CheCluster CRD arrives: the bridge starts.
	che, err := testenv.CheClusterCRD()
	if err != nil {
		t.Fatal(err)
	}
	cheCRDs, err := envtest.InstallCRDs(bare.Config, envtest.CRDInstallOptions{Paths: []string{che}, ErrorIfPathMissing: true})
	if err != nil {
		t.Fatal(err)
	}
	waitForEvent(manager.ReasonAPIServed, "the CheCluster bridge")

	// Each CRD removed: its controller stops.
	if err := envtest.UninstallCRDs(bare.Config, envtest.CRDInstallOptions{CRDs: cheCRDs}); err != nil {
		t.Fatal(err)
	}
	waitForEvent(manager.ReasonAPIGone, "the CheCluster bridge")
	if err := c.Delete(ctx, kip); err != nil {
		t.Fatal(err)
	}
	if err := envtest.UninstallCRDs(bare.Config, envtest.CRDInstallOptions{CRDs: pullerCRDs}); err != nil {
		t.Fatal(err)
	}
	waitForEvent(manager.ReasonAPIGone, "the KubernetesImagePuller controller")
}
