// Package monitoring checks deploy/monitoring: every PromQL expression of
// the Grafana dashboard and of the PrometheusRule parses with Prometheus's
// parser and names only metrics the controller serves
// (deploy/monitoring/metrics.txt, which the puller's unit tests keep true).
package monitoring

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/promql/parser"
	"sigs.k8s.io/yaml"
)

var dir = filepath.Join("..", "..", "deploy", "monitoring")

// served reads metrics.txt: name -> type.
func served(t *testing.T) map[string]string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "metrics.txt"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) == 2 && !strings.HasPrefix(line, "#") {
			out[f[0]] = f[1]
		}
	}
	if len(out) == 0 {
		t.Fatal("metrics.txt lists no metric")
	}
	return out
}

// names are the metric names expr selects, a histogram's series under its
// own name.
func names(t *testing.T, expr string, metrics map[string]string) ([]string, error) {
	t.Helper()
	e, err := parser.NewParser(parser.Options{}).ParseExpr(expr)
	if err != nil {
		return nil, err
	}
	var out []string
	parser.Inspect(e, func(node parser.Node, _ []parser.Node) error {
		if vs, ok := node.(*parser.VectorSelector); ok {
			out = append(out, base(vs.Name, metrics))
		}
		return nil
	})
	return out, nil
}

func base(name string, metrics map[string]string) string {
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if b, ok := strings.CutSuffix(name, suffix); ok && metrics[b] == "histogram" {
			return b
		}
	}
	return name
}

// check parses each expression of where and names what it selects that
// the controller does not serve.
func check(t *testing.T, where string, exprs []string, metrics map[string]string) {
	t.Helper()
	if len(exprs) == 0 {
		t.Fatalf("%s: no expression", where)
	}
	for _, expr := range exprs {
		got, err := names(t, expr, metrics)
		if err != nil {
			t.Errorf("%s: %q does not parse: %v", where, expr, err)
			continue
		}
		if len(got) == 0 {
			t.Errorf("%s: %q names no metric", where, expr)
		}
		for _, n := range got {
			if _, ok := metrics[n]; !ok {
				t.Errorf("%s: %q names %s, which the controller does not serve", where, expr, n)
			}
		}
	}
}

// exprs collects every "expr" string in a decoded JSON document.
func exprs(v any, out *[]string) {
	switch x := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if s, ok := x[k].(string); ok && k == "expr" {
				*out = append(*out, s)
				continue
			}
			exprs(x[k], out)
		}
	case []any:
		for _, e := range x {
			exprs(e, out)
		}
	}
}

func TestDashboard(t *testing.T) {
	metrics := served(t)
	data, err := os.ReadFile(filepath.Join(dir, "grafana-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash map[string]any
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatal(err)
	}
	var all []string
	exprs(dash["panels"], &all)
	// Grafana's variables: $namespace inside a matcher is a regex.
	for i, e := range all {
		all[i] = strings.ReplaceAll(e, "$namespace", ".*")
	}
	check(t, "dashboard", all, metrics)

	// The template variables' label_values(metric, label) queries.
	labelValues := regexp.MustCompile(`label_values\(([a-z_:]+),`)
	var vars []string
	exprs(dash["templating"], &vars)
	raw, _ := json.Marshal(dash["templating"])
	for _, m := range labelValues.FindAllStringSubmatch(string(raw), -1) {
		if _, ok := metrics[m[1]]; !ok {
			t.Errorf("template variable reads %s, which the controller does not serve", m[1])
		}
	}

	// What operators look for, each on a panel.
	joined := strings.Join(all, "\n")
	for _, want := range []string{"kip_nodes_warm", "kip_images_cached", "kip_image_failing", "kip_pull_duration_seconds", "kip_warm_duration_seconds", "kip_node_warm_seconds", "kip_configuration_invalid", "process_resident_memory_bytes"} {
		if !strings.Contains(joined, want) {
			t.Errorf("no panel shows %s", want)
		}
	}
}

func TestPrometheusRule(t *testing.T) {
	metrics := served(t)
	data, err := os.ReadFile(filepath.Join(dir, "prometheusrule.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var rule struct {
		APIVersion, Kind string
		Metadata         map[string]any
		Spec             struct {
			Groups []struct {
				Name  string
				Rules []struct {
					Alert, Expr, For string
					Labels           map[string]string
					Annotations      map[string]string
				}
			}
		}
	}
	if err := yaml.UnmarshalStrict(data, &rule); err != nil {
		t.Fatal(err)
	}
	if rule.APIVersion != "monitoring.coreos.com/v1" || rule.Kind != "PrometheusRule" {
		t.Errorf("%s %s", rule.APIVersion, rule.Kind)
	}
	alerts := map[string]string{}
	var all []string
	for _, g := range rule.Spec.Groups {
		for _, r := range g.Rules {
			all = append(all, r.Expr)
			alerts[r.Alert] = r.For
			if r.Labels["severity"] == "" || r.Annotations["summary"] == "" {
				t.Errorf("%s: no severity or summary", r.Alert)
			}
		}
	}
	check(t, "rules", all, metrics)
	// The alerts the issue asks for, with their durations.
	for alert, wantFor := range map[string]string{"KipImageFailing": "15m", "KipNodeNotWarm": "30m", "KipConfigurationInvalid": "5m", "KipControllerDown": "10m"} {
		if got, ok := alerts[alert]; !ok || got != wantFor {
			t.Errorf("alert %s: for %q, want %q", alert, got, wantFor)
		}
	}
}
