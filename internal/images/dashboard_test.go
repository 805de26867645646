package images

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"
)

// dashboard serves a dashboard API as che-dashboard does: the editors, the
// airgap samples (one url relative, one absolute) and their devfiles.
func dashboard(t *testing.T) *httptest.Server {
	t.Helper()
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/dashboard/api/editors":
			_, _ = w.Write([]byte(`[
  {"schemaVersion": "2.2.2", "metadata": {"name": "che-code"},
   "components": [
     {"name": "che-code-injector", "container": {"image": "quay.io/che-incubator/che-code:latest"}},
     {"name": "checode", "volume": {}},
     {"name": "che-code-runtime-description", "container": {"image": "quay.io/devfile/universal-developer-image:ubi9-latest"}}]},
  {"schemaVersion": "2.2.2", "metadata": {"name": "che-idea"},
   "components": [{"name": "idea", "container": {"image": "quay.io/che-incubator/che-idea:next"}}]}
]`))
		case "/dashboard/api/airgap-sample":
			_, _ = w.Write([]byte(`[{"displayName": "Go", "url": "/dashboard/api/airgap-sample/devfile/download?id=go"},
 {"displayName": "Java", "url": "` + srv.URL + `/samples/java/devfile.yaml"}]`))
		case "/dashboard/api/airgap-sample/devfile/download":
			if r.URL.Query().Get("id") != "go" {
				http.NotFound(w, r)
				return
			}
			_, _ = w.Write([]byte("schemaVersion: 2.2.2\ncomponents:\n- name: tools\n  container:\n    image: quay.io/devfile/universal-developer-image:ubi9-latest\n- name: go\n  container:\n    image: quay.io/example/golang:1.26\n"))
		case "/samples/java/devfile.yaml":
			_, _ = w.Write([]byte("schemaVersion: 2.2.2\ncomponents:\n- name: maven\n  container:\n    image: quay.io/example/maven:3\n"))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestFromDashboard(t *testing.T) {
	srv := dashboard(t)
	refs, problems, err := FromDashboard(context.Background(), srv.URL+"/dashboard/api/", 5*time.Second, Fetch)
	if err != nil || len(problems) != 0 {
		t.Fatalf("FromDashboard: %v %v", err, problems)
	}
	want := []string{"quay.io/che-incubator/che-code:latest", "quay.io/che-incubator/che-idea:next", "quay.io/devfile/universal-developer-image:ubi9-latest",
		"quay.io/example/golang:1.26", "quay.io/example/maven:3"}
	if got := Merge(refs); !slices.Equal(got, want) {
		t.Errorf("images %v, want %v", got, want)
	}
	if !IsDashboard(srv.URL+"/dashboard/api/") || IsDashboard(srv.URL+"/plugin-registry/v3/external_images.txt") {
		t.Error("IsDashboard")
	}

	// A dashboard that is not there: the error names the URL.
	if _, _, err := FromDashboard(context.Background(), srv.URL+"/other/dashboard/api", 5*time.Second, Fetch); err == nil || !strings.Contains(err.Error(), "/other/dashboard/api/editors") {
		t.Errorf("a missing dashboard: %v", err)
	}
}

func TestDashboardParsing(t *testing.T) {
	if _, err := EditorImages(`{"not": "an array"}`); err == nil {
		t.Error("editors that are not an array were accepted")
	}
	if _, err := SampleURLs("http://d/dashboard/api/airgap-sample", `[{"url": "%zz"}]`); err == nil {
		t.Error("a sample url that does not parse was accepted")
	}
	if _, err := DevfileImages("components: [unclosed"); err == nil {
		t.Error("a devfile that is not YAML was accepted")
	}
	got, err := DevfileImages("components:\n- name: v\n  volume: {}\n- name: blank\n  container:\n    image: ' '\n")
	if err != nil || len(got) != 0 {
		t.Errorf("a devfile without container images: %v %v", got, err)
	}
}
