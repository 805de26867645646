//go:build integration

package checluster_test

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kip-image-puller/kip/api/v1alpha1"
	"github.com/kip-image-puller/kip/internal/config"
	"github.com/kip-image-puller/kip/internal/controller/checluster"
	"github.com/kip-image-puller/kip/internal/dev/testenv"
	"github.com/kip-image-puller/kip/internal/manager"
	"github.com/kip-image-puller/kip/internal/operator"
)

// TestBridgeNeverFightsCheOperator: with the bridge on, a CheCluster's
// resource that che-operator writes is reconciled (the puller runs with
// che-operator's images) but never rewritten: over 60 s the operator makes
// no write to its metadata or spec, and says on the CheCluster why.
func TestBridgeNeverFightsCheOperator(t *testing.T) {
	ns := env.Namespace(t)
	cc := newCheCluster(t, env.Client, ns, "eclipse-che", map[string]any{
		"enable": false,
		"spec":   map[string]any{"images": "ours=reg.example.com/ours:1"},
	}, nil)
	cheImages := "che-code=reg.example.com/che-code:next;udi=reg.example.com/udi:next"
	standIn, stop, err := testenv.CheOperatorStandIn(env.Client, cc, cheImages)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	writes := testenv.StartOperator(t, env.Config, manager.Options{Namespaces: []string{ns}, CheClusterBridge: operator.BridgeOn}, 0)
	setImagePuller(t, cc, map[string]any{"enable": true, "spec": map[string]any{"images": "ours=reg.example.com/ours:1"}})

	// The puller runs with che-operator's images.
	testenv.Eventually(t, 20*time.Second, "the puller's ConfigMap with che-operator's images", func() (bool, string) {
		var cm corev1.ConfigMap
		if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "k8s-image-puller"}, &cm); err != nil {
			return false, err.Error()
		}
		return cm.Data[config.KeyImages] == cheImages, cm.Data[config.KeyImages]
	})
	standBack := waitForCheClusterEvent(t, ns, checluster.ReasonManagedElsewhere)
	if !strings.Contains(standBack, "che.eclipse.org") {
		t.Errorf("the Event %q does not say which manager keeps the resource", standBack)
	}

	resource := "/kubernetesimagepullers/" + operator.PullerName(cc.GetName())
	before := standIn.Load()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		// Provoke the bridge as a user would: edit the CheCluster.
		setImagePuller(t, cc, map[string]any{"enable": true, "spec": map[string]any{"images": "ours=reg.example.com/ours:" + time.Now().Format("150405")}})
		time.Sleep(5 * time.Second)
	}
	n := 0
	for _, w := range writes.Count(false) {
		if strings.Contains(w, resource) && !strings.HasSuffix(w, "/status") {
			n++
			t.Errorf("the operator wrote che-operator's resource: %s", w)
		}
	}
	t.Logf("in 60 s: che-operator's stand-in wrote %d times, the operator %d times (status writes aside)", standIn.Load()-before, n)
	if standIn.Load()-before < 30 {
		t.Errorf("the stand-in wrote only %d times: the fight was not on", standIn.Load()-before)
	}
	var kip v1alpha1.KubernetesImagePuller
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: operator.PullerName(cc.GetName())}, &kip); err != nil {
		t.Fatal(err)
	}
	if kip.Spec.Images != cheImages || kip.Labels["app.kubernetes.io/managed-by"] != "che.eclipse.org" {
		t.Errorf("the resource is no longer che-operator's: spec %+v, labels %v", kip.Spec, kip.Labels)
	}

	// Disabling leaves it to che-operator too: the bridge deletes only its own.
	since := testenv.ReconcileCount(t, "checluster")
	setImagePuller(t, cc, map[string]any{"enable": false})
	testenv.WaitForReconciles(t, "checluster", since, 1)
	if err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(&kip), &kip); apierrors.IsNotFound(err) {
		t.Error("the bridge deleted che-operator's resource")
	}
}

// TestAutoBridgeStandsBackForCheOperator: by default (auto), a CheCluster
// that che-operator reconciles gets no resource from the bridge, and an
// Event says why.
func TestAutoBridgeStandsBackForCheOperator(t *testing.T) {
	ns := env.Namespace(t)
	testenv.StartOperator(t, env.Config, manager.Options{Namespaces: []string{ns}}, 0)
	cc := newCheCluster(t, env.Client, ns, "eclipse-che", map[string]any{
		"enable": true,
		"spec":   map[string]any{"images": "ours=reg.example.com/ours:1"},
	}, map[string]any{"chePhase": "Active", "cheVersion": "7.110.0"})
	msg := waitForCheClusterEvent(t, ns, checluster.ReasonManagedElsewhere)
	if !strings.Contains(msg, "che-operator reconciles this CheCluster") {
		t.Errorf("Event %q", msg)
	}
	err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: operator.PullerName(cc.GetName())}, &v1alpha1.KubernetesImagePuller{})
	if !apierrors.IsNotFound(err) {
		t.Errorf("the bridge made a resource for a CheCluster che-operator reconciles: %v", err)
	}
}

// waitForCheClusterEvent waits for an Event of reason about a CheCluster
// in ns and returns its note.
func waitForCheClusterEvent(t *testing.T, ns, reason string) string {
	t.Helper()
	var note string
	testenv.Eventually(t, 20*time.Second, "Event "+reason, func() (bool, string) {
		var list eventsv1.EventList
		if err := env.Client.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
			return false, err.Error()
		}
		for _, e := range list.Items {
			if e.Reason == reason && e.Regarding.Kind == "CheCluster" {
				note = e.Note
				return true, ""
			}
		}
		return false, "none yet"
	})
	return note
}
