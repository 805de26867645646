package agent

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/kip-image-puller/kip/internal/agent/report"

	"github.com/kip-image-puller/kip/internal/config"
)

// fakeRuntime is an in-memory runtime for the agent's logic.
type fakeRuntime struct {
	mu       sync.Mutex
	held     map[string]Held
	fail     map[string]error // Pull errors by ref
	pulls    map[string]int
	creds    map[string]*Credential
	inflight int
	peak     int
	gate     chan struct{} // when set, each Pull waits on it (or its context)
	// size is each pulled image's size by ref (1 MiB when not set); disk
	// the filesystem ImageFs reports, its free space less what is held.
	size  map[string]int64
	disk  report.Disk
	fsErr error // ImageFs's answer, when set
}

func newFakeRuntime() *fakeRuntime {
	return &fakeRuntime{held: map[string]Held{}, fail: map[string]error{}, pulls: map[string]int{}, creds: map[string]*Credential{}, size: map[string]int64{}}
}

func (f *fakeRuntime) ImageFs(context.Context) (report.Disk, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fsErr != nil {
		return report.Disk{}, f.fsErr
	}
	d := f.disk
	for _, h := range f.held {
		d.ImagesBytes += h.Size
	}
	if d.CapacityBytes > 0 {
		d.AvailableBytes = d.CapacityBytes - d.ImagesBytes
	}
	return d, nil
}

func (f *fakeRuntime) Status(_ context.Context, ref string) (Held, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	h, ok := f.held[ref]
	return h, ok, nil
}

func (f *fakeRuntime) Pull(ctx context.Context, ref string, cred *Credential) error {
	f.mu.Lock()
	f.pulls[ref]++
	f.creds[ref] = cred
	f.inflight++
	f.peak = max(f.peak, f.inflight)
	gate := f.gate
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.inflight--
		f.mu.Unlock()
	}()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail[ref]; err != nil {
		return err
	}
	size := f.size[ref]
	if size == 0 {
		size = 1 << 20
	}
	f.held[ref] = Held{ID: "sha256:id-" + ref, RepoDigests: []string{ref + "@sha256:d-" + ref}, Size: size}
	return nil
}

func (f *fakeRuntime) Holds(_ context.Context, refs []string) (map[string]bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]bool{}
	for _, r := range refs {
		_, out[r] = f.held[r]
	}
	return out, nil
}

// fakePinner pins in the fake runtime, as containerd's label does.
type fakePinner struct {
	rt       *fakeRuntime
	err      error
	unpinErr error
	keep     []string
	pinned   []string
}

func (p *fakePinner) Pin(_ context.Context, ref string) error {
	if p.err != nil {
		return p.err
	}
	p.rt.mu.Lock()
	defer p.rt.mu.Unlock()
	h := p.rt.held[ref]
	h.Pinned = true
	p.rt.held[ref] = h
	p.pinned = append(p.pinned, ref)
	return nil
}

func (p *fakePinner) Unpin(_ context.Context, keep []string) ([]string, error) {
	p.keep = keep
	return nil, p.unpinErr
}

func noCreds(string) (*Credential, error) { return nil, nil }

func images(n int) []config.Image {
	var out []config.Image
	for i := range n {
		out = append(out, config.Image{Name: fmt.Sprintf("img%d", i), Ref: fmt.Sprintf("reg.test/img%d:v1", i)})
	}
	return out
}

// clock is a settable time source.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func opts(c *clock) Options {
	return Options{Parallelism: 2, AttemptTimeout: time.Minute, Backoff: Backoff{Initial: 10 * time.Second, Max: 40 * time.Second}, Now: c.now}
}

