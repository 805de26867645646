package images

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"sigs.k8s.io/yaml"
)

// DashboardSuffix ends the base URL of a workspace platform's dashboard
// API, from which current che-operator releases read the default images.
const DashboardSuffix = "/dashboard/api"

// IsDashboard tells whether src is a dashboard API base URL.
func IsDashboard(src string) bool {
	return strings.HasSuffix(strings.TrimRight(src, "/"), DashboardSuffix)
}

// devfile is what the image lists need of a devfile: the image of each
// container component.
type devfile struct {
	Components []struct {
		Name      string `json:"name"`
		Container *struct {
			Image string `json:"image"`
		} `json:"container"`
	} `json:"components"`
}

func (d devfile) images() []string {
	var out []string
	for _, c := range d.Components {
		if c.Container != nil && strings.TrimSpace(c.Container.Image) != "" {
			out = append(out, strings.TrimSpace(c.Container.Image))
		}
	}
	return out
}

// EditorImages reads the dashboard's editors endpoint, a JSON array of
// editor devfiles, and returns the image of each container component.
func EditorImages(text string) ([]string, error) {
	var editors []devfile
	if err := json.Unmarshal([]byte(text), &editors); err != nil {
		return nil, fmt.Errorf("expected a JSON array of editor devfiles: %w", err)
	}
	var out []string
	for _, e := range editors {
		out = append(out, e.images()...)
	}
	return out, nil
}

// SampleURLs reads the dashboard's airgap-sample endpoint, a JSON array of
// objects with a url, and resolves each against base.
func SampleURLs(base, text string) ([]string, error) {
	var samples []struct {
		URL string `json:"url"`
	}
	if err := json.Unmarshal([]byte(text), &samples); err != nil {
		return nil, fmt.Errorf("expected a JSON array of samples with a url: %w", err)
	}
	b, err := url.Parse(base)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, s := range samples {
		if strings.TrimSpace(s.URL) == "" {
			continue
		}
		u, err := b.Parse(strings.TrimSpace(s.URL))
		if err != nil {
			return nil, fmt.Errorf("sample url %q: %w", s.URL, err)
		}
		out = append(out, u.String())
	}
	return out, nil
}

// DevfileImages reads a devfile (YAML) and returns the image of each
// container component.
func DevfileImages(text string) ([]string, error) {
	var d devfile
	if err := yaml.Unmarshal([]byte(text), &d); err != nil {
		return nil, fmt.Errorf("expected a devfile: %w", err)
	}
	return d.images(), nil
}

// MaxSamples is how many airgap samples FromDashboard reads at most. A
// dashboard lists a few dozen; more is an error, never a silent cut.
const MaxSamples = 100

// ResponseError is a response that is not what was expected. Error() gives
// the parser's words, which may quote the response; Public leaves them out.
type ResponseError struct {
	URL      string
	Expected string
	Err      error
}

func (e *ResponseError) Error() string {
	return fmt.Sprintf("%s: expected %s: %v", e.URL, e.Expected, e.Err)
}

func (e *ResponseError) Unwrap() error { return e.Err }

// Public is err without any text a server sent: what a condition, readable
// by whoever reads the resource, may say about a failed read. Errors of
// this package other than ResponseError never quote a response.
func Public(err error) string {
	var re *ResponseError
	if errors.As(err, &re) {
		return fmt.Sprintf("%s: expected %s", re.URL, re.Expected)
	}
	return err.Error()
}

// SameOrigin tells whether u has base's scheme and host (with its port):
// the only URLs a dashboard's lists may send the operator to. Anything else
// would let whoever writes a list make the operator fetch from any address
// it can reach, and would let https fall back to http.
func SameOrigin(base, u string) bool {
	b, err1 := url.Parse(base)
	v, err2 := url.Parse(u)
	return err1 == nil && err2 == nil && b.Host != "" &&
		strings.EqualFold(b.Scheme, v.Scheme) && strings.EqualFold(b.Host, v.Host)
}

// FromDashboard reads, with read (Fetch, or a Cache's), the default images
// of a dashboard API at base (…/dashboard/api): the editors' container
// images, and those of each airgap sample's devfile. Sample URLs must be on
// base's origin (SameOrigin) and at most MaxSamples. Each fetch has its own
// timeout, and ctx's deadline bounds them all; an error names the URL.
// References that do not parse are problems, as in Parse.
func FromDashboard(ctx context.Context, base string, timeout time.Duration, read func(context.Context, string, time.Duration) (string, error)) ([]string, []Problem, error) {
	base = strings.TrimRight(base, "/")
	// each reads one URL and what parse finds in it; an error names the URL.
	each := func(u, expected string, parse func(string) ([]string, error)) ([]string, error) {
		text, err := read(ctx, u, timeout)
		if err != nil {
			return nil, fmt.Errorf("GET %s: %w", u, err)
		}
		found, err := parse(text)
		if err != nil {
			return nil, &ResponseError{URL: u, Expected: expected, Err: err}
		}
		return found, nil
	}
	found, err := each(base+"/editors", "a JSON array of editor devfiles", EditorImages)
	if err != nil {
		return nil, nil, err
	}
	samplesURL := base + "/airgap-sample"
	urls, err := each(samplesURL, "a JSON array of samples with a url", func(text string) ([]string, error) { return SampleURLs(samplesURL, text) })
	if err != nil {
		return nil, nil, err
	}
	if len(urls) > MaxSamples {
		return nil, nil, fmt.Errorf("%s: %d samples, more than the %d read at most", samplesURL, len(urls), MaxSamples)
	}
	for i, u := range urls {
		if !SameOrigin(base, u) {
			return nil, nil, fmt.Errorf("%s: sample %d is not on the dashboard's origin (%s): refused", samplesURL, i+1, origin(base))
		}
	}
	for _, u := range urls {
		imgs, err := each(u, "a devfile", DevfileImages)
		if err != nil {
			return nil, nil, err
		}
		found = append(found, imgs...)
	}
	var refs []string
	var problems []Problem
	for i, ref := range found {
		if _, err := name.ParseReference(ref); err != nil {
			problems = append(problems, Problem{Source: base, Line: i + 1, Text: ref, Err: err})
			continue
		}
		refs = append(refs, ref)
	}
	return refs, problems, nil
}

// origin is scheme://host of a URL that parsed before.
func origin(u string) string {
	p, _ := url.Parse(u)
	return p.Scheme + "://" + p.Host
}

// Load reads the images of one source: a dashboard API base URL (see
// FromDashboard), or a plain list, one reference per line, read by read
// (Fetch in the operator, Read, which also takes files, in `kip images`).
func Load(ctx context.Context, src string, timeout time.Duration, read func(context.Context, string, time.Duration) (string, error)) ([]string, []Problem, error) {
	if IsDashboard(src) {
		return FromDashboard(ctx, src, timeout, read)
	}
	text, err := read(ctx, src, timeout)
	if err != nil {
		return nil, nil, fmt.Errorf("GET %s: %w", src, err)
	}
	refs, problems := Parse(src, text)
	return refs, problems, nil
}
