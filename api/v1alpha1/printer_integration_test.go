//go:build integration

package v1alpha1_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kip-image-puller/kip/api/v1alpha1"
	"github.com/kip-image-puller/kip/internal/dev/testenv"
)

// TestPrinterColumns asks the API server for the table `kubectl get
// kubernetesimagepullers` prints, and checks its columns and cells.
func TestPrinterColumns(t *testing.T) {
	env, err := testenv.Start(testenv.RepoFile("deploy/operator/crd"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Error(err)
		}
	})
	scheme := runtime.NewScheme()
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(env.Config, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	kip := &v1alpha1.KubernetesImagePuller{ObjectMeta: metav1.ObjectMeta{Name: "image-puller", Namespace: "default"}}
	if err := c.Create(ctx, kip); err != nil {
		t.Fatal(err)
	}
	kip.Status = v1alpha1.KubernetesImagePullerStatus{
		ImagesCached: "5/6", NodesWarm: "2/3",
		Conditions: []metav1.Condition{
			{Type: "Progressing", Status: metav1.ConditionTrue, Reason: "Pulling", LastTransitionTime: metav1.Now()},
			{Type: "Ready", Status: metav1.ConditionFalse, Reason: "ImagesPending", LastTransitionTime: metav1.Now()},
		},
	}
	if err := c.Status().Update(ctx, kip); err != nil {
		t.Fatal(err)
	}

	hc, err := rest.HTTPClientFor(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(env.Config.Host, "/")+"/apis/che.eclipse.org/v1alpha1/namespaces/default/kubernetesimagepullers", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s, %v: %s", req.URL, resp.Status, err, body)
	}
	var table metav1.Table
	if err := json.Unmarshal(body, &table); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, col := range table.ColumnDefinitions {
		names = append(names, col.Name)
	}
	if want := []string{"Name", "Ready", "Images", "Nodes", "Age"}; !equal(names, want) {
		t.Errorf("columns %v, want %v", names, want)
	}
	if len(table.Rows) != 1 || len(table.Rows[0].Cells) != 5 {
		t.Fatalf("rows %+v, want one of 5 cells", table.Rows)
	}
	cells := table.Rows[0].Cells
	for i, want := range []any{"image-puller", "False", "5/6", "2/3"} {
		if cells[i] != want {
			t.Errorf("cell %s = %v, want %v", names[i], cells[i], want)
		}
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
