//go:build e2e

package e2e

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kip-image-puller/kip/internal/status"
)

// kipStatus runs the real `kip status` against the local cluster.
func kipStatus(t *testing.T, ns string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(filepath.Join(cluster.root, "bin", "kip"), append([]string{"status", "--kubeconfig", cluster.Kubeconfig, "-n", ns}, args...)...)
	out, err := cmd.Output()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &ee):
		return string(out), ee.ExitCode()
	}
	t.Fatal(err)
	return "", -1
}

// TestStatusNamesTheFailingImages configures one image that does not exist
// and one behind wrong credentials: `kip status -o json` names exactly those
// two, on every node, and everything else is Cached; `kip status --wait`
// fails while they are configured and succeeds once a fixed ConfigMap is
// applied.
func TestStatusNamesTheFailingImages(t *testing.T) {
	ns := namespace(t)
	good := pushSamples(t, "fine", 2, false)
	private := pushSamples(t, "locked", 1, true)
	wrong := base64.StdEncoding.EncodeToString([]byte(cluster.AuthUser + ":not-the-password"))
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "wrongcred", Namespace: ns},
		Type:       corev1.SecretTypeDockerConfigJson,
		Data:       map[string][]byte{corev1.DockerConfigJsonKey: []byte(fmt.Sprintf(`{"auths": {%q: {"auth": %q}}}`, cluster.AuthRegistry, wrong))},
	}
	if err := cluster.c.Create(t.Context(), secret); err != nil {
		t.Fatal(err)
	}
	missing := "missing=" + cluster.Registry + "/e2e/not-pushed:v1"
	entries := append(append(append([]string{}, good...), private...), missing)
	install(t, ns, map[string]string{"IMAGES": strings.Join(entries, ";"), "IMAGE_PULL_SECRETS": "wrongcred"})
	waitCached(t, good, cluster.Nodes, nil)

	wantFailing := []string{"locked1", "missing"}
	var report status.Report
	eventually(t, 3*time.Minute, "kip status names the two failing images on every node", func() (bool, string) {
		out, code := kipStatus(t, ns, "-o", "json")
		if code != 0 {
			return false, fmt.Sprintf("exit %d", code)
		}
		report = status.Report{}
		if err := json.Unmarshal([]byte(out), &report); err != nil {
			return false, err.Error()
		}
		for _, n := range report.Nodes {
			var failing []string
			for img, c := range n.Images {
				switch c.State {
				case status.Failed:
					failing = append(failing, img)
				case status.Cached:
				default:
					return false, fmt.Sprintf("%s: %s is %s", n.Name, img, c.State)
				}
			}
			sort.Strings(failing)
			if strings.Join(failing, ",") != strings.Join(wantFailing, ",") {
				return false, fmt.Sprintf("%s: failing %v", n.Name, failing)
			}
		}
		return len(report.Nodes) == len(cluster.Nodes) && len(report.Summary.Failing) == 2*len(cluster.Nodes), report.Line()
	})
	table, _ := kipStatus(t, ns)
	t.Logf("kip status:\n%s", table)
	for _, f := range report.Summary.Failing {
		if f.Image == "locked1" && !strings.Contains(f.Message, "401") && !strings.Contains(strings.ToLower(f.Message), "unauthorized") {
			t.Errorf("the wrong-credentials failure does not say so: %+v", f)
		}
	}

	// The controller told it too: one ImageFailing Event per image and node.
	eventually(t, time.Minute, "ImageFailing Events for each failing image on each node", func() (bool, string) {
		var list corev1.EventList
		if err := cluster.c.List(t.Context(), &list, client.InNamespace(ns)); err != nil {
			return false, err.Error()
		}
		seen := map[string]bool{}
		for _, e := range list.Items {
			if e.Reason == "ImageFailing" {
				seen[strings.SplitN(e.Message, ":", 2)[0]] = true
			}
		}
		for _, node := range cluster.Nodes {
			for _, img := range wantFailing {
				if !seen[img+" on "+node] {
					return false, fmt.Sprintf("no Event for %s on %s; have %v", img, node, seen)
				}
			}
		}
		return true, ""
	})

	if _, code := kipStatus(t, ns, "--wait", "--timeout", "5s"); code != 1 {
		t.Errorf("kip status --wait with failing images: exit %d, want 1", code)
	}
	fixed := strings.Join(good, ";")
	kubectl(t, fmt.Sprintf(`{"data": {"IMAGES": %q}}`, fixed), "patch", "configmap", "-n", ns, "k8s-image-puller", "--type", "merge", "--patch-file", "/dev/stdin")
	out, code := kipStatus(t, ns, "--wait", "--timeout", "3m", "--interval", "1s")
	if code != 0 {
		t.Errorf("kip status --wait after the fix: exit %d\n%s", code, out)
	}
	t.Logf("kip status --wait after the fix:\n%s", out)
}