func TestSyncPullsWhatIsMissingAndPinsWhatIsHeld(t *testing.T) {
	rt := newFakeRuntime()
	imgs := images(3)
	rt.held[imgs[0].Ref] = Held{RepoDigests: []string{"reg.test/img0@sha256:already"}}
	pin := &fakePinner{rt: rt}
	a := New(rt, pin, noCreds, List{Images: imgs}, opts(&clock{t: time.Unix(0, 0)}))
	if a.AllCached() {
		t.Fatal("cached before any sync")
	}
	if n := a.Sync(context.Background()); n != 2 {
		t.Errorf("pulled %d, want 2 (one was held)", n)
	}
	if rt.pulls[imgs[0].Ref] != 0 {
		t.Errorf("pulled %s, which the runtime held", imgs[0].Ref)
	}
	for _, r := range a.Report() {
		if r.State != report.StateCached || !r.Pinned || !strings.HasPrefix(r.Digest, "sha256:") || r.Since == nil || !r.Since.Equal(time.Unix(0, 0)) {
			t.Errorf("report %+v", r)
		}
	}
	if r := a.Report()[0]; r.Digest != "sha256:already" || r.PullSeconds != 0 {
		t.Errorf("the image held before: %+v", r)
	}
	if !a.AllCached() {
		t.Error("not all cached")
	}
	// Nothing left to do: a second sync pulls nothing.
	if n := a.Sync(context.Background()); n != 0 || len(pin.pinned) != 3 {
		t.Errorf("second sync pulled %d, pinned %v", n, pin.pinned)
	}
}

func TestSyncBoundsParallelPulls(t *testing.T) {
	for _, limit := range []int{1, 3} {
		t.Run(fmt.Sprint(limit), func(t *testing.T) {
			rt := newFakeRuntime()
			rt.gate = make(chan struct{})
			o := opts(&clock{})
			o.Parallelism = limit
			a := New(rt, nil, noCreds, List{Images: images(7)}, o)
			done := make(chan int)
			go func() { done <- a.Sync(context.Background()) }()
			// Let pulls through one at a time, each time once the pool is full.
			for released := range 7 {
				deadline := time.Now().Add(5 * time.Second)
				for {
					rt.mu.Lock()
					in := rt.inflight
					rt.mu.Unlock()
					if in >= min(limit, 7-released) || time.Now().After(deadline) {
						break
					}
					time.Sleep(time.Millisecond)
				}
				time.Sleep(5 * time.Millisecond) // give the pool time to overfill, if it would
				rt.gate <- struct{}{}
			}
			if n := <-done; n != 7 {
				t.Errorf("pulled %d", n)
			}
			if rt.peak != limit {
				t.Errorf("at most %d pulls at once, want %d", rt.peak, limit)
			}
		})
	}
}

func TestFailedPullsBackOffWithACap(t *testing.T) {
	rt := newFakeRuntime()
	imgs := images(2)
	rt.fail[imgs[1].Ref] = errors.New("rpc error: code = NotFound desc = not found")
	c := &clock{t: time.Unix(1000, 0)}
	a := New(rt, nil, noCreds, List{Images: imgs}, opts(c))
	a.Sync(context.Background())
	r := a.Report()
	if r[0].State != report.StateCached || r[1].State != report.StateFailed || r[1].Reason != report.ReasonErrImagePull || !strings.Contains(r[1].Message, "NotFound") {
		t.Fatalf("reports %+v", r)
	}
	if got := a.NextAttempt(); !got.Equal(c.t.Add(10 * time.Second)) {
		t.Errorf("next attempt %v", got)
	}
	a.Sync(context.Background()) // too early: no attempt
	if rt.pulls[imgs[1].Ref] != 1 {
		t.Errorf("%d attempts before the backoff passed", rt.pulls[imgs[1].Ref])
	}
	waits := []time.Duration{20 * time.Second, 40 * time.Second, 40 * time.Second}
	for i, want := range waits {
		c.t = a.NextAttempt()
		a.Sync(context.Background())
		if rt.pulls[imgs[1].Ref] != i+2 {
			t.Fatalf("attempt %d not made", i+2)
		}
		if got := a.NextAttempt().Sub(c.t); got != want {
			t.Errorf("after failure %d: wait %v, want %v", i+2, got, want)
		}
		if r := a.Report()[1]; r.Reason != report.ReasonImagePullBackOff {
			t.Errorf("failure %d: reason %q", i+2, r.Reason)
		}
	}
	// The registry recovers: the image is cached, the backoff forgotten.
	delete(rt.fail, imgs[1].Ref)
	c.t = a.NextAttempt()
	a.Sync(context.Background())
	if !a.AllCached() || !a.NextAttempt().IsZero() {
		t.Errorf("after recovery: %+v, next %v", a.Report(), a.NextAttempt())
	}
}

