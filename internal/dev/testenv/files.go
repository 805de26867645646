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
	path := os.Getenv(CheClusterCRDEnv)
	if path == "" {
		return RepoFile("test/fixtures/checlusters.org.eclipse.che.yaml"), nil
	}
	if _, err := os.Stat(path); err != nil { //nolint:gosec // G703: the developer names this file
		return "", fmt.Errorf("%s: %w", CheClusterCRDEnv, err)
	}
	return path, nil
}

// ReadinessRuleCRDEnv names a real NodeReadinessRule CRD
// (node-readiness-controller's, v0.5.0) to check the shipped rule against
// instead of the project's own minimal fixture.
const ReadinessRuleCRDEnv = "KIP_READINESS_CRD"

// ReadinessRuleCRD is the NodeReadinessRule CRD the tests install: the
// project's own minimal fixture (test/fixtures), or the file
// $KIP_READINESS_CRD names.
func ReadinessRuleCRD() (string, error) {
	path := os.Getenv(ReadinessRuleCRDEnv)
	if path == "" {
		return RepoFile("test/fixtures/nodereadinessrules.readiness.node.x-k8s.io.yaml"), nil
	}
	if _, err := os.Stat(path); err != nil { //nolint:gosec // G703: the developer names this file
		return "", fmt.Errorf("%s: %w", ReadinessRuleCRDEnv, err)
	}
	return path, nil
}
