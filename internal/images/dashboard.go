package images

import (
	"context"
	"encoding/json"
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

// FromDashboard reads, with read (Fetch, or a Cache's), the default images
// of a dashboard API at base (…/dashboard/api): the editors' container
// images, and those of each airgap sample's devfile. Each fetch has its own
// timeout; an error names the URL. References that do not parse are
// problems, as in Parse.
func FromDashboard(ctx context.Context, base string, timeout time.Duration, read func(context.Context, string, time.Duration) (string, error)) ([]string, []Problem, error) {
	base = strings.TrimRight(base, "/")
	// each reads one URL and what parse finds in it; an error names the URL.
	each := func(u string, parse func(string) ([]string, error)) ([]string, error) {
		text, err := read(ctx, u, timeout)
		if err != nil {
			return nil, fmt.Errorf("GET %s: %w", u, err)
		}
		found, err := parse(text)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", u, err)
		}
		return found, nil
	}
	found, err := each(base+"/editors", EditorImages)
	if err != nil {
		return nil, nil, err
	}
	samplesURL := base + "/airgap-sample"
	urls, err := each(samplesURL, func(text string) ([]string, error) { return SampleURLs(samplesURL, text) })
	if err != nil {
		return nil, nil, err
	}
	for _, u := range urls {
		imgs, err := each(u, DevfileImages)
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