// TestRetryNowSkipsTheWait: after RetryNow (a pull secret changed) the
// failed image is due at once, and its next failure waits longer still.
func TestRetryNowSkipsTheWait(t *testing.T) {
	rt := newFakeRuntime()
	imgs := images(1)
	rt.fail[imgs[0].Ref] = errors.New("rpc error: code = Unknown desc = 401 Unauthorized")
	c := &clock{t: time.Unix(1000, 0)}
	a := New(rt, nil, noCreds, List{Images: imgs}, opts(c))
	a.Sync(context.Background())
	if a.Due() {
		t.Fatal("due before its backoff passed")
	}
	a.RetryNow()
	if !a.Due() || !a.NextAttempt().Equal(c.t) {
		t.Fatalf("after RetryNow: due %v, next attempt %v; want due now", a.Due(), a.NextAttempt())
	}
	a.Sync(context.Background())
	if rt.pulls[imgs[0].Ref] != 2 {
		t.Errorf("%d attempts; want 2", rt.pulls[imgs[0].Ref])
	}
	if got := a.NextAttempt().Sub(c.t); got != 20*time.Second {
		t.Errorf("wait after the second failure %v; want 20s (the count kept)", got)
	}
}

func TestAPullThatHangsTimesOut(t *testing.T) {
	rt := newFakeRuntime()
	rt.gate = make(chan struct{}) // never opened
	o := opts(&clock{})
	o.AttemptTimeout = 20 * time.Millisecond
	a := New(rt, nil, noCreds, List{Images: images(1)}, o)
	a.Sync(context.Background())
	if r := a.Report()[0]; r.State != report.StateFailed || !strings.Contains(r.Message, "no pull within 20ms") {
		t.Errorf("report %+v", r)
	}
}

func TestCredentialsGoToTheirImageOnly(t *testing.T) {
	rt := newFakeRuntime()
	imgs := []config.Image{{Name: "private", Ref: "private.test/app:v1"}, {Name: "bad", Ref: "broken.test/app:v1"}, {Name: "open", Ref: "open.test/app:v1"}}
	login := &Credential{Username: "u", Password: "p"}
	creds := func(ref string) (*Credential, error) {
		switch {
		case strings.HasPrefix(ref, "private.test/"):
			return login, nil
		case strings.HasPrefix(ref, "broken.test/"):
			return nil, errors.New(`pull secret "broken": no .dockerconfigjson`)
		}
		return nil, nil
	}
	a := New(rt, nil, creds, List{Images: imgs}, opts(&clock{}))
	a.Sync(context.Background())
	if rt.creds["private.test/app:v1"] != login || rt.creds["open.test/app:v1"] != nil {
		t.Errorf("credentials sent: %+v", rt.creds)
	}
	r := a.Report()
	if r[0].State != report.StateCached || r[2].State != report.StateCached {
		t.Errorf("the good secret and no secret: %+v", r)
	}
	if r[1].State != report.StateFailed || r[1].Reason != report.ReasonCredentials || !strings.Contains(r[1].Message, `"broken"`) || rt.pulls["broken.test/app:v1"] != 0 {
		t.Errorf("the bad secret: %+v, %d pulls", r[1], rt.pulls["broken.test/app:v1"])
	}
}

