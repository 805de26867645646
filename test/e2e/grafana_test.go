//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestGrafanaDashboardRendered: the controller's secured metrics endpoint
// is scraped every 3 s, as Prometheus would, while the puller warms the
// nodes, a missing image is added, the configuration turns invalid, and
// both are fixed; test/monitoring's render-dashboard then runs the
// dashboard's queries, unchanged, on those scrapes with Prometheus's own
// TSDB and PromQL engine and draws every panel to bin/dashboard.png (Grafana
// is not available here: a static rendering of the queries' results). Each
// panel this scenario feeds must have drawn data.
func TestGrafanaDashboardRendered(t *testing.T) {
	ns := namespace(t)
	entries := pushSamples(t, "grafana", 2, false)
	install(t, ns, map[string]string{"IMAGES": strings.Join(entries, ";")})
	kubectl(t, "", "rollout", "status", "-n", ns, "deployment/kubernetes-image-puller", "--timeout=3m")
	pods := controllerPods(t, ns)
	if len(pods) != 1 {
		t.Fatalf("%d controller pods", len(pods))
	}
	pod := pods[0].Name
	dir := t.TempDir()
	var last string
	// scrapeUntil scrapes every 3 s until the metrics match want, then
	// for linger more.
	scrapeUntil := func(what string, want *regexp.Regexp, linger time.Duration) {
		t.Helper()
		deadline, met, failingSince := time.Now().Add(4*time.Minute), time.Time{}, time.Time{}
		for {
			body, err := scrapeMetrics(t, ns, pod)
			if err != nil {
				// The first scrapes may come before the API server
				// answers the new scraper's TokenReviews.
				if failingSince.IsZero() {
					failingSince = time.Now()
				}
				t.Logf("scrape at %s: %v", time.Now().Format("15:04:05"), err)
				if time.Since(failingSince) > time.Minute {
					t.Fatalf("scrape: %v, for a minute", err)
				}
				time.Sleep(3 * time.Second)
				continue
			}
			failingSince = time.Time{}
			last = body
			at := time.Now()
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%d.prom", at.UnixMilli())),
				[]byte("# target namespace="+ns+" pod="+pod+"\n"+body), 0o600); err != nil {
				t.Fatal(err)
			}
			switch {
			case met.IsZero() && want.MatchString(body):
				met = at
			case met.IsZero() && at.After(deadline):
				t.Fatalf("%s: not seen in the metrics within 4m; the last scrape:\n%s", what, body)
			}
			if !met.IsZero() && at.Sub(met) >= linger {
				return
			}
			time.Sleep(3 * time.Second)
		}
	}
	nodes := len(cluster.Nodes)
	warm := regexp.MustCompile(fmt.Sprintf(`(?m)^kip_nodes_warm %d$`, nodes))
	scrapeUntil("every node warm", warm, 15*time.Second)

	missing := "missing=" + cluster.Registry + "/e2e/grafana-not-pushed:v1"
	patchConfigMap(t, ns, map[string]string{"IMAGES": strings.Join(append(entries[:2:2], missing), ";")})
	scrapeUntil("the missing image failing", regexp.MustCompile(`(?m)^kip_image_failing\{image="missing",`), 30*time.Second)

	limit := kubectl(t, "", "get", "configmap", "-n", ns, "k8s-image-puller", "-o", "jsonpath={.data.CACHING_MEMORY_LIMIT}")
	patchConfigMap(t, ns, map[string]string{"CACHING_MEMORY_LIMIT": "lots"})
	scrapeUntil("the configuration invalid", regexp.MustCompile(`(?m)^kip_configuration_invalid 1$`), 20*time.Second)

	patchConfigMap(t, ns, map[string]string{"IMAGES": strings.Join(entries, ";"), "CACHING_MEMORY_LIMIT": limit})
	scrapeUntil("fixed: valid, every node warm", regexp.MustCompile(`(?m)^kip_configuration_invalid 0$`), 0)
	scrapeUntil("fixed: valid, every node warm", warm, 20*time.Second)
	if strings.Contains(last, `kip_image_failing{image="missing"`) {
		t.Errorf("the missing image still failing after it left IMAGES")
	}

	out := filepath.Join(cluster.root, "bin", "dashboard.png")
	subtitle := fmt.Sprintf("From the e2e run, %s: the controller on the local %d-node cluster, scraped every 3 s: 2 images warmed, a missing image added, CACHING_MEMORY_LIMIT=lots, both fixed",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), nodes)
	cmd := exec.Command("go", "run", "./cmd/render-dashboard", "--scrapes", dir, "--out", out, "--subtitle", subtitle)
	cmd.Dir = filepath.Join(cluster.root, "test", "monitoring")
	report, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("render-dashboard: %v\n%s", err, report)
	}
	t.Logf("render-dashboard:\n%s", report)
	for _, panel := range []string{"Warm nodes", "Images cached per node", "Failing images by node and reason",
		"Warm-up times", "Configuration errors", "Controller memory", "Controller CPU and refreshes"} {
		m := regexp.MustCompile(`(?m)^PANEL \| ` + regexp.QuoteMeta(panel) + ` \| (\d+) series \| (\d+) points$`).FindStringSubmatch(string(report))
		if m == nil || m[1] == "0" {
			t.Errorf("panel %q drew no data", panel)
		}
	}
}
