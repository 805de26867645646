package status

import (
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kip-image-puller/kip/internal/agent/report"
)

// A puller pod of 100 images holds 100 containers and 100 container
// statuses, about 100 KB in memory. A controller that caches one per node
// keeps instead the compact pod CompactPod makes: the facts Compute reads,
// in two annotations of a few kilobytes. Compute reads either form.
const (
	// AnnotationTemplateImages holds "name=image" per line: the containers
	// of the pod's template.
	AnnotationTemplateImages = "kip.dev/compact-template-images"
	// AnnotationContainerStates holds one line per container status:
	// "i|c TAB name TAB R|W|T|- TAB started-unix|exit-code TAB reason TAB message"
	// (i: init container, c: container).
	AnnotationContainerStates = "kip.dev/compact-container-states"
)

// CompactPod returns what Compute reads of p, compactly: identity,
// labels, owner, node and phase as they are, and the containers and their
// states in two annotations. The image IDs are left out: a cell computed
// from a compact pod carries no Digest.
//
// CompactPod(CompactPod(p)) is CompactPod(p): as a cache transform it may
// run again on what it returned (client-go's informers transform the
// objects of an initial watch list once more when they replace the store),
// and a compact pod has no containers left to compact.
func CompactPod(p *corev1.Pod) *corev1.Pod {
	if isCompact(p) {
		return p
	}
	var images, states strings.Builder
	for _, c := range p.Spec.Containers {
		images.WriteString(c.Name + "=" + c.Image + "\n")
	}
	writeStates(&states, "i", p.Status.InitContainerStatuses)
	writeStates(&states, "c", p.Status.ContainerStatuses)
	annotations := map[string]string{AnnotationTemplateImages: templateImages.intern(images.String()), AnnotationContainerStates: states.String()}
	if v, ok := p.Annotations[report.Annotation]; ok {
		if r, err := report.Decode(v); err == nil {
			annotations[AnnotationAgentReport] = compactReport(r)
		} else {
			annotations[report.Annotation] = v // kept as it is, for the status to say why it is unreadable
		}
	}
	return &corev1.Pod{
		TypeMeta: p.TypeMeta,
		ObjectMeta: metav1.ObjectMeta{
			Name: p.Name, Namespace: p.Namespace, UID: p.UID, ResourceVersion: p.ResourceVersion,
			CreationTimestamp: p.CreationTimestamp, DeletionTimestamp: p.DeletionTimestamp,
			Labels: p.Labels, OwnerReferences: p.OwnerReferences,
			Annotations: annotations,
		},
		Spec:   corev1.PodSpec{NodeName: p.Spec.NodeName},
		Status: corev1.PodStatus{Phase: p.Status.Phase},
	}
}

// isCompact tells whether p is a compact pod, made by CompactPod: it has
// no containers, which every pod from the API server has, and carries the
// compact container states.
func isCompact(p *corev1.Pod) bool {
	_, ok := p.Annotations[AnnotationContainerStates]
	return ok && len(p.Spec.Containers) == 0
}

// templateImages interns the template-images annotation: every pod of a
// DaemonSet's template carries the same one (11 KB at 100 images), so the
// pods of 2,000 nodes share one copy instead of holding 2,000.
var templateImages = newInterner(16)

// interner hands out one copy of each string it is given. It keeps at most
// limit strings, and forgets them all when full: a cache's pods name one
// or two templates at a time (two during a rollout).
type interner struct {
	mu    sync.Mutex
	limit int
	seen  map[string]string
}

func newInterner(limit int) *interner {
	return &interner{limit: limit, seen: map[string]string{}}
}

func (in *interner) intern(s string) string {
	in.mu.Lock()
	defer in.mu.Unlock()
	if v, ok := in.seen[s]; ok {
		return v
	}
	if len(in.seen) >= in.limit {
		clear(in.seen)
	}
	in.seen[s] = s
	return s
}

// A reason or message may hold tabs and newlines; escaped, they survive.
var (
	escape   = strings.NewReplacer(`\`, `\\`, "\t", `\t`, "\n", `\n`)
	unescape = strings.NewReplacer(`\\`, `\`, `\t`, "\t", `\n`, "\n")
)

func writeStates(b *strings.Builder, kind string, statuses []corev1.ContainerStatus) {
	for _, cs := range statuses {
		state, detail, reason, message := "-", "", "", ""
		if s := cs.State; s.Running != nil {
			state, detail = "R", strconv.FormatInt(s.Running.StartedAt.Unix(), 10)
		} else if s.Waiting != nil {
			state, reason, message = "W", s.Waiting.Reason, s.Waiting.Message
		} else if s.Terminated != nil {
			state, detail, reason, message = "T", strconv.Itoa(int(s.Terminated.ExitCode)), s.Terminated.Reason, s.Terminated.Message
		}
		b.WriteString(strings.Join([]string{kind, cs.Name, state, detail, escape.Replace(reason), escape.Replace(message)}, "\t") + "\n")
	}
}

// containerFact is what Compute reads of one container status.
type containerFact struct {
	name            string
	state           byte // 'R'unning, 'W'aiting, 'T'erminated, '-' none
	started         time.Time
	exitCode        int32
	reason, message string
	imageID         string
}

// podFacts is what Compute reads of one pod, from either form.
type podFacts struct {
	images     map[string]string // container name -> the template's image
	init       []containerFact
	containers map[string]containerFact
	pending    bool
}

func factsOf(p *corev1.Pod) podFacts {
	f := podFacts{images: map[string]string{}, containers: map[string]containerFact{}, pending: p.Status.Phase == corev1.PodPending}
	if states, ok := p.Annotations[AnnotationContainerStates]; ok {
		for _, line := range strings.Split(strings.TrimSuffix(p.Annotations[AnnotationTemplateImages], "\n"), "\n") {
			if name, image, ok := strings.Cut(line, "="); ok {
				f.images[name] = image
			}
		}
		for _, line := range strings.Split(strings.TrimSuffix(states, "\n"), "\n") {
			fields := strings.SplitN(line, "\t", 6)
			if len(fields) != 6 || fields[2] == "" {
				continue
			}
			c := containerFact{name: fields[1], state: fields[2][0], reason: unescape.Replace(fields[4]), message: unescape.Replace(fields[5])}
			switch c.state {
			case 'R':
				sec, _ := strconv.ParseInt(fields[3], 10, 64)
				c.started = time.Unix(sec, 0).UTC()
			case 'T':
				code, _ := strconv.ParseInt(fields[3], 10, 32)
				c.exitCode = int32(code)
			}
			f.add(fields[0] == "i", c)
		}
		return f
	}
	for _, c := range p.Spec.Containers {
		f.images[c.Name] = c.Image
	}
	for i, list := range [][]corev1.ContainerStatus{p.Status.InitContainerStatuses, p.Status.ContainerStatuses} {
		for _, cs := range list {
			c := containerFact{name: cs.Name, state: '-', imageID: cs.ImageID}
			if s := cs.State; s.Running != nil {
				c.state, c.started = 'R', s.Running.StartedAt.UTC()
			} else if s.Waiting != nil {
				c.state, c.reason, c.message = 'W', s.Waiting.Reason, s.Waiting.Message
			} else if s.Terminated != nil {
				c.state, c.exitCode, c.reason, c.message = 'T', s.Terminated.ExitCode, s.Terminated.Reason, s.Terminated.Message
			}
			f.add(i == 0, c)
		}
	}
	return f
}

func (f *podFacts) add(init bool, c containerFact) {
	if init {
		f.init = append(f.init, c)
	} else {
		f.containers[c.name] = c
	}
}
