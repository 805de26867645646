package images

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestFetch(t *testing.T) {
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "other.example.com/stolen:1")
	}))
	defer other.Close()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/list":
			fmt.Fprintln(w, "quay.io/a/b:1")
		case "/moved":
			http.Redirect(w, r, "/list", http.StatusFound)
		case "/elsewhere":
			http.Redirect(w, r, other.URL+"/list", http.StatusFound)
		case "/loop":
			http.Redirect(w, r, "/loop", http.StatusFound)
		case "/huge":
			// One byte over the limit; a cut would leave "quay.io/a/b:1" plus a
			// partial line that still parses as an image.
			body := strings.Repeat("quay.io/a/b:1\n", MaxListBytes/14+1)
			fmt.Fprint(w, body[:MaxListBytes+1])
		case "/exact":
			fmt.Fprint(w, strings.Repeat("x", MaxListBytes))
		case "/slow":
			<-release
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	defer close(release) // before Close, which waits for the /slow handler

	tests := []struct {
		name, url, want, err string
	}{
		{"list", srv.URL + "/list", "quay.io/a/b:1\n", ""},
		{"redirect on the same host", srv.URL + "/moved", "quay.io/a/b:1\n", ""},
		{"redirect to another host", srv.URL + "/elsewhere", "", "another host"},
		{"redirect loop", srv.URL + "/loop", "", "too many redirects"},
		{"body over the limit", srv.URL + "/huge", "", "larger than"},
		{"body at the limit", srv.URL + "/exact", strings.Repeat("x", MaxListBytes), ""},
		{"not found", srv.URL + "/nothing", "", "404"},
		{"file URL", "file:///etc/passwd", "", "expected an http:// or https:// URL"},
		{"plain path", "/etc/passwd", "", "expected an http:// or https:// URL"},
		{"ftp", "ftp://127.0.0.1/list", "", "expected an http:// or https:// URL"},
		{"no host", "http:///list", "", "expected an http:// or https:// URL"},
		{"whole-request timeout", srv.URL + "/slow", "", "deadline exceeded"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			got, err := Fetch(context.Background(), tt.url, 2*time.Second)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("Fetch(%s) = %d bytes, %v; want an error containing %q", tt.url, len(got), err, tt.err)
				}
				if time.Since(start) > 5*time.Second {
					t.Errorf("the error took %v", time.Since(start))
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Fetch(%s) = %.40q, %v; want %.40q", tt.url, got, err, tt.want)
			}
		})
	}
}

func TestCheckRedirect(t *testing.T) {
	req := func(raw string) *http.Request {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		return &http.Request{URL: u}
	}
	tests := []struct {
		from, to string
		ok       bool
	}{
		{"https://reg.example.com/a", "https://reg.example.com/b", true},
		{"http://reg.example.com/a", "https://reg.example.com/b", true},
		{"https://reg.example.com/a", "http://reg.example.com/b", false},
		{"https://reg.example.com/a", "https://evil.example.com/b", false},
		{"https://reg.example.com/a", "https://reg.example.com:8443/b", false},
	}
	for _, tt := range tests {
		err := checkRedirect(req(tt.to), []*http.Request{req(tt.from)})
		if (err == nil) != tt.ok {
			t.Errorf("%s -> %s: %v, want ok=%v", tt.from, tt.to, err, tt.ok)
		}
	}
}

// TestCacheAsksConditionally: a list whose server gives an ETag (or a
// Last-Modified) is asked for again conditionally, and a 304 answers from
// the cache; a changed list is read in full.
func TestCacheAsksConditionally(t *testing.T) {
	var full, notModified int
	body, etag := "quay.io/a/b:1\n", `"v1"`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/etag":
			if r.Header.Get("If-None-Match") == etag {
				notModified++
				w.WriteHeader(http.StatusNotModified)
				return
			}
			w.Header().Set("ETag", etag)
		case "/modified":
			if r.Header.Get("If-Modified-Since") == "Sun, 29 Nov 2026 08:00:00 GMT" {
				notModified++
				w.WriteHeader(http.StatusNotModified)
				return
			}
			w.Header().Set("Last-Modified", "Sun, 29 Nov 2026 08:00:00 GMT")
		}
		full++
		fmt.Fprint(w, body)
	}))
	defer srv.Close()
	var c Cache
	fetch := func(path string) string {
		t.Helper()
		got, err := c.Fetch(context.Background(), srv.URL+path, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	for range 3 {
		if got := fetch("/etag"); got != "quay.io/a/b:1\n" {
			t.Fatalf("body %q", got)
		}
	}
	if full != 1 || notModified != 2 {
		t.Errorf("ETag: %d full reads and %d 304s, want 1 and 2", full, notModified)
	}
	body, etag = "quay.io/a/b:2\n", `"v2"`
	if got := fetch("/etag"); got != "quay.io/a/b:2\n" {
		t.Errorf("a changed list read as %q", got)
	}
	fetch("/modified")
	fetch("/modified")
	if full != 3 || notModified != 3 {
		t.Errorf("Last-Modified: %d full reads and %d 304s, want 3 and 3", full, notModified)
	}
	fetch("/plain") // no validators: always read in full
	fetch("/plain")
	if full != 5 {
		t.Errorf("%d full reads, want 5", full)
	}
}

// TestCacheIsBounded: the cache keeps at most MaxCacheEntries bodies and
// MaxCacheBytes, dropping the least recently used first, and keeps no body
// it could not ask for conditionally.
func TestCacheIsBounded(t *testing.T) {
	var c Cache
	withETag := func(body string) *cacheEntry { return &cacheEntry{validators: validators{etag: `"x"`}, body: body} }
	c.put("no-validators", &cacheEntry{body: "quay.io/a/b:1"})
	if n, _ := c.Len(); n != 0 {
		t.Fatalf("a body without validators was kept")
	}
	for i := range MaxCacheEntries + 10 {
		c.put(fmt.Sprint(i), withETag("quay.io/a/b:1"))
	}
	if n, _ := c.Len(); n != MaxCacheEntries {
		t.Errorf("%d entries, want the bound %d", n, MaxCacheEntries)
	}
	if _, ok := c.entries["0"]; ok {
		t.Error("the least recently used entry was kept")
	}
	if _, ok := c.entries[fmt.Sprint(MaxCacheEntries+9)]; !ok {
		t.Error("the newest entry was dropped")
	}
	big := strings.Repeat("x", MaxListBytes)
	for i := range MaxCacheBytes/MaxListBytes + 3 {
		c.put(fmt.Sprint("big", i), withETag(big))
	}
	if _, bytes := c.Len(); bytes > MaxCacheBytes {
		t.Errorf("%d bytes held, over the bound %d", bytes, MaxCacheBytes)
	}
	c.put("big0", withETag("small")) // replacing an entry frees its bytes
	total := 0
	for _, e := range c.entries {
		total += len(e.body)
	}
	if _, bytes := c.Len(); bytes != total {
		t.Errorf("the cache counts %d bytes, holds %d", bytes, total)
	}
}
