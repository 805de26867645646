//go:build integration

package agent

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/kip-image-puller/kip/internal/dev/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	os.Exit(testenv.Run(m, &env, func() error { return nil }))
}

func slotsFor(t *testing.T, ns, holder string, count int) *Slots {
	t.Helper()
	cs, err := kubernetes.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	return &Slots{Leases: cs.CoordinationV1().Leases(ns), Prefix: "cache-pull-slot", Count: count, Holder: holder,
		DurationSeconds: 3, Retry: 20 * time.Millisecond, Now: time.Now}
}

// TestSlotsBoundThePullingNodes: five agents, two slots, against a real API
// server: never more than two hold one at once, and every agent gets its turn.
func TestSlotsBoundThePullingNodes(t *testing.T) {
	ns := env.Namespace(t)
	var holding, peak atomic.Int32
	var wg sync.WaitGroup
	for i := range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := slotsFor(t, ns, fmt.Sprintf("agent-%d", i), 2)
			for range 3 {
				release, err := s.Acquire(context.Background())
				if err != nil {
					t.Error(err)
					return
				}
				n := holding.Add(1)
				for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
				}
				time.Sleep(30 * time.Millisecond) // pulling
				holding.Add(-1)
				release()
			}
		}()
	}
	wg.Wait()
	if peak.Load() != 2 {
		t.Errorf("at most %d agents held a slot at once, want 2", peak.Load())
	}
}

// TestADeadAgentsSlotExpires: a slot held by an agent that stopped renewing
// it is free once its lease duration has passed, not before.
func TestADeadAgentsSlotExpires(t *testing.T) {
	ns := env.Namespace(t)
	now := metav1.NewMicroTime(time.Now())
	dead := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "cache-pull-slot-0", Namespace: ns}, Spec: coordinationv1.LeaseSpec{
		HolderIdentity: ptr.To("agent-gone"), LeaseDurationSeconds: ptr.To[int32](2), RenewTime: &now}}
	env.Create(t, dead)
	s := slotsFor(t, ns, "agent-new", 1)
	start := time.Now()
	release, err := s.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	waited := time.Since(start)
	if waited < 1500*time.Millisecond || waited > 10*time.Second {
		t.Errorf("took the dead agent's slot after %s, want about its 2 s lease", waited)
	}
	release()
	cs, _ := kubernetes.NewForConfig(env.Config)
	l, err := cs.CoordinationV1().Leases(ns).Get(context.Background(), "cache-pull-slot-0", metav1.GetOptions{})
	if err != nil || l.Spec.HolderIdentity != nil {
		t.Errorf("after release: %+v, %v; want no holder", l.Spec, err)
	}
}
