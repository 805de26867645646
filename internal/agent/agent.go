// Package agent is the node half of agent mode: one small process per node
// pulls the configured images through the node's container runtime (CRI), a
// bounded number at a time, pins what it pulled where the runtime can, pulls
// again whatever disappears, and reports each image's state for the
// controller to fold into the same node x image status as daemonset mode.
//
// agent.go and backoff.go hold the logic, against the Runtime and Pinner
// interfaces; cri.go and containerd.go are the edges that wire a real
// runtime to them.
package agent

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/kip-image-puller/kip/internal/agent/report"
	"github.com/kip-image-puller/kip/internal/config"
	"github.com/kip-image-puller/kip/internal/parallel"
)

// Held is what the runtime says of an image it holds.
type Held struct {
	// ID is the runtime's image ID (the config digest).
	ID string
	// RepoDigests are the image's name@digest references.
	RepoDigests []string
	// Pinned is the runtime's word that its garbage collection skips it.
	Pinned bool
	// Size is the runtime's word for the image's size on disk, in bytes.
	Size int64
}

// Digest is the manifest digest of the first repo digest, or "".
func (h Held) Digest() string {
	for _, d := range h.RepoDigests {
		if _, digest, ok := cutDigest(d); ok {
			return digest
		}
	}
	return ""
}

// Runtime is what the agent needs of a node's container runtime.
type Runtime interface {
	// Status tells whether ref is held; a ref with a digest matches by digest.
	Status(ctx context.Context, ref string) (Held, bool, error)
	// Pull pulls ref with the credential of its registry, if any.
	Pull(ctx context.Context, ref string, cred *Credential) error
	// Holds lists, in one call, which of refs the runtime holds.
	Holds(ctx context.Context, refs []string) (map[string]bool, error)
	// ImageFs measures the image filesystem: its capacity and free space
	// (0 when unknown) and what the runtime's images take of it.
	ImageFs(ctx context.Context) (report.Disk, error)
}

// Pinner keeps images out of the runtime's garbage collection.
type Pinner interface {
	// Pin marks the name ref as pinned, and as pinned by kip, unless it is
	// pinned already; the runtime then keeps the image it names.
	Pin(ctx context.Context, ref string) error
	// Unpin removes the pin of every name kip pinned that is outside keep,
	// and returns those names. Pins set by others stay.
	Unpin(ctx context.Context, keep []string) ([]string, error)
}

// Credential is a registry login for one pull.
type Credential struct {
	Username, Password, Auth, IdentityToken, RegistryToken string
}

// Credentials finds the credential for an image reference's registry; nil
// when none applies. It never hands one registry's login to another.
type Credentials func(ref string) (*Credential, error)

// Options bound the agent's work.
type Options struct {
	// Parallelism is how many pulls run at once on the node.
	Parallelism int
	// AttemptTimeout bounds one pull attempt.
	AttemptTimeout time.Duration
	// Backoff spaces the attempts of an image that keeps failing.
	Backoff Backoff
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// PinBudget bounds the bytes pinned, in IMAGES order (nil: no bound);
	// FreeFloor the free space a pull may leave (nil: no floor).
	PinBudget, FreeFloor *config.DiskShare
	// Sizer reads an image's compressed size for this node's platform from
	// its registry, before a pull; nil, or an error, leaves it unknown.
	Sizer func(ctx context.Context, ref string, cred *Credential) (int64, error)
}

// Agent pulls and holds one node's images.
type Agent struct {
	rt    Runtime
	pin   Pinner // nil where the runtime cannot pin
	creds Credentials
	opts  Options

	mu     sync.Mutex
	images []config.Image
	// digests are the digests the controller last resolved each tag to: a
	// tag held at another digest is pulled again.
	digests map[string]string
	reports map[string]report.Image // by image name
	retry   map[string]retryState   // by image name
	// disk is the last measure of the image filesystem; reserved the
	// sizes expected of the pulls under way, which it does not show yet.
	disk     report.Disk
	measured bool
	diskErr  string
	reserved int64
	// sizes are the sizes last held of each reference: a pull's estimate.
	sizes map[string]int64
	// over are the references the last pinning pass found beyond
	// PIN_BUDGET; pinMu runs one pass at a time.
	over  []string
	pinMu sync.Mutex
}

