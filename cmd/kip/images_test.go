package main

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestImages(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/plugin-registry/v3/external_images.txt":
			_, _ = w.Write([]byte("quay.io/eclipse/che-code:latest\nquay.io/devfile/universal-developer-image:ubi8-latest\n"))
		case "/dashboard/api/editors":
			_, _ = w.Write([]byte(`[{"components": [{"name": "ide", "container": {"image": "quay.io/che-incubator/che-code:next"}}]}]`))
		case "/dashboard/api/airgap-sample":
			_, _ = w.Write([]byte(`[{"url": "/samples/go.yaml"}]`))
		case "/samples/go.yaml":
			_, _ = w.Write([]byte("components:\n- name: go\n  container:\n    image: quay.io/example/golang:1.26\n"))
		case "/broken.txt":
			_, _ = w.Write([]byte("quay.io/ok:1\nthis is not an image\n"))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	file := filepath.Join(t.TempDir(), "devfiles.txt")
	if err := os.WriteFile(file, []byte("# devfiles\nquay.io/devfile/universal-developer-image:ubi8-latest\nquay.io/eclipse/che-java11-maven:next\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	out, errOut, code := run(t, "images", "--from", srv.URL+"/plugin-registry/v3/external_images.txt", "--from", file)
	want := "universal-developer-image-0=quay.io/devfile/universal-developer-image:ubi8-latest;che-code-1=quay.io/eclipse/che-code:latest;che-java11-maven-2=quay.io/eclipse/che-java11-maven:next\n"
	if code != 0 || out != want {
		t.Errorf("code %d, out %q, stderr %q", code, out, errOut)
	}

	// A dashboard API, merged with a registry list.
	out, errOut, code = run(t, "images", "--from", srv.URL+"/dashboard/api", "--from", srv.URL+"/plugin-registry/v3/external_images.txt")
	want = "che-code-0=quay.io/che-incubator/che-code:next;universal-developer-image-1=quay.io/devfile/universal-developer-image:ubi8-latest;che-code-2=quay.io/eclipse/che-code:latest;golang-3=quay.io/example/golang:1.26\n"
	if code != 0 || out != want {
		t.Errorf("dashboard: code %d, out %q, stderr %q", code, out, errOut)
	}

	_, errOut, code = run(t, "images", "--from", srv.URL+"/broken.txt")
	if code != 1 || !strings.Contains(errOut, "broken.txt:2") || !strings.Contains(errOut, "this is not an image") {
		t.Errorf("a bad line: code %d, stderr %q", code, errOut)
	}
	_, errOut, code = run(t, "images", "--from", srv.URL+"/missing.txt")
	if code == 0 || !strings.Contains(errOut, "404") {
		t.Errorf("a missing list: code %d, stderr %q", code, errOut)
	}
}
