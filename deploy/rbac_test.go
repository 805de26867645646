package deploy

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	olm "github.com/operator-framework/api/pkg/operators/v1alpha1"
	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/yaml"
)

// ruleProblems tells what in rules an operator must not hold: a wildcard,
// escalate or impersonate, bind without resourceNames, any read of
// Secrets, and, cluster-wide, any write to leases.
func ruleProblems(rules []rbacv1.PolicyRule, clusterWide bool) []string {
	var out []string
	for _, r := range rules {
		desc := strings.Join(r.Verbs, ",") + " " + strings.Join(r.Resources, ",")
		for _, list := range [][]string{r.APIGroups, r.Resources, r.Verbs} {
			if slices.Contains(list, "*") {
				out = append(out, "wildcard in "+desc)
			}
		}
		for _, v := range []string{"escalate", "impersonate"} {
			if slices.Contains(r.Verbs, v) {
				out = append(out, v+" in "+desc)
			}
		}
		if slices.Contains(r.Verbs, "bind") && len(r.ResourceNames) == 0 {
			out = append(out, "bind without resourceNames in "+desc)
		}
		if slices.Contains(r.Resources, "secrets") && slices.ContainsFunc(r.Verbs, func(v string) bool { return v == "get" || v == "list" || v == "watch" }) {
			out = append(out, "Secret read in "+desc)
		}
		if clusterWide && slices.Contains(r.Resources, "leases") && slices.ContainsFunc(r.Verbs, func(v string) bool { return v != "get" && v != "list" && v != "watch" }) {
			out = append(out, "cluster-wide lease write in "+desc)
		}
	}
	return out
}

func TestRuleProblems(t *testing.T) {
	rule := func(verbs, resources string, names ...string) rbacv1.PolicyRule {
		return rbacv1.PolicyRule{APIGroups: []string{""}, Verbs: strings.Split(verbs, ","), Resources: strings.Split(resources, ","), ResourceNames: names}
	}
	tests := []struct {
		name        string
		rule        rbacv1.PolicyRule
		clusterWide bool
		bad         bool
	}{
		{"plain read", rule("get,list,watch", "pods"), true, false},
		{"secrets get", rule("get", "secrets"), true, true},
		{"secrets list in a namespace", rule("list", "secrets"), false, true},
		{"secrets create only", rule("create", "secrets"), true, false},
		{"verb wildcard", rule("*", "pods"), false, true},
		{"resource wildcard", rule("get", "*"), false, true},
		{"escalate", rule("escalate", "roles"), false, true},
		{"bind any role", rule("bind", "clusterroles"), true, true},
		{"bind one role", rule("bind", "clusterroles", "kip-image-puller"), true, false},
		{"leases anywhere", rule("get,create,update", "leases"), true, true},
		{"leases in its namespace", rule("get,create,update", "leases"), false, false},
	}
	for _, tt := range tests {
		if got := ruleProblems([]rbacv1.PolicyRule{tt.rule}, tt.clusterWide); (len(got) > 0) != tt.bad {
			t.Errorf("%s: problems %v, want bad=%v", tt.name, got, tt.bad)
		}
	}
}

// operatorRules derives the operator's effective rules from the manifests
// of deploy/operator: the roles bound to its ServiceAccount, cluster-wide
// or in a namespace.
func operatorRules(t *testing.T) (clusterWide, namespaced []rbacv1.PolicyRule) {
	t.Helper()
	var kustomization struct{ Resources []string }
	read := func(path string, into any) {
		t.Helper()
		data, err := os.ReadFile(filepath.Join("operator", path))
		if err != nil {
			t.Fatal(err)
		}
		if err := yaml.Unmarshal(data, into); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
	}
	read("kustomization.yaml", &kustomization)
	roles := map[string][]rbacv1.PolicyRule{}
	type binding struct {
		Kind     string
		RoleRef  rbacv1.RoleRef
		Subjects []rbacv1.Subject
	}
	var bindings []binding
	for _, file := range kustomization.Resources {
		var head struct {
			Kind     string
			Metadata struct{ Name string }
			Rules    []rbacv1.PolicyRule
		}
		read(file, &head)
		switch head.Kind {
		case "ClusterRole", "Role":
			roles[head.Kind+"/"+head.Metadata.Name] = head.Rules
		case "ClusterRoleBinding", "RoleBinding":
			var b binding
			read(file, &b)
			b.Kind = head.Kind
			bindings = append(bindings, b)
		}
	}
	for _, b := range bindings {
		if !slices.ContainsFunc(b.Subjects, func(s rbacv1.Subject) bool { return s.Kind == "ServiceAccount" && s.Name == "kip-operator" }) {
			continue
		}
		rules, ok := roles[b.RoleRef.Kind+"/"+b.RoleRef.Name]
		if !ok {
			t.Fatalf("%s binds %s %s, which deploy/operator does not define", b.Kind, b.RoleRef.Kind, b.RoleRef.Name)
		}
		if b.Kind == "ClusterRoleBinding" {
			clusterWide = append(clusterWide, rules...)
		} else {
			namespaced = append(namespaced, rules...)
		}
	}
	if len(clusterWide) == 0 {
		t.Fatal("no ClusterRole is bound to the operator: the derivation is broken")
	}
	return clusterWide, namespaced
}

// TestOperatorHoldsLeastPrivilege checks the operator's effective rules in
// the kustomize install and in the OLM bundle.
func TestOperatorHoldsLeastPrivilege(t *testing.T) {
	clusterWide, namespaced := operatorRules(t)
	for _, p := range ruleProblems(clusterWide, true) {
		t.Errorf("deploy/operator, cluster-wide: %s", p)
	}
	for _, p := range ruleProblems(namespaced, false) {
		t.Errorf("deploy/operator, in its namespace: %s", p)
	}
	csvs, err := filepath.Glob(filepath.Join("operator", "bundle", "manifests", "*.clusterserviceversion.yaml"))
	if err != nil || len(csvs) != 1 {
		t.Fatalf("bundle CSV: %v %v", csvs, err)
	}
	data, err := os.ReadFile(csvs[0])
	if err != nil {
		t.Fatal(err)
	}
	var csv olm.ClusterServiceVersion
	if err := yaml.Unmarshal(data, &csv); err != nil {
		t.Fatal(err)
	}
	for _, p := range csv.Spec.InstallStrategy.StrategySpec.ClusterPermissions {
		for _, problem := range ruleProblems(p.Rules, true) {
			t.Errorf("bundle clusterPermissions: %s", problem)
		}
	}
	for _, p := range csv.Spec.InstallStrategy.StrategySpec.Permissions {
		for _, problem := range ruleProblems(p.Rules, false) {
			t.Errorf("bundle permissions: %s", problem)
		}
	}
}
