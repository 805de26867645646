//go:build integration

package puller

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kip-image-puller/kip/internal/config"
)

// BenchmarkConfigMapChangeToDaemonSet measures the time from a ConfigMap
// update (as `kubectl apply` makes it) to the DaemonSet carrying the new
// configuration, seen through a watch, on a real kube-apiserver.
func BenchmarkConfigMapChangeToDaemonSet(b *testing.B) {
	ctx := context.Background()
	ns := newNamespace(b)
	cm := configMap(ns, map[string]string{config.KeyImages: "a=reg.example.com/a:start"})
	if err := k8s.Create(ctx, cm); err != nil {
		b.Fatal(err)
	}
	startController(b, ns)
	wc, err := client.NewWithWatch(apiConfig, client.Options{})
	if err != nil {
		b.Fatal(err)
	}
	waitImage := func(w watch.Interface, want string) {
		deadline := time.After(20 * time.Second)
		for {
			select {
			case ev := <-w.ResultChan():
				if ds, ok := ev.Object.(*appsv1.DaemonSet); ok && len(ds.Spec.Template.Spec.Containers) > 0 &&
					ds.Spec.Template.Spec.Containers[0].Image == want {
					return
				}
			case <-deadline:
				b.Fatalf("DaemonSet never showed %s", want)
			}
		}
	}
	w, err := wc.Watch(ctx, &appsv1.DaemonSetList{}, client.InNamespace(ns))
	if err != nil {
		b.Fatal(err)
	}
	defer w.Stop()
	waitImage(w, "reg.example.com/a:start")

	samples := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		image := fmt.Sprintf("reg.example.com/a:%d", i)
		cm.Data[config.KeyImages] = "a=" + image
		start := time.Now()
		if err := k8s.Update(ctx, cm); err != nil {
			b.Fatal(err)
		}
		waitImage(w, image)
		samples = append(samples, time.Since(start))
	}
	b.StopTimer()
	sort.Slice(samples, func(i, j int) bool { return samples[i] < samples[j] })
	b.ReportMetric(float64(samples[len(samples)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(samples[len(samples)*9/10].Microseconds())/1000, "p90-ms")
	b.ReportMetric(float64(samples[len(samples)-1].Microseconds())/1000, "max-ms")
}
