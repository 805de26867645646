package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kip-image-puller/kip/internal/parallel"
)

// proc is a process this command started, sampled from /proc every 250 ms.
type proc struct {
	cmd         *exec.Cmd
	metricsAddr string
	pprofAddr   string
	exited      chan struct{}

	mu      sync.Mutex
	samples []procSample
}

type procSample struct {
	at         time.Time
	rss, anon  int64   // bytes: all resident, and the anonymous part (not the binary's file pages)
	cpuSeconds float64 // user + system
}

// clockTicks is the kernel's USER_HZ, the unit of /proc/PID/stat's times.
const clockTicks = 100

func startProc(logFile, metricsAddr, name string, args ...string) (*proc, error) {
	log, err := os.Create(logFile)
	if err != nil {
		return nil, err
	}
	// Stopped by its PID (stop), not by a context: it outlives the calls.
	cmd := exec.CommandContext(context.Background(), name, args...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, err
	}
	p := &proc{cmd: cmd, metricsAddr: metricsAddr, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		log.Close()
		close(p.exited)
	}()
	go p.sample()
	return p, nil
}

func (p *proc) sample() {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-p.exited:
			return
		case <-tick.C:
		}
		s, err := readProc(p.cmd.Process.Pid)
		if err != nil {
			continue
		}
		p.mu.Lock()
		p.samples = append(p.samples, s)
		p.mu.Unlock()
	}
}

func readProc(pid int) (procSample, error) {
	s := procSample{at: time.Now()}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, err
	}
	// The fields after the command name, which is in parentheses.
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	if len(fields) < 22 {
		return s, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(fields))
	}
	utime, _ := strconv.ParseFloat(fields[11], 64)
	stime, _ := strconv.ParseFloat(fields[12], 64)
	rssPages, _ := strconv.ParseInt(fields[21], 10, 64)
	s.cpuSeconds = (utime + stime) / clockTicks
	s.rss = rssPages * int64(os.Getpagesize())
	if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		for _, line := range strings.Split(string(st), "\n") {
			if v, ok := strings.CutPrefix(line, "RssAnon:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				s.anon = kb << 10
			}
		}
	}
	return s, nil
}

// stop ends the process by its PID: SIGTERM, then SIGKILL after 20 s.
func (p *proc) stop() {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(20 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// usage is the process's resources over a window.
type usage struct {
	peakRSS, lastRSS   float64 // MiB
	peakAnon, lastAnon float64 // MiB: the anonymous part of RSS
	cores              float64 // mean CPU cores used
}

func (p *proc) window(from, to time.Time) usage {
	p.mu.Lock()
	defer p.mu.Unlock()
	var in []procSample
	for _, s := range p.samples {
		if !s.at.Before(from) && !s.at.After(to) {
			in = append(in, s)
		}
	}
	var u usage
	if len(in) == 0 {
		return u
	}
	for _, s := range in {
		u.peakRSS = math.Max(u.peakRSS, float64(s.rss)/(1<<20))
		u.peakAnon = math.Max(u.peakAnon, float64(s.anon)/(1<<20))
	}
	first, last := in[0], in[len(in)-1]
	u.lastRSS = float64(last.rss) / (1 << 20)
	u.lastAnon = float64(last.anon) / (1 << 20)
	if d := last.at.Sub(first.at).Seconds(); d > 0 {
		u.cores = (last.cpuSeconds - first.cpuSeconds) / d
	}
	return u
}

// saveProfile writes the process's pprof profile (heap, or profile for 30
// s of CPU) to file.
func (p *proc) saveProfile(profile, file string) error {
	resp, err := get("http://" + p.pprofAddr + "/debug/pprof/" + profile)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("pprof %s: %s", profile, resp.Status)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// get GETs url, on loopback, within a minute (a CPU profile takes 30 s).
func get(url string) (*http.Response, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		cancel()
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		return nil, err
	}
	resp.Body = cancelOnClose{resp.Body, cancel}
	return resp, nil
}

type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c cancelOnClose) Close() error {
	defer c.cancel()
	return c.ReadCloser.Close()
}

// metrics reads the process's Prometheus metrics (plain HTTP on loopback).
func (p *proc) metrics() (string, error) {
	resp, err := get("http://" + p.metricsAddr + "/metrics")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("metrics: %s", resp.Status)
	}
	return string(b), err
}