type retryState struct {
	failures int
	next     time.Time
}

// List is what an agent holds: the images, and the digest each tag last
// resolved to (a tag held at another digest is pulled again).
type List struct {
	Images  []config.Image
	Digests map[string]string
}

// New returns an agent for list. pin may be nil.
func New(rt Runtime, pin Pinner, creds Credentials, list List, opts Options) *Agent {
	if opts.Parallelism < 1 {
		opts.Parallelism = 1
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	a := &Agent{rt: rt, pin: pin, creds: creds, opts: opts, reports: map[string]report.Image{}, retry: map[string]retryState{}, sizes: map[string]int64{}}
	a.Update(list)
	return a
}

// Update takes up a new list and tells whether it differs from the one
// held. An image that stays keeps its state and its backoff; a new one, or
// one whose tag moved to a digest other than the one the node holds, waits
// for the next Sync; one that left is forgotten (Release unpins it).
func (a *Agent) Update(list List) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if slices.Equal(a.images, list.Images) && maps.Equal(a.digests, list.Digests) {
		return false
	}
	reports, retry := map[string]report.Image{}, map[string]retryState{}
	for _, img := range list.Images {
		r, known := a.reports[img.Name]
		want, pinned := list.Digests[img.Ref]
		switch {
		case !known || r.Image != img.Ref:
			r = report.Image{Name: img.Name, Image: img.Ref, State: report.StatePulling}
		case pinned && r.State == report.StateCached && r.Digest != want && want != a.digests[img.Ref]:
			// The tag moved: Sync asks the runtime, and pulls when the
			// node holds another digest.
			r = report.Image{Name: img.Name, Image: img.Ref, State: report.StatePulling}
		default:
			if st, waiting := a.retry[img.Name]; waiting {
				retry[img.Name] = st
			}
		}
		reports[img.Name] = r
	}
	a.images, a.digests, a.reports, a.retry = list.Images, list.Digests, reports, retry
	return true
}

// Report is a copy of every image's state, in IMAGES order.
func (a *Agent) Report() []report.Image {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]report.Image, 0, len(a.images))
	for _, img := range a.images {
		out = append(out, a.reports[img.Name])
	}
	return out
}

// AllCached tells whether every image is held: the agent pod's readiness.
func (a *Agent) AllCached() bool {
	for _, r := range a.Report() {
		if r.State != report.StateCached {
			return false
		}
	}
	return true
}

// NextAttempt is the earliest time a failed image may be tried again; the
// zero time when none is waiting.
func (a *Agent) NextAttempt() time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	var next time.Time
	for _, r := range a.retry {
		if next.IsZero() || r.next.Before(next) {
			next = r.next
		}
	}
	return next
}

// RetryNow makes every image waiting for its next attempt due at once (its
// backoff keeps its count): what it failed on may have been fixed, as when
// a pull secret changed.
func (a *Agent) RetryNow() {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.opts.Now()
	for name, r := range a.retry {
		r.next = now
		a.retry[name] = r
	}
}

// Due tells whether Sync has an image to bring: one not Cached whose
// backoff has passed.
func (a *Agent) Due() bool {
	return len(a.due(a.opts.Now())) > 0
}

func (a *Agent) due(now time.Time) []config.Image {
	var todo []config.Image
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, img := range a.images {
		if a.reports[img.Name].State == report.StateCached {
			continue
		}
		if r, waiting := a.retry[img.Name]; waiting && now.Before(r.next) {
			continue
		}
		todo = append(todo, img)
	}
	return todo
}

