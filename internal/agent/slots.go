package agent

import (
	"context"
	"fmt"
	"strconv"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	coordinationclient "k8s.io/client-go/kubernetes/typed/coordination/v1"
	"k8s.io/utils/ptr"
)

// Slots bound how many nodes pull at once (MAX_NODES_PULLING): Leases in
// the puller's namespace, PREFIX-0 to PREFIX-(N-1), each held by one agent
// while it pulls. A slot whose holder stopped renewing it (a dead agent)
// is free once its lease duration has passed.
type Slots struct {
	Leases coordinationclient.LeaseInterface
	Prefix string
	Count  int
	Holder string // this agent: its Pod's name
	// DurationSeconds is how long a slot stays held without a renewal.
	DurationSeconds int32
	// Retry is how often a waiting agent looks for a free slot.
	Retry time.Duration
	Now   func() time.Time
}

// Free tells whether a slot's Lease may be taken by holder at now.
func Free(l *coordinationv1.Lease, holder string, now time.Time) bool {
	h := ptr.Deref(l.Spec.HolderIdentity, "")
	if h == "" || h == holder {
		return true
	}
	if l.Spec.RenewTime == nil || l.Spec.LeaseDurationSeconds == nil {
		return true
	}
	expiry := l.Spec.RenewTime.Add(time.Duration(*l.Spec.LeaseDurationSeconds) * time.Second)
	return !now.Before(expiry)
}

// Acquire waits for a free slot and takes it; the returned function
// releases it. While held, the slot is renewed every third of its duration.
func (s *Slots) Acquire(ctx context.Context) (func(), error) {
	for {
		for i := range s.Count {
			name := s.Prefix + "-" + strconv.Itoa(i)
			ok, err := s.take(ctx, name)
			if err != nil {
				return nil, err
			}
			if ok {
				return s.hold(ctx, name), nil
			}
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(s.Retry):
		}
	}
}

// take tries to hold one slot, with optimistic locking: of two agents
// that see it free, one write wins and the other gets a conflict.
func (s *Slots) take(ctx context.Context, name string) (bool, error) {
	now := metav1.NewMicroTime(s.Now())
	spec := coordinationv1.LeaseSpec{HolderIdentity: ptr.To(s.Holder), LeaseDurationSeconds: ptr.To(s.DurationSeconds),
		AcquireTime: &now, RenewTime: &now}
	l, err := s.Leases.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		_, err = s.Leases.Create(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: spec}, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			return false, nil
		}
		return err == nil, err
	}
	if err != nil {
		return false, fmt.Errorf("pull slot %s: %w", name, err)
	}
	if !Free(l, s.Holder, now.Time) {
		return false, nil
	}
	l.Spec = spec
	if _, err := s.Leases.Update(ctx, l, metav1.UpdateOptions{}); err != nil {
		if apierrors.IsConflict(err) {
			return false, nil
		}
		return false, fmt.Errorf("pull slot %s: %w", name, err)
	}
	return true, nil
}

// hold renews the slot until the returned function releases it.
func (s *Slots) hold(ctx context.Context, name string) func() {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		wait.UntilWithContext(ctx, func(ctx context.Context) {
			s.update(ctx, name, func(l *coordinationv1.Lease) {
				now := metav1.NewMicroTime(s.Now())
				l.Spec.RenewTime = &now
			})
		}, time.Duration(s.DurationSeconds)*time.Second/3)
	}()
	return func() {
		cancel()
		<-done
		// Released, so that a waiting node need not wait for the expiry.
		s.update(context.Background(), name, func(l *coordinationv1.Lease) { l.Spec.HolderIdentity = nil })
	}
}

// update changes the slot if this agent still holds it; a failure only
// lets the slot expire.
func (s *Slots) update(ctx context.Context, name string, change func(*coordinationv1.Lease)) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	l, err := s.Leases.Get(ctx, name, metav1.GetOptions{})
	if err != nil || ptr.Deref(l.Spec.HolderIdentity, "") != s.Holder {
		return
	}
	change(l)
	_, _ = s.Leases.Update(ctx, l, metav1.UpdateOptions{})
}
