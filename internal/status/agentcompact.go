package status

import (
	"hash/fnv"
	"strconv"
	"strings"
	"time"

	"github.com/kip-image-puller/kip/internal/agent/report"
)

// An agent's report of 100 images is about 27 KB of JSON on its pod: each
// image's reference, digest and times, spelled out. A controller that
// caches a pod per node keeps instead a compact form: what Compute reads, a
// sixth of the size. Each reference becomes a fingerprint (enough to tell
// the list the agent follows from a newer one), and the digests are left
// out, as the compact form of daemonset mode's pods leaves out image IDs.

// AnnotationAgentReport holds the compact form of an agent's report on a
// compact pod:
//
//	v2 TAB heals TAB runtime TAB pinning TAB disk [TAB secret-problem ...]
//
// where disk is - or capacity,available,images,cached,pinned,budget,floor
// in bytes, then ,error.
//
//	name TAB ref-fingerprint TAB C|P|F TAB since-unix|- TAB pull-seconds TAB reason TAB message
const AnnotationAgentReport = "kip.dev/compact-agent-report"

const compactReportVersion = "v2"

// fingerprintPrefix marks an Image of a compact report: a fingerprint of
// the reference, not the reference.
const fingerprintPrefix = "#"

func fingerprint(ref string) string {
	h := fnv.New64a()
	_, _ = h.Write([]byte(ref))
	return fingerprintPrefix + strconv.FormatUint(h.Sum64(), 36)
}

// sameRef tells whether an agent's reported image is ref, in either form.
func sameRef(reported, ref string) bool { return refPrints{}.same(reported, ref) }

// refPrints holds each reference's fingerprint: Compute hashes each
// configured reference once, not once per node.
type refPrints map[string]string

func (p refPrints) same(reported, ref string) bool {
	if !strings.HasPrefix(reported, fingerprintPrefix) {
		return reported == ref
	}
	fp, ok := p[ref]
	if !ok {
		fp = fingerprint(ref)
		p[ref] = fp
	}
	return reported == fp
}

var stateLetters = map[report.State]string{report.StateCached: "C", report.StatePulling: "P", report.StateFailed: "F"}

// compactReport is the compact form of an agent's report.
func compactReport(r report.Node) string {
	var b strings.Builder
	head := []string{compactReportVersion, strconv.Itoa(r.Heals), escape.Replace(r.Runtime), escape.Replace(r.Pinning), compactDisk(r.Disk)}
	for _, p := range r.SecretProblems {
		head = append(head, escape.Replace(p))
	}
	b.WriteString(strings.Join(head, "\t") + "\n")
	for _, img := range r.Images {
		since := "-"
		if img.Since != nil {
			since = strconv.FormatInt(img.Since.Unix(), 10)
		}
		b.WriteString(strings.Join([]string{escape.Replace(img.Name), fingerprint(img.Image), stateLetters[img.State], since,
			strconv.FormatFloat(img.PullSeconds, 'g', 4, 64), escape.Replace(img.Reason), escape.Replace(img.Message)}, "\t") + "\n")
	}
	return b.String()
}

// parseCompactReport reads what compactReport wrote; false when it cannot.
func parseCompactReport(s string) (report.Node, bool) {
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	head := strings.Split(lines[0], "\t")
	if len(head) < 5 || head[0] != compactReportVersion {
		return report.Node{}, false
	}
	heals, err := strconv.Atoi(head[1])
	if err != nil {
		return report.Node{}, false
	}
	disk, ok := parseCompactDisk(head[4])
	if !ok {
		return report.Node{}, false
	}
	r := report.Node{Heals: heals, Runtime: unescape.Replace(head[2]), Pinning: unescape.Replace(head[3]), Disk: disk}
	for _, p := range head[5:] {
		r.SecretProblems = append(r.SecretProblems, unescape.Replace(p))
	}
	letters := map[string]report.State{"C": report.StateCached, "P": report.StatePulling, "F": report.StateFailed}
	for _, line := range lines[1:] {
		f := strings.Split(line, "\t")
		if len(f) != 7 {
			return report.Node{}, false
		}
		img := report.Image{Name: unescape.Replace(f[0]), Image: f[1], State: letters[f[2]], Reason: unescape.Replace(f[5]), Message: unescape.Replace(f[6])}
		if f[3] != "-" {
			sec, err := strconv.ParseInt(f[3], 10, 64)
			if err != nil {
				return report.Node{}, false
			}
			since := time.Unix(sec, 0).UTC()
			img.Since = &since
		}
		img.PullSeconds, _ = strconv.ParseFloat(f[4], 64)
		r.Images = append(r.Images, img)
	}
	return r, true
}

func compactDisk(d *report.Disk) string {
	if d == nil {
		return "-"
	}
	var f []string
	for _, n := range []int64{d.CapacityBytes, d.AvailableBytes, d.ImagesBytes, d.CachedBytes, d.PinnedBytes, d.PinBudgetBytes, d.FreeFloorBytes} {
		f = append(f, strconv.FormatInt(n, 10))
	}
	return strings.Join(append(f, escape.Replace(d.Error)), ",")
}

func parseCompactDisk(s string) (*report.Disk, bool) {
	if s == "-" {
		return nil, true
	}
	f := strings.SplitN(s, ",", 8)
	if len(f) != 8 {
		return nil, false
	}
	n := make([]int64, 7)
	for i, v := range f[:7] {
		var err error
		if n[i], err = strconv.ParseInt(v, 10, 64); err != nil {
			return nil, false
		}
	}
	return &report.Disk{CapacityBytes: n[0], AvailableBytes: n[1], ImagesBytes: n[2], CachedBytes: n[3], PinnedBytes: n[4], PinBudgetBytes: n[5], FreeFloorBytes: n[6],
		Error: unescape.Replace(f[7])}, true
}
