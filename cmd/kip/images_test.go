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
	want := "che-code-0=quay.io/eclipse/che-code:latest;universal-developer-image-1=quay.io/devfile/universal-developer-image:ubi8-latest;che-java11-maven-2=quay.io/eclipse/che-java11-maven:next\n"
	if code != 0 || out != want {
		t.Errorf("code %d, out %q, stderr %q", code, out, errOut)
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
