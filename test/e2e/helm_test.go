//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart/loader"
	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/cli-runtime/pkg/genericclioptions"
)

// TestHelmInstallAndUninstall installs the chart with the Helm SDK, as
// `helm install` does, waits for every node to hold the images, and
// uninstalls it: the DaemonSet goes with the Deployment that owns it.
func TestHelmInstallAndUninstall(t *testing.T) {
	ns := namespace(t)
	entries := pushSamples(t, "helm", 2, false)

	flags := genericclioptions.NewConfigFlags(false)
	flags.KubeConfig = &cluster.Kubeconfig
	flags.Namespace = &ns
	cfg := new(action.Configuration)
	if err := cfg.Init(flags, ns, "secret", func(string, ...any) {}); err != nil {
		t.Fatal(err)
	}
	chart, err := loader.Load(filepath.Join(cluster.root, "deploy", "helm", "kubernetes-image-puller"))
	if err != nil {
		t.Fatal(err)
	}
	install := action.NewInstall(cfg)
	install.ReleaseName, install.Namespace = "kip", ns
	install.Wait, install.Timeout = true, 3*time.Minute
	values := map[string]any{
		"image":     map[string]any{"repository": cluster.kipRepo, "tag": cluster.kipTag},
		"configMap": map[string]any{"images": strings.Join(entries, ";")},
		// The harness applied kip's policies for the whole run.
		"admissionPolicies": false,
	}
	if _, err := install.Run(chart, values); err != nil {
		t.Fatalf("helm install: %v", err)
	}
	waitRolledOut(t, ns, len(cluster.Nodes))
	waitCached(t, entries, cluster.Nodes, nil)

	uninstall := action.NewUninstall(cfg)
	uninstall.Wait, uninstall.Timeout = true, 3*time.Minute
	if _, err := uninstall.Run("kip"); err != nil {
		t.Fatalf("helm uninstall: %v", err)
	}
	eventually(t, 2*time.Minute, "DaemonSet removed with the release", func() (bool, string) {
		var ds appsv1.DaemonSet
		err := cluster.c.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: dsName}, &ds)
		return apierrors.IsNotFound(err), fmt.Sprint(err)
	})
}
