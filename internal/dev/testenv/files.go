package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
)

// RepoFile is the path of a file of this repository, from its root.
func RepoFile(rel string) string {
	_, here, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(here), "..", "..", "..", rel)
}

// CheClusterCRDEnv names a real CheCluster CRD (che-operator's
// config/crd/bases/org.eclipse.che_checlusters.yaml) to run the tests
// against instead of the project's own minimal fixture. `make test` sets it
// for a second run when hack/real-crds.sh finds that file.
const CheClusterCRDEnv = "KIP_CHECLUSTER_CRD"

// CheClusterCRD is the CheCluster CRD the tests install: the project's own
// minimal fixture (test/fixtures), or the file $KIP_CHECLUSTER_CRD names.
func CheClusterCRD() (string, error) {
	return crdFile(CheClusterCRDEnv, "test/fixtures/checlusters.org.eclipse.che.yaml")
}

// ReadinessRuleCRDEnv names a real NodeReadinessRule CRD
// (node-readiness-controller's, v0.5.0) to check the shipped rule against
// instead of the project's own minimal fixture.
const ReadinessRuleCRDEnv = "KIP_READINESS_CRD"

// ReadinessRuleCRD is the NodeReadinessRule CRD the tests install: the
// project's own minimal fixture (test/fixtures), or the file
// $KIP_READINESS_CRD names.
func ReadinessRuleCRD() (string, error) {
	return crdFile(ReadinessRuleCRDEnv, "test/fixtures/nodereadinessrules.readiness.node.x-k8s.io.yaml")
}

// crdFile is the file the environment variable env names, or else the
// project's own fixture.
func crdFile(env, fixture string) (string, error) {
	path := os.Getenv(env)
	if path == "" {
		return RepoFile(fixture), nil
	}
	if _, err := os.Stat(path); err != nil { //nolint:gosec // G703: the developer names this file
		return "", fmt.Errorf("%s: %w", env, err)
	}
	return path, nil
}
