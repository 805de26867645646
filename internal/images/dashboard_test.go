package images

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
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

// TestDashboardStaysOnItsOrigin: a dashboard's samples may only send the
// operator to the dashboard's own scheme and host, at most MaxSamples of
// them, and what a condition may say of a bad response quotes none of it.
func TestDashboardStaysOnItsOrigin(t *testing.T) {
	var mu sync.Mutex // the server's goroutines and the test's
	var samples string
	var fetched []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		fetched = append(fetched, r.URL.Path)
		switch r.URL.Path {
		case "/dashboard/api/editors":
			_, _ = w.Write([]byte(`[]`))
		case "/dashboard/api/airgap-sample":
			_, _ = w.Write([]byte(samples))
		default:
			_, _ = w.Write([]byte("components: []\n"))
		}
	}))
	defer srv.Close()
	base := srv.URL + "/dashboard/api"
	many := make([]string, MaxSamples+1)
	for i := range many {
		many[i] = `{"url": "/s"}`
	}
	tests := []struct {
		name, samples, err string
	}{
		{"relative", `[{"url": "/s"}]`, ""},
		{"absolute on the same origin", `[{"url": "` + srv.URL + `/s"}]`, ""},
		{"another host", `[{"url": "http://169.254.169.254/latest/meta-data"}]`, "sample 1 is not on the dashboard's origin"},
		{"another port", `[{"url": "/s"}, {"url": "http://127.0.0.1:1/s"}]`, "sample 2 is not on the dashboard's origin"},
		{"another scheme", `[{"url": "https://` + strings.TrimPrefix(srv.URL, "http://") + `/s"}]`, "sample 1 is not on the dashboard's origin"},
		{"too many", "[" + strings.Join(many, ",") + "]", fmt.Sprintf("%d samples, more than the %d", MaxSamples+1, MaxSamples)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mu.Lock()
			samples, fetched = tt.samples, nil
			mu.Unlock()
			_, _, err := FromDashboard(context.Background(), base, 5*time.Second, Fetch)
			mu.Lock()
			defer mu.Unlock()
			if tt.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("err %v, want %q", err, tt.err)
			}
			if len(fetched) != 2 {
				t.Errorf("fetched %v; a refused list must fetch no sample", fetched)
			}
		})
	}

	// A response that is not what was expected: Public names the URL and
	// what was expected, and quotes nothing of the body.
	mu.Lock()
	samples = `"secret-token-from-an-internal-service"`
	mu.Unlock()
	_, _, err := FromDashboard(context.Background(), base, 5*time.Second, Fetch)
	if err == nil || Public(err) != base+"/airgap-sample: expected a JSON array of samples with a url" {
		t.Errorf("Public(%v) = %q", err, Public(err))
	}
	p := Problem{Source: base, Line: 3, Text: "secret-token", Err: fmt.Errorf("bad")}
	if strings.Contains(p.Public(), "secret") || !strings.Contains(p.Public(), base+":3") {
		t.Errorf("Problem.Public() = %q", p.Public())
	}
}

func TestSameOrigin(t *testing.T) {
	tests := []struct {
		base, u string
		want    bool
	}{
		{"http://che-dashboard.che.svc:8080/dashboard/api", "http://che-dashboard.che.svc:8080/x", true},
		{"https://che.example.com/dashboard/api", "https://CHE.example.com/x", true},
		{"https://che.example.com/dashboard/api", "http://che.example.com/x", false},
		{"http://che-dashboard.che.svc:8080/dashboard/api", "http://che-dashboard.che.svc/x", false},
		{"http://che-dashboard.che.svc:8080/dashboard/api", "http://kubernetes.default.svc/x", false},
		{"http://che-dashboard.che.svc:8080/dashboard/api", "http://che-dashboard.che.svc:8080@evil.example.com/x", false},
		{"/relative", "/relative", false},
	}
	for _, tt := range tests {
		if got := SameOrigin(tt.base, tt.u); got != tt.want {
			t.Errorf("SameOrigin(%s, %s) = %v, want %v", tt.base, tt.u, got, tt.want)
		}
	}
}
