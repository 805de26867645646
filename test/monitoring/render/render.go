// Package render draws the Grafana dashboard in deploy/monitoring from
// scraped metrics, with Prometheus's own TSDB and PromQL engine and gonum's
// plots: a static rendering of what the dashboard shows, panel by panel,
// for the e2e run and the README. It stands in for Grafana, which is not
// available on these machines; the queries are the dashboard's, unchanged,
// with $namespace matching every namespace.
package render

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/tsdb"
)

// A Scrape is one scrape of a target: when, the labels Prometheus adds for
// the target (namespace and pod, as a ServiceMonitor's relabelling does),
// and the exposition text the target served.
type Scrape struct {
	At     time.Time
	Target map[string]string
	Text   []byte
}

// ReadScrapes reads a folder of scrapes, one file each, named
// <unix milliseconds>.prom, whose first line is
// "# target name=value name=value" and the rest the exposition text.
func ReadScrapes(dir string) ([]Scrape, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.prom"))
	if err != nil {
		return nil, err
	}
	var out []Scrape
	for _, f := range files {
		ms, err := strconv.ParseInt(strings.TrimSuffix(filepath.Base(f), ".prom"), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%s: the name is not <unix milliseconds>.prom", f)
		}
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		first, rest, _ := bytes.Cut(data, []byte("\n"))
		spec, ok := strings.CutPrefix(string(first), "# target ")
		if !ok {
			return nil, fmt.Errorf("%s: the first line is %q; expected \"# target name=value\" and more pairs", f, first)
		}
		target := map[string]string{}
		for _, kv := range strings.Fields(spec) {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				return nil, fmt.Errorf("%s: target label %q: expected name=value", f, kv)
			}
			target[k] = v
		}
		out = append(out, Scrape{At: time.UnixMilli(ms), Target: target, Text: rest})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].At.Before(out[j].At) })
	return out, nil
}

// Dashboard is the part of a Grafana dashboard that is drawn.
type Dashboard struct {
	Title  string  `json:"title"`
	Panels []Panel `json:"panels"`
}

// Panel is one Grafana panel: where it sits on the 24-column grid, and its
// queries.
type Panel struct {
	Title   string `json:"title"`
	Type    string `json:"type"`
	GridPos struct {
		X, Y, W, H int
	} `json:"gridPos"`
	Targets []struct {
		Expr         string `json:"expr"`
		LegendFormat string `json:"legendFormat"`
	} `json:"targets"`
}

// LoadDashboard reads a Grafana dashboard's JSON.
func LoadDashboard(path string) (Dashboard, error) {
	var d Dashboard
	data, err := os.ReadFile(path)
	if err != nil {
		return d, err
	}
	if err := json.Unmarshal(data, &d); err != nil {
		return d, fmt.Errorf("%s: %w", path, err)
	}
	if len(d.Panels) == 0 {
		return d, fmt.Errorf("%s: no panels", path)
	}
	return d, nil
}

// Series is one line of a panel: its legend, and its points (seconds since
// the first scrape, value).
type Series struct {
	Legend string
	T, V   []float64
}

// Result is what a panel's queries returned, over Seconds from the first
// scrape.
type Result struct {
	Panel   Panel
	Series  []Series
	Seconds float64
}

// Points counts the points of every series.
func (r Result) Points() int {
	n := 0
	for _, s := range r.Series {
		n += len(s.T)
	}
	return n
}

