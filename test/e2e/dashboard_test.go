//go:build e2e

package e2e

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/kip-image-puller/kip/internal/dev/imagebuild"
	"github.com/kip-image-puller/kip/internal/dev/registrytest"
)

// dashboardLists is what the dashboard stand-in serves: the editors' images
// (GET /dashboard/api/editors) and the air-gap samples' images, each in a
// devfile of its own (GET /dashboard/api/airgap-sample lists their URLs).
type dashboardLists struct {
	editors, samples []string
	// elsewhere are sample URLs listed as they are: absolute ones, on
	// another origin than the dashboard's.
	elsewhere []string
}

// configMap is the stand-in's content: each file under the key it is
// mounted from, and the items mapping the keys to the dashboard's paths.
func (l dashboardLists) configMap() (data map[string]string, items []string) {
	var editors, samples []string
	for i, img := range l.editors {
		editors = append(editors, fmt.Sprintf(`{"metadata": {"name": "editor%d"}, "components": [{"name": "ide", "container": {"image": %q}}]}`, i, img))
	}
	data = map[string]string{"editors": "[" + strings.Join(editors, ", ") + "]"}
	items = []string{"{key: editors, path: dashboard/api/editors}"}
	for i, img := range l.samples {
		key := fmt.Sprintf("sample%d", i)
		// Relative, as the dashboard writes them: resolved against the list's URL.
		samples = append(samples, fmt.Sprintf(`{"displayName": "Sample %d", "url": "/samples/%s/devfile.yaml"}`, i, key))
		data[key] = fmt.Sprintf("schemaVersion: 2.2.0\nmetadata:\n  name: %s\ncomponents:\n- name: tools\n  container:\n    image: %s\n    memoryLimit: 2Gi\n", key, img)
		items = append(items, fmt.Sprintf("{key: %s, path: samples/%s/devfile.yaml}", key, key))
	}
	for i, u := range l.elsewhere {
		samples = append(samples, fmt.Sprintf(`{"displayName": "Elsewhere %d", "url": %q}`, i, u))
	}
	data["airgap-sample"] = "[" + strings.Join(samples, ", ") + "]"
	items = append(items, "{key: airgap-sample, path: dashboard/api/airgap-sample}")
	return data, items
}

// startDashboard runs a stand-in for Che's dashboard in ns, as
// <flavor>-dashboard: a Deployment serving lists from a ConfigMap on port
// 8080, behind a headless Service (the local cluster has no kube-proxy; its
// DNS answers a headless Service's name with the Pods' addresses). It
// returns once the stand-in is Ready.
func startDashboard(t *testing.T, ns, flavor string, lists dashboardLists) {
	t.Helper()
	img, err := imagebuild.ToolImage(filepath.Join(cluster.root, "bin", "kip-dev"), "/usr/bin/kip-dev", "serve-files", "--dir", "/srv", "--addr", ":8080")
	if err != nil {
		t.Fatal(err)
	}
	registrytest.PushImage(t, cluster.RegistryPush+"/e2e/dashboard:stand-in", img, authn.Anonymous)
	name := flavor + "-dashboard"
	data, items := lists.configMap()
	var cm strings.Builder
	for k, v := range data {
		fmt.Fprintf(&cm, "  %s: %q\n", k, v)
	}
	manifest := fmt.Sprintf(`apiVersion: v1
kind: ConfigMap
metadata: {name: %[1]s-lists}
data:
%[2]s---
apiVersion: v1
kind: Service
metadata: {name: %[1]s}
spec:
  clusterIP: None
  selector: {app: %[1]s}
  ports: [{name: http, port: 8080}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: %[1]s}
spec:
  selector: {matchLabels: {app: %[1]s}}
  template:
    metadata: {labels: {app: %[1]s}}
    spec:
      securityContext: {runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}}
      containers:
      - name: dashboard
        image: %[3]s/e2e/dashboard:stand-in
        ports: [{containerPort: 8080}]
        readinessProbe: {httpGet: {path: /dashboard/api/editors, port: 8080}, periodSeconds: 1}
        securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}
        volumeMounts: [{name: lists, mountPath: /srv}]
      volumes:
      - name: lists
        configMap:
          name: %[1]s-lists
          items: [%[4]s]
`, name, cm.String(), cluster.Registry, strings.Join(items, ", "))
	kubectl(t, manifest, "apply", "-n", ns, "-f", "-")
	kubectl(t, "", "rollout", "status", "deployment/"+name, "-n", ns, "--timeout", (2 * time.Minute).String())
}