// Sync brings every image that is not Cached, and whose backoff has passed,
// to the node: held already (by digest when the reference has one) or
// pulled, at most Parallelism at once. Under a floor, room is made in
// IMAGES order: the first pull that would leave less than FreeFloor is
// refused, and every one after it; a pull of unknown size is the last one
// of its round, and the next round judges again. After each pull, it pins
// the images held, in IMAGES order, while they fit PinBudget. It returns
// how many images it pulled.
func (a *Agent) Sync(ctx context.Context) int {
	n := 0
	for {
		pulled, again := a.round(ctx)
		n += pulled
		if !again || ctx.Err() != nil {
			return n
		}
	}
}

// pull is one image's way to the node, as a round plans it.
type pull struct {
	img  config.Image
	rep  report.Image
	done bool // held already, or failed before any pull
	cred *Credential
	// estimate is what the pull takes on disk; known whether it is.
	estimate int64
	known    bool
}

// round runs one pass of Sync, and tells whether another one is due.
func (a *Agent) round(ctx context.Context) (int, bool) {
	todo := a.due(a.opts.Now())
	if len(todo) > 0 || !a.hasMeasured() {
		a.measure(ctx)
	}
	if len(todo) == 0 {
		a.pinWithinBudget(ctx)
		return 0, false
	}
	plans := parallel.Map(todo, a.opts.Parallelism, func(img config.Image) pull { return a.plan(ctx, img) })
	var pulls []pull
	again, blocked := false, ""
	for _, p := range plans {
		switch {
		case p.done:
			a.record(p.img, p.rep)
		case blocked != "":
			a.record(p.img, failed(p.rep, report.ReasonOverBudget, errors.New(blocked)))
		case again:
			// left for the next round, which measures the disk again
		default:
			if err := a.reserve(p.estimate); err != nil {
				a.record(p.img, failed(p.rep, report.ReasonOverBudget, err))
				blocked = fmt.Sprintf("not pulled: %s, before it in IMAGES, does not fit IMAGEFS_FREE_FLOOR", p.img.Name)
				continue
			}
			pulls = append(pulls, p)
			again = !p.known
		}
	}
	a.pinWithinBudget(ctx)
	pulled := parallel.Map(pulls, a.opts.Parallelism, func(p pull) bool {
		rep, ok := a.fetch(ctx, p)
		a.record(p.img, rep)
		a.pinWithinBudget(ctx)
		return ok
	})
	n := 0
	for _, p := range pulled {
		if p {
			n++
		}
	}
	return n, again
}

// plan asks the runtime whether it holds img (by digest when the
// reference has one, or at the tag's last resolved digest); when not, it
// finds the pull's credential and estimates its size.
func (a *Agent) plan(ctx context.Context, img config.Image) pull {
	p := pull{img: img, rep: report.Image{Name: img.Name, Image: img.Ref}}
	held, ok, err := a.rt.Status(ctx, img.Ref)
	if err != nil {
		p.rep, p.done = failed(p.rep, report.ReasonErrImagePull, err), true
		return p
	}
	if ok && !a.moved(img.Ref, held) {
		p.rep, p.done = a.cached(p.rep, held), true
		return p
	}
	if p.cred, err = a.creds(img.Ref); err != nil {
		p.rep, p.done = failed(p.rep, report.ReasonCredentials, err), true
		return p
	}
	p.estimate, p.known = a.estimate(ctx, img.Ref, p.cred)
	return p
}

// fetch pulls what plan found missing, in the room reserved for it. It
// tells whether it pulled.
func (a *Agent) fetch(ctx context.Context, p pull) (report.Image, bool) {
	defer a.unreserve(ctx, p.estimate)
	rep := p.rep
	a.setPulling(p.img)
	start := a.opts.Now()
	attempt, cancel := context.WithTimeout(ctx, a.opts.AttemptTimeout)
	err := a.rt.Pull(attempt, p.img.Ref, p.cred)
	cancel()
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("no pull within %s: %w", a.opts.AttemptTimeout, err)
		}
		return failed(rep, report.ReasonErrImagePull, err), false
	}
	rep.PullSeconds = a.opts.Now().Sub(start).Seconds()
	held, ok, err := a.rt.Status(ctx, p.img.Ref)
	if err != nil {
		return failed(rep, report.ReasonErrImagePull, fmt.Errorf("pulled, but its status: %w", err)), true
	} else if !ok {
		return failed(rep, report.ReasonErrImagePull, errors.New("pulled, but the runtime does not list it")), true
	}
	return a.cached(rep, held), true
}