// Evaluate loads the scrapes into a TSDB and runs each panel's queries
// over the scrapes' time range, one step apart.
func Evaluate(ctx context.Context, d Dashboard, scrapes []Scrape, step time.Duration) ([]Result, error) {
	if len(scrapes) < 2 {
		return nil, fmt.Errorf("%d scrapes; a rendering needs at least 2", len(scrapes))
	}
	dir, err := os.MkdirTemp("", "kip-render-")
	if err != nil {
		return nil, err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	db, err := tsdb.Open(dir, nil, nil, tsdb.DefaultOptions(), nil)
	if err != nil {
		return nil, err
	}
	defer func() { _ = db.Close() }()
	seen := map[string]map[string]labels.Labels{} // by target: the last scrape's series
	for _, s := range scrapes {
		target := labels.FromMap(s.Target).String()
		now, err := load(ctx, db, s, seen[target])
		if err != nil {
			return nil, err
		}
		seen[target] = now
	}

	engine := promql.NewEngine(promql.EngineOpts{MaxSamples: 5_000_000, Timeout: time.Minute, LookbackDelta: 5 * time.Minute})
	start, end := scrapes[0].At, scrapes[len(scrapes)-1].At
	var out []Result
	for _, p := range d.Panels {
		r := Result{Panel: p, Seconds: end.Sub(start).Seconds()}
		for _, target := range p.Targets {
			lines, err := rangeQuery(ctx, engine, db, target.Expr, target.LegendFormat, start, end, step)
			if err != nil {
				return nil, fmt.Errorf("panel %q: %q: %w", p.Title, target.Expr, err)
			}
			r.Series = append(r.Series, lines...)
		}
		out = append(out, r)
	}
	return out, nil
}

// rangeQuery runs one of the dashboard's expressions, with $namespace
// matching every namespace, from start to end, and returns its series with
// their legends, in seconds from start; points that are not numbers are
// left out, and series with none.
func rangeQuery(ctx context.Context, engine *promql.Engine, db *tsdb.DB, expr, legendFormat string, start, end time.Time, step time.Duration) ([]Series, error) {
	q, err := engine.NewRangeQuery(ctx, db, nil, strings.ReplaceAll(expr, "$namespace", ".*"), start, end, step)
	if err != nil {
		return nil, err
	}
	defer q.Close()
	res := q.Exec(ctx)
	if res.Err != nil {
		return nil, res.Err
	}
	m, err := res.Matrix()
	if err != nil {
		return nil, err
	}
	var out []Series
	for _, s := range m {
		line := Series{Legend: legend(legendFormat, s.Metric)}
		for _, f := range s.Floats {
			if math.IsNaN(f.F) || math.IsInf(f.F, 0) {
				continue
			}
			line.T = append(line.T, float64(f.T-start.UnixMilli())/1000)
			line.V = append(line.V, f.F)
		}
		if len(line.T) > 0 {
			out = append(out, line)
		}
	}
	return out, nil
}

// load appends one scrape's samples, with the target's labels, as
// Prometheus stores them: a histogram as its _bucket, _sum and _count
// series, and a staleness marker for each series of the target's last
// scrape (before) that this one no longer has. It returns this scrape's
// series.
func load(ctx context.Context, db *tsdb.DB, s Scrape, before map[string]labels.Labels) (map[string]labels.Labels, error) {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(s.Text))
	if err != nil {
		return nil, fmt.Errorf("the scrape at %s: %w", s.At.Format(time.RFC3339), err)
	}
	app := db.Appender(ctx)
	at := s.At.UnixMilli()
	now := map[string]labels.Labels{}
	add := func(name string, m *dto.Metric, extra map[string]string, v float64) error {
		l := map[string]string{model.MetricNameLabel: name}
		for k, v := range s.Target {
			l[k] = v
		}
		for _, lp := range m.GetLabel() {
			l[lp.GetName()] = lp.GetValue()
		}
		for k, v := range extra {
			l[k] = v
		}
		ls := labels.FromMap(l)
		now[ls.String()] = ls
		_, err := app.Append(0, ls, at, v)
		return err
	}
	for name, f := range families {
		for _, m := range f.GetMetric() {
			var err error
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				err = add(name, m, nil, m.GetCounter().GetValue())
			case dto.MetricType_GAUGE:
				err = add(name, m, nil, m.GetGauge().GetValue())
			case dto.MetricType_UNTYPED:
				err = add(name, m, nil, m.GetUntyped().GetValue())
			case dto.MetricType_HISTOGRAM:
				h := m.GetHistogram()
				for _, b := range h.GetBucket() {
					if err = add(name+"_bucket", m, map[string]string{"le": strconv.FormatFloat(b.GetUpperBound(), 'g', -1, 64)}, float64(b.GetCumulativeCount())); err != nil {
						break
					}
				}
				if err == nil {
					err = add(name+"_bucket", m, map[string]string{"le": "+Inf"}, float64(h.GetSampleCount()))
				}
				if err == nil {
					err = add(name+"_sum", m, nil, h.GetSampleSum())
				}
				if err == nil {
					err = add(name+"_count", m, nil, float64(h.GetSampleCount()))
				}
			}
			if err != nil {
				_ = app.Rollback()
				return nil, fmt.Errorf("%s at %s: %w", name, s.At.Format(time.RFC3339), err)
			}
		}
	}
	for key, ls := range before {
		if _, still := now[key]; !still {
			if _, err := app.Append(0, ls, at, math.Float64frombits(value.StaleNaN)); err != nil {
				_ = app.Rollback()
				return nil, fmt.Errorf("%s gone at %s: %w", ls, s.At.Format(time.RFC3339), err)
			}
		}
	}
	return now, app.Commit()
}

var legendLabel = regexp.MustCompile(`\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}`)

// legend fills a Grafana legend format ("{{node}} ...") from a series'
// labels; with no format, the labels themselves.
func legend(format string, l labels.Labels) string {
	if format == "" {
		return l.String()
	}
	return legendLabel.ReplaceAllStringFunc(format, func(m string) string {
		return l.Get(legendLabel.FindStringSubmatch(m)[1])
	})
}
