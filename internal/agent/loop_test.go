package agent

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/kip-image-puller/kip/internal/agent/report"
)

// TestLoopPublishesChangedSecretProblems: between syncs (the heal check an
// hour away), the loop asks every SecretCheck about the pull secrets, and
// publishes the report when the answer changed, and only then.
func TestLoopPublishesChangedSecretProblems(t *testing.T) {
	var mu sync.Mutex
	problems := []string{"regcred: no .dockerconfigjson key"}
	var published [][]string
	l := &Loop{
		Agent:        New(newFakeRuntime(), nil, noCreds, List{Images: images(1)}, opts(&clock{t: time.Now()})),
		HealInterval: time.Hour,
		SecretCheck:  5 * time.Millisecond,
		SecretProblems: func() []string {
			mu.Lock()
			defer mu.Unlock()
			return problems
		},
		Report: func(_ context.Context, n report.Node) error {
			mu.Lock()
			defer mu.Unlock()
			published = append(published, n.SecretProblems)
			return nil
		},
		Log: logr.Discard(),
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- l.Run(ctx, false) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()

	waitPublished := func(n int) string {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			mu.Lock()
			got := fmt.Sprint(published)
			count := len(published)
			mu.Unlock()
			if count >= n || time.Now().After(deadline) {
				return got
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	if got := waitPublished(1); got != "[[regcred: no .dockerconfigjson key]]" {
		t.Fatalf("first report: %s", got)
	}
	time.Sleep(50 * time.Millisecond) // ten checks, the same answer
	mu.Lock()
	problems = nil
	mu.Unlock()
	if got := waitPublished(2); got != "[[regcred: no .dockerconfigjson key] []]" {
		t.Fatalf("after the secret was fixed: %s; want one report more, with no problem", got)
	}
}