// cached is rep for an image the runtime holds, whose size it remembers.
func (a *Agent) cached(rep report.Image, held Held) report.Image {
	rep.State = report.StateCached
	rep.Digest = held.Digest()
	rep.Pinned = held.Pinned
	rep.SizeBytes = held.Size
	a.mu.Lock()
	a.sizes[rep.Image] = held.Size
	a.mu.Unlock()
	return rep
}

// moved tells whether ref's tag resolved to a digest the node does not hold.
func (a *Agent) moved(ref string, held Held) bool {
	a.mu.Lock()
	want, ok := a.digests[ref]
	a.mu.Unlock()
	if !ok {
		return false
	}
	for _, d := range held.RepoDigests {
		if _, digest, _ := cutDigest(d); digest == want {
			return false
		}
	}
	return true
}

func failed(r report.Image, reason string, err error) report.Image {
	r.State = report.StateFailed
	r.Reason = reason
	r.Message = err.Error()
	return r
}

func (a *Agent) setPulling(img config.Image) {
	a.mu.Lock()
	defer a.mu.Unlock()
	r := a.reports[img.Name]
	if r.State != report.StateFailed { // a retry keeps saying why it failed
		r.State = report.StatePulling
	}
	a.reports[img.Name] = r
}

// record stores an image's new report and its retry schedule.
func (a *Agent) record(img config.Image, r report.Image) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if r.State != report.StateFailed {
		delete(a.retry, img.Name)
		if prev := a.reports[img.Name]; prev.State == report.StateCached && prev.Since != nil {
			r.Since = prev.Since
		} else {
			now := a.opts.Now()
			r.Since = &now
		}
		a.reports[img.Name] = r
		return
	}
	st := a.retry[img.Name]
	st.failures++
	st.next = a.opts.Now().Add(a.opts.Backoff.After(st.failures))
	a.retry[img.Name] = st
	if st.failures > 1 && r.Reason == report.ReasonErrImagePull {
		r.Reason = report.ReasonImagePullBackOff
	}
	a.reports[img.Name] = r
}

// Heal asks the runtime, in one call, whether it still holds every Cached
// image, and marks those it lost for the next Sync. It returns their names.
func (a *Agent) Heal(ctx context.Context) ([]string, error) {
	cached := map[string]string{}
	for _, r := range a.Report() {
		if r.State == report.StateCached {
			cached[r.Image] = r.Name
		}
	}
	if len(cached) == 0 {
		return nil, nil
	}
	refs := make([]string, 0, len(cached))
	for ref := range cached {
		refs = append(refs, ref)
	}
	sort.Strings(refs)
	holds, err := a.rt.Holds(ctx, refs)
	if err != nil {
		return nil, err
	}
	var lost []string
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, ref := range refs {
		if holds[ref] {
			continue
		}
		name := cached[ref]
		r := a.reports[name]
		r.State, r.Digest, r.Pinned, r.PullSeconds, r.Since = report.StatePulling, "", false, 0, nil
		a.reports[name] = r
		lost = append(lost, name)
	}
	return lost, nil
}

// Release unpins the images kip pinned that are no longer configured, or
// that the last pinning pass found beyond PinBudget.
func (a *Agent) Release(ctx context.Context) ([]string, error) {
	if a.pin == nil {
		return nil, nil
	}
	a.mu.Lock()
	keep := make([]string, 0, len(a.images))
	for _, img := range a.images {
		if !slices.Contains(a.over, img.Ref) {
			keep = append(keep, img.Ref)
		}
	}
	a.mu.Unlock()
	return a.pin.Unpin(ctx, keep)
}

// ReleaseAll unpins every image kip pinned: the puller is being removed.
func (a *Agent) ReleaseAll(ctx context.Context) ([]string, error) {
	if a.pin == nil {
		return nil, nil
	}
	return a.pin.Unpin(ctx, nil)
}
