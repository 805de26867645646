package images

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"
)

// Limits of one fetch. A list of every image of a platform is a few
// kilobytes; 4 MiB leaves ample room and still bounds what a rogue server
// can make the operator hold.
const (
	MaxListBytes   = 4 << 20
	connectTimeout = 10 * time.Second
	maxRedirects   = 5
)

// Read returns the text of an image list: a file, or an http(s) URL fetched
// as Fetch does. Only `kip images` reads files; the operator calls Fetch.
func Read(ctx context.Context, src string, timeout time.Duration) (string, error) {
	if !strings.Contains(src, "://") {
		b, err := os.ReadFile(src)
		return string(b), err
	}
	return Fetch(ctx, src, timeout)
}

// Fetch GETs an image list from an http or https URL within timeout (the
// whole request; connecting has its own, shorter bound). It follows
// redirects only to the same host and never from https down to http, and a
// body over MaxListBytes is an error, never a silent cut: a cut last line
// could parse as another, valid image.
func Fetch(ctx context.Context, rawURL string, timeout time.Duration) (string, error) {
	body, _, err := get(ctx, rawURL, timeout, nil)
	return body, err
}

// validators are what a server said identifies a body, to ask it again
// conditionally: its ETag and Last-Modified.
type validators struct {
	etag, lastModified string
}

// get GETs rawURL; with prev, conditionally, and a 304 then returns
// notModified. It applies Fetch's rules.
func get(ctx context.Context, rawURL string, timeout time.Duration, prev *validators) (body string, v validators, err error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", v, err
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return "", v, fmt.Errorf("URL %q: expected an http:// or https:// URL with a host", rawURL)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return "", v, err
	}
	if prev != nil {
		if prev.etag != "" {
			req.Header.Set("If-None-Match", prev.etag)
		}
		if prev.lastModified != "" {
			req.Header.Set("If-Modified-Since", prev.lastModified)
		}
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", v, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotModified && prev != nil {
		return "", *prev, errNotModified
	}
	if resp.StatusCode != http.StatusOK {
		// The code, not the server's reason phrase: errors never quote a response.
		return "", v, fmt.Errorf("HTTP %d %s", resp.StatusCode, http.StatusText(resp.StatusCode))
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxListBytes+1))
	if err != nil {
		return "", v, err
	}
	if len(b) > MaxListBytes {
		return "", v, fmt.Errorf("the list is larger than %d bytes", MaxListBytes)
	}
	return string(b), validators{etag: resp.Header.Get("ETag"), lastModified: resp.Header.Get("Last-Modified")}, nil
}

var errNotModified = errors.New("not modified")

// Bounds of a Cache: entries past them go, least recently used first.
const (
	MaxCacheEntries = 256
	MaxCacheBytes   = 32 << 20
)

// Cache fetches as Fetch does, and asks again conditionally (If-None-Match,
// If-Modified-Since) for a URL whose server gave an ETag or Last-Modified:
// a list read again every hour costs the server a 304 while it is the same.
// It holds at most MaxCacheEntries bodies and MaxCacheBytes in all.
type Cache struct {
	mu      sync.Mutex
	entries map[string]*cacheEntry
	bytes   int
	clock   uint64 // counts uses, to find the least recently used
}

type cacheEntry struct {
	validators
	body string
	used uint64
}

// Fetch returns the body of rawURL, from the cache when the server says it
// has not changed.
func (c *Cache) Fetch(ctx context.Context, rawURL string, timeout time.Duration) (string, error) {
	var ask *validators
	c.mu.Lock()
	prev, ok := c.entries[rawURL]
	if ok && (prev.etag != "" || prev.lastModified != "") {
		v := prev.validators
		ask = &v
	}
	c.mu.Unlock()
	body, v, err := get(ctx, rawURL, timeout, ask)
	switch {
	case errors.Is(err, errNotModified):
		c.mu.Lock()
		defer c.mu.Unlock()
		c.clock++
		prev.used = c.clock
		return prev.body, nil
	case err != nil:
		return "", err
	}
	c.put(rawURL, &cacheEntry{validators: v, body: body})
	return body, nil
}

// put stores e under key, then drops the least recently used entries while
// the cache is over a bound. A body without validators is not kept: it
// could never be asked for conditionally.
func (c *Cache) put(key string, e *cacheEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.entries[key]; ok {
		c.bytes -= len(old.body)
		delete(c.entries, key)
	}
	if e.etag == "" && e.lastModified == "" {
		return
	}
	if c.entries == nil {
		c.entries = map[string]*cacheEntry{}
	}
	c.clock++
	e.used = c.clock
	c.entries[key] = e
	c.bytes += len(e.body)
	for len(c.entries) > MaxCacheEntries || c.bytes > MaxCacheBytes {
		oldest := ""
		for k, v := range c.entries {
			if oldest == "" || v.used < c.entries[oldest].used {
				oldest = k
			}
		}
		c.bytes -= len(c.entries[oldest].body)
		delete(c.entries, oldest)
	}
}

// Len is how many bodies the cache holds and their size.
func (c *Cache) Len() (entries, bytes int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries), c.bytes
}

// client bounds connecting and the TLS handshake on top of the request's
// own timeout, and checks every redirect.
var client = &http.Client{
	Transport: func() http.RoundTripper {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.DialContext = (&net.Dialer{Timeout: connectTimeout}).DialContext
		t.TLSHandshakeTimeout = connectTimeout
		return t
	}(),
	CheckRedirect: checkRedirect,
}

// checkRedirect allows a redirect only within the first request's host and
// scheme strength: no other host, no https to http.
func checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= maxRedirects {
		return errors.New("too many redirects")
	}
	first := via[0].URL
	switch {
	case req.URL.Host != first.Host:
		return fmt.Errorf("redirect from %s to another host, %s: refused", first.Host, req.URL.Host)
	case first.Scheme == "https" && req.URL.Scheme != "https":
		return fmt.Errorf("redirect from https to %s: refused", req.URL.Scheme)
	}
	return nil
}
