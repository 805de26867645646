package bundle

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/operator-framework/api/pkg/manifests"
	"github.com/operator-framework/api/pkg/validation"
	appsv1 "k8s.io/api/apps/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/runtime"
	psapi "k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"

	"github.com/kip-image-puller/kip/deploy"
	"github.com/kip-image-puller/kip/internal/template"
)

const (
	manifestsDir = "../../../deploy/operator"
	bundleDir    = "../../../deploy/operator/bundle"
)

func render(t *testing.T) map[string]map[string]runtimeObject {
	t.Helper()
	objs, err := Render(manifestsDir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]runtimeObject{}
	for _, u := range objs {
		if out[u.GetKind()] == nil {
			out[u.GetKind()] = map[string]runtimeObject{}
		}
		out[u.GetKind()][u.GetName()] = u.Object
	}
	return out
}

type runtimeObject = map[string]any

func TestBundleIsUpToDate(t *testing.T) {
	objs, err := Render(manifestsDir)
	if err != nil {
		t.Fatal(err)
	}
	files, err := Make(objs, Version)
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	err = filepath.Walk(bundleDir, func(path string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(bundleDir, path)
		want, ok := files[filepath.ToSlash(rel)]
		if !ok {
			t.Errorf("%s is not part of the bundle; run make bundle", rel)
			return nil
		}
		seen++
		have, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if !bytes.Equal(have, want) {
			t.Errorf("%s is stale; run make bundle", rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if seen != len(files) {
		t.Errorf("%d bundle files checked in, %d generated; run make bundle", seen, len(files))
	}
}

func TestBundlePassesOperatorFrameworkValidation(t *testing.T) {
	b, err := manifests.GetBundleFromDir(bundleDir)
	if err != nil {
		t.Fatal(err)
	}
	validators := append(validation.DefaultBundleValidators,
		validation.OperatorHubV2Validator, validation.StandardCapabilitiesValidator,
		validation.StandardCategoriesValidator, validation.GoodPracticesValidator, validation.ObjectValidator)
	for _, r := range validators.Validate(b.ObjectsToValidate()...) {
		for _, e := range r.Errors {
			t.Errorf("%s: %v", r.Name, e)
		}
		for _, w := range r.Warnings {
			t.Logf("warning: %s: %v", r.Name, w)
		}
	}
	if b.CSV == nil || len(b.V1CRDs) != 1 || b.CSV.Spec.CustomResourceDefinitions.Owned[0].Name != b.V1CRDs[0].Name {
		t.Errorf("the bundle must own the KubernetesImagePuller CRD")
	}
}

func TestOperatorPodPassesRestrictedPodSecurity(t *testing.T) {
	var dep appsv1.Deployment
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(render(t)["Deployment"]["kip-operator"], &dep); err != nil {
		t.Fatal(err)
	}
	evaluator, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
	if err != nil {
		t.Fatal(err)
	}
	pod := dep.Spec.Template
	for _, r := range evaluator.EvaluatePod(psapi.LevelVersion{Level: psapi.LevelRestricted, Version: psapi.LatestVersion()}, &pod.ObjectMeta, &pod.Spec) {
		if !r.Allowed {
			t.Errorf("restricted policy: %s: %s", r.ForbiddenReason, r.ForbiddenDetail)
		}
	}
}

// The operator grants the puller its permissions with a RoleBinding to the
// puller ClusterRole, which Kubernetes allows because it holds `bind` on
// that one role. The role grants what the template's Role grants, less
// Secret read: the operator mounts the pull secrets instead.
func TestOperatorBindsThePullerRole(t *testing.T) {
	objs := render(t)
	var operatorRole rbacv1.ClusterRole
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(objs["ClusterRole"]["kip-operator"], &operatorRole); err != nil {
		t.Fatal(err)
	}
	// Each role the operator binds, by the name of the template's Role
	// whose rules it carries.
	bound := map[string]*rbacv1.ClusterRole{"kubernetes-image-puller": {}, "kip-agent": {}}
	for templateRole, clusterRole := range map[string]string{"kubernetes-image-puller": deploy.PullerClusterRole, "kip-agent": deploy.AgentClusterRole} {
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(objs["ClusterRole"][clusterRole], bound[templateRole]); err != nil {
			t.Fatalf("the ClusterRole %s: %v", clusterRole, err)
		}
	}
	var bindable []string
	for _, r := range operatorRole.Rules {
		if slices.Contains(r.Verbs, "bind") && slices.Equal(r.Resources, []string{"clusterroles"}) {
			bindable = append(bindable, r.ResourceNames...)
		}
	}
	slices.Sort(bindable)
	if want := []string{deploy.AgentClusterRole, deploy.PullerClusterRole, deploy.NodeConditionClusterRole, deploy.WarmNodeTaintClusterRole}; !slices.Equal(bindable, want) {
		t.Errorf("the operator may bind clusterroles %v, want exactly %v", bindable, want)
	}
	tmpl, err := template.Parse(deploy.ServiceAccountTemplate)
	if err != nil {
		t.Fatal(err)
	}
	processed, err := tmpl.Process(nil)
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, u := range processed {
		if u.GetKind() != "Role" {
			continue
		}
		var role rbacv1.Role
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &role); err != nil {
			t.Fatal(err)
		}
		pullerRole := bound[role.Name]
		if pullerRole == nil {
			t.Fatalf("the template's Role %s has no ClusterRole the operator binds", role.Name)
		}
		for _, rule := range role.Rules {
			for _, g := range rule.APIGroups {
				for _, res := range rule.Resources {
					for _, verb := range rule.Verbs {
						checked++
						if got, want := allows(pullerRole.Rules, g, res, verb), res != "secrets"; got != want {
							t.Errorf("ClusterRole %s allows %s %s/%s: %v; want %v (the template's Role %s, less Secret read)", pullerRole.Name, verb, g, res, got, want, role.Name)
						}
					}
				}
			}
		}
	}
	if checked == 0 {
		t.Fatal("no Role in the template")
	}
}

// TestNodeRolesGrantOnlyWhatEachOptionNeeds: the ClusterRoles the operator
// binds for nodeCondition and warmNodeTaint grant the nodes/status patch
// and the nodes patch of the OpenShift templates of those options (and,
// for the condition, the node read that an operator-run puller otherwise
// lacks), and the marker that puts their holders under the admission
// policy kip-node-writes, and nothing more.
func TestNodeRolesGrantOnlyWhatEachOptionNeeds(t *testing.T) {
	objs := render(t)
	for role, want := range map[string][]string{
		deploy.NodeConditionClusterRole: {"get nodes", "list nodes", "watch nodes", "patch nodes/status", "write kip.dev/nodewriters"},
		deploy.WarmNodeTaintClusterRole: {"patch nodes", "write kip.dev/nodewriters"},
	} {
		var cr rbacv1.ClusterRole
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(objs["ClusterRole"][role], &cr); err != nil {
			t.Fatalf("the ClusterRole %s: %v", role, err)
		}
		var got []string
		for _, r := range cr.Rules {
			if len(r.APIGroups) != 1 || len(r.ResourceNames) > 0 {
				t.Errorf("%s: rule %+v", role, r)
				continue
			}
			group := r.APIGroups[0]
			if group != "" {
				group += "/"
			}
			for _, res := range r.Resources {
				for _, v := range r.Verbs {
					got = append(got, v+" "+group+res)
				}
			}
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("%s grants %v, want %v", role, got, want)
		}
	}
}

func allows(rules []rbacv1.PolicyRule, group, resource, verb string) bool {
	in := func(list []string, v string) bool {
		for _, x := range list {
			if x == v || x == "*" {
				return true
			}
		}
		return false
	}
	for _, r := range rules {
		if in(r.APIGroups, group) && in(r.Resources, resource) && in(r.Verbs, verb) {
			return true
		}
	}
	return false
}