func TestAPinFailureIsReported(t *testing.T) {
	rt := newFakeRuntime()
	a := New(rt, &fakePinner{rt: rt, err: errors.New("containerd: permission denied")}, noCreds, List{Images: images(1)}, opts(&clock{}))
	a.Sync(context.Background())
	if r := a.Report()[0]; r.State != report.StateCached || r.Pinned || r.PinError != "containerd: permission denied" {
		t.Errorf("report %+v", r)
	}
}

func TestHealPullsAgainWhatDisappeared(t *testing.T) {
	rt := newFakeRuntime()
	imgs := images(3)
	a := New(rt, nil, noCreds, List{Images: imgs}, opts(&clock{}))
	a.Sync(context.Background())
	if lost, err := a.Heal(context.Background()); err != nil || len(lost) != 0 {
		t.Fatalf("lost %v, %v with everything held", lost, err)
	}
	rt.mu.Lock()
	delete(rt.held, imgs[1].Ref) // the kubelet's image GC, or a person
	rt.mu.Unlock()
	lost, err := a.Heal(context.Background())
	if err != nil || fmt.Sprint(lost) != "[img1]" {
		t.Fatalf("lost %v, %v", lost, err)
	}
	if a.AllCached() || a.Report()[1].State != report.StatePulling {
		t.Errorf("after the loss: %+v", a.Report())
	}
	if n := a.Sync(context.Background()); n != 1 || rt.pulls[imgs[1].Ref] != 2 || !a.AllCached() {
		t.Errorf("sync pulled %d, %d pulls of the lost image, report %+v", n, rt.pulls[imgs[1].Ref], a.Report())
	}
}

func TestReleaseKeepsTheConfiguredImages(t *testing.T) {
	rt := newFakeRuntime()
	pin := &fakePinner{rt: rt}
	a := New(rt, pin, noCreds, List{Images: images(2)}, opts(&clock{}))
	if _, err := a.Release(context.Background()); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(pin.keep) != "[reg.test/img0:v1 reg.test/img1:v1]" {
		t.Errorf("keep %v", pin.keep)
	}
	if got, err := New(rt, nil, noCreds, List{Images: images(2)}, opts(&clock{})).Release(context.Background()); got != nil || err != nil {
		t.Errorf("without a pinner: %v, %v", got, err)
	}
}

func TestBackoff(t *testing.T) {
	b := Backoff{Initial: time.Second, Max: 5 * time.Second}
	for failures, want := range map[int]time.Duration{0: time.Second, 1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 4: 5 * time.Second, 60: 5 * time.Second} {
		if got := b.After(failures); got != want {
			t.Errorf("After(%d) = %v, want %v", failures, got, want)
		}
	}
	if got := (Backoff{Initial: 3 * time.Second}).After(3); got != 12*time.Second {
		t.Errorf("uncapped: %v", got)
	}
	if got := (Backoff{Initial: 10 * time.Second, Max: 4 * time.Second}).After(1); got != 4*time.Second {
		t.Errorf("initial above the cap: %v", got)
	}
}

func TestHeldDigest(t *testing.T) {
	for _, tc := range []struct {
		held Held
		want string
	}{
		{Held{}, ""},
		{Held{RepoDigests: []string{"reg.test/a@sha256:1", "reg.test/b@sha256:2"}}, "sha256:1"},
		{Held{RepoDigests: []string{"garbage", "reg.test/a@sha256:3"}}, "sha256:3"},
	} {
		if got := tc.held.Digest(); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.held, got, tc.want)
		}
	}
}

func TestATagThatMovedIsPulledAgain(t *testing.T) {
	rt := newFakeRuntime()
	imgs := images(2)
	for _, img := range imgs {
		rt.held[img.Ref] = Held{RepoDigests: []string{img.Ref + "@sha256:old"}}
	}
	digests := map[string]string{imgs[0].Ref: "sha256:d-" + imgs[0].Ref, imgs[1].Ref: "sha256:old"}
	a := New(rt, nil, noCreds, List{Images: imgs, Digests: digests}, opts(&clock{}))
	if n := a.Sync(context.Background()); n != 1 || rt.pulls[imgs[0].Ref] != 1 || rt.pulls[imgs[1].Ref] != 0 {
		t.Errorf("pulled %d: %v", n, rt.pulls)
	}
	if r := a.Report()[0]; r.Digest != "sha256:d-"+imgs[0].Ref {
		t.Errorf("report %+v", r)
	}
}