// metricValue sums the samples of metric name whose labels hold every one
// of labels (name="value" each), in Prometheus text.
func metricValue(text, name string, labels ...string) float64 {
	total := 0.0
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		ok := true
		for _, l := range labels {
			ok = ok && strings.Contains(line, l)
		}
		if !ok {
			continue
		}
		if v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64); err == nil {
			total += v
		}
	}
	return total
}

func delta(before, after, name string, labels ...string) float64 {
	return metricValue(after, name, labels...) - metricValue(before, name, labels...)
}

func (s *scale) apiserverMetrics(ctx context.Context) (string, error) {
	b, err := s.cs.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	return string(b), err
}

// poll calls done every interval until it is true, fails, or timeout passes.
func poll(ctx context.Context, timeout, interval time.Duration, what string, done func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, err := done()
		if err != nil {
			return fmt.Errorf("waiting for %s: %w", what, err)
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not within %v", what, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(interval):
		}
	}
}

// forEach calls f for 0..n-1, workers at a time, and returns the first error.
func forEach(ctx context.Context, n, workers int, f func(context.Context, int) error) error {
	indices := make([]int, n)
	for i := range indices {
		indices[i] = i
	}
	for _, err := range parallel.Map(indices, workers, func(i int) error { return f(ctx, i) }) {
		if err != nil {
			return err
		}
	}
	return nil
}

// results holds each scenario's measurements by node count.
type results struct {
	sections []string
	rows     map[string][]string
	values   map[string]map[int]float64
	units    map[string]string
}

func (r *results) add(section, row string, n int, v float64, unit string) {
	if r.rows == nil {
		r.rows, r.values, r.units = map[string][]string{}, map[string]map[int]float64{}, map[string]string{}
	}
	if _, ok := r.rows[section]; !ok {
		r.sections = append(r.sections, section)
	}
	key := section + "\x00" + row
	if _, ok := r.values[key]; !ok {
		r.rows[section] = append(r.rows[section], row)
		r.values[key] = map[int]float64{}
	}
	r.values[key][n] = v
	r.units[key] = unit
}

// print writes a table per section: a column per node count, then the
// ratio of the last count to the first, and how the figure grows.
func (r *results) print(w io.Writer, counts []int, images int) {
	for _, section := range r.sections {
		fmt.Fprintf(w, "\n%s, %d images\n", section, images)
		fmt.Fprint(w, "MEASUREMENT")
		for _, n := range counts {
			fmt.Fprintf(w, "\t%d NODES", n)
		}
		if len(counts) > 1 {
			fmt.Fprintf(w, "\tRATIO %d/%d\tGROWS", counts[len(counts)-1], counts[0])
		}
		fmt.Fprintln(w)
		for _, row := range r.rows[section] {
			key := section + "\x00" + row
			fmt.Fprint(w, row)
			for _, n := range counts {
				v, ok := r.values[key][n]
				if !ok {
					fmt.Fprint(w, "\t-")
					continue
				}
				fmt.Fprintf(w, "\t%s", format(v, r.units[key]))
			}
			if len(counts) > 1 {
				a, okA := r.values[key][counts[0]]
				b, okB := r.values[key][counts[len(counts)-1]]
				if okA && okB {
					fmt.Fprintf(w, "\t%s\t%s", ratioText(a, b), growth(a, b, float64(counts[len(counts)-1])/float64(counts[0])))
				} else {
					fmt.Fprint(w, "\t-\t-")
				}
			}
			fmt.Fprintln(w)
		}
	}
}

// unitFormats print a value of each unit.
var unitFormats = map[string]string{"s": "%.2fs", "ms": "%.0fms", "MiB": "%.1fMi", "KiB": "%.0fKi", "cores": "%.3f", "/min": "%.1f/min"}

func format(v float64, unit string) string {
	if f, ok := unitFormats[unit]; ok {
		return fmt.Sprintf(f, v)
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

func ratioText(a, b float64) string {
	if a == 0 {
		if b == 0 {
			return "-"
		}
		return "from 0"
	}
	return fmt.Sprintf("%.2fx", b/a)
}

// growth names how b, at k times the nodes, grew from a.
func growth(a, b, k float64) string {
	if a == 0 || b == 0 {
		return "-"
	}
	r := b / a
	switch {
	case r <= 1.25:
		return "flat"
	case r >= 0.75*k && r <= 1.25*k:
		return "linear"
	case r > 1.25*k:
		return "faster than linear"
	}
	return "less than linear"
}