// TestUpdateTakesUpANewList: what stays keeps its state and backoff, what
// is new or moved waits for the next Sync, what left is forgotten and its
// pin released; the same list again is no change.
func TestUpdateTakesUpANewList(t *testing.T) {
	rt := newFakeRuntime()
	imgs := images(4)
	rt.fail[imgs[3].Ref] = errors.New("not found")
	pin := &fakePinner{rt: rt}
	c := &clock{t: time.Unix(0, 0)}
	a := New(rt, pin, noCreds, List{Images: imgs[:2]}, opts(c))
	a.Sync(context.Background())
	if a.Update(List{Images: imgs[:2]}) {
		t.Error("the same list reported as a change")
	}

	// img0 stays, img1 leaves, img2 and the failing img3 come.
	a.Update(List{Images: []config.Image{imgs[0], imgs[2], imgs[3]}})
	if got := states(a.Report()); got != "img0=Cached img2=Pulling img3=Pulling" {
		t.Errorf("after the update: %s", got)
	}
	if _, err := a.Release(context.Background()); err != nil || fmt.Sprint(pin.keep) != fmt.Sprint([]string{imgs[0].Ref, imgs[2].Ref, imgs[3].Ref}) {
		t.Errorf("Release keeps %v (%v)", pin.keep, err)
	}
	if n := a.Sync(context.Background()); n != 1 || rt.pulls[imgs[0].Ref] != 1 {
		t.Errorf("second sync pulled %d; pulls %v", n, rt.pulls)
	}
	next := a.NextAttempt()

	// img0's tag moves: only img0 is checked again; img3 keeps its backoff.
	moved := List{Images: []config.Image{imgs[0], imgs[2], imgs[3]}, Digests: map[string]string{imgs[0].Ref: "sha256:new"}}
	if !a.Update(moved) {
		t.Fatal("new digests reported as no change")
	}
	if got := states(a.Report()); got != "img0=Pulling img2=Cached img3=Failed" {
		t.Errorf("after the move: %s", got)
	}
	if a.NextAttempt() != next {
		t.Errorf("img3's next attempt %v, was %v", a.NextAttempt(), next)
	}
	rt.held[imgs[0].Ref] = Held{RepoDigests: []string{"reg.test/img0@sha256:new"}} // what a pull brings
	a.Sync(context.Background())
	if r := a.Report()[0]; r.State != "Cached" || r.Digest != "sha256:new" {
		t.Errorf("img0 after the move: %+v", r)
	}
}

func states(rs []report.Image) string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Name+"="+string(r.State))
	}
	return strings.Join(out, " ")
}

func TestSlotFree(t *testing.T) {
	now := time.Unix(1000, 0)
	lease := func(holder string, renewedAgo time.Duration, seconds int32) *coordinationv1.Lease {
		renew := metav1.NewMicroTime(now.Add(-renewedAgo))
		return &coordinationv1.Lease{Spec: coordinationv1.LeaseSpec{HolderIdentity: &holder, RenewTime: &renew, LeaseDurationSeconds: &seconds}}
	}
	for _, tc := range []struct {
		name string
		l    *coordinationv1.Lease
		want bool
	}{
		{"released", lease("", 0, 30), true},
		{"held by me", lease("me", 0, 30), true},
		{"held by another", lease("other", 10*time.Second, 30), false},
		{"just before expiry", lease("other", 29*time.Second, 30), false},
		{"expired: a dead agent", lease("other", 30*time.Second, 30), true},
		{"no renew time", &coordinationv1.Lease{Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To("other")}}, true},
	} {
		if got := Free(tc.l, "me", now); got != tc.want {
			t.Errorf("%s: Free = %v, want %v", tc.name, got, tc.want)
		}
	}
}
