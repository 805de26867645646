package main

import (
	"crypto/tls"
	"flag"
	"time"

	"github.com/spf13/pflag"
	"go.uber.org/zap/zapcore"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
)

// managerFlags are the flags every long-running command shares: where the
// API server is, leader election, probes, metrics and logging.
type managerFlags struct {
	kubeconfig    string
	leaderElect   bool
	metricsAddr   string
	metricsSecure bool
	probeAddr     string
	pprofAddr     string
	zap           zap.Options
}

func (m *managerFlags) bind(fl *pflag.FlagSet) {
	fl.StringVar(&m.kubeconfig, "kubeconfig", "", "kubeconfig file; default: in-cluster, then $KUBECONFIG, then ~/.kube/config")
	fl.BoolVar(&m.leaderElect, "leader-elect", true, "elect a leader, so that several replicas are safe")
	fl.StringVar(&m.metricsAddr, "metrics-bind-address", ":8443", "address of the Prometheus metrics endpoint; 0 disables it")
	fl.BoolVar(&m.metricsSecure, "metrics-secure", true, "serve metrics over HTTPS to callers the API server authenticates and authorizes (get on the /metrics URL); false: plain HTTP, no authentication")
	fl.StringVar(&m.probeAddr, "health-probe-bind-address", ":8081", "address of /healthz and /readyz; 0 disables them")
	fl.StringVar(&m.pprofAddr, "pprof-bind-address", "0", "address of Go's /debug/pprof endpoints, unauthenticated (make bench-scale profiles through it); 0 disables them")
	// Stack traces only for panics: an error log line is an operational
	// report (an unreachable registry, say), not a bug.
	m.zap = zap.Options{StacktraceLevel: zapcore.PanicLevel}
	goFlags := flag.NewFlagSet("zap", flag.ContinueOnError)
	m.zap.BindFlags(goFlags)
	fl.AddGoFlagSet(goFlags)
}

func (m *managerFlags) setLogger() {
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&m.zap)))
}

// The leader election's timing: a leader keeps its Lease through an API
// server outage shorter than leaderRenewDeadline (a control plane upgrade,
// an etcd restart) instead of exiting; a leader that dies without
// releasing its Lease is replaced after leaderLeaseDuration.
const (
	leaderLeaseDuration = 60 * time.Second
	leaderRenewDeadline = 45 * time.Second
	leaderRetryPeriod   = 5 * time.Second
)

// options are the manager options for a leader election Lease id in namespace.
func (m *managerFlags) options(id, namespace string) ctrl.Options {
	lease, renew, retry := leaderLeaseDuration, leaderRenewDeadline, leaderRetryPeriod
	return ctrl.Options{
		LeaderElection:                m.leaderElect,
		LeaderElectionID:              id,
		LeaderElectionNamespace:       namespace,
		LeaderElectionReleaseOnCancel: true,
		LeaseDuration:                 &lease,
		RenewDeadline:                 &renew,
		RetryPeriod:                   &retry,
		HealthProbeBindAddress:        m.probeAddr,
		PprofBindAddress:              m.pprofAddr,
		Metrics:                       m.metricsOptions(),
	}
}

// metricsOptions serve metrics the way kubebuilder projects do by default:
// HTTPS with a self-signed certificate, each request's bearer token checked
// with a TokenReview and a SubjectAccessReview (get on the non-resource URL
// /metrics), and HTTP/1.1 only (HTTP/2 rapid-reset).
func (m *managerFlags) metricsOptions() metricsserver.Options {
	o := metricsserver.Options{BindAddress: m.metricsAddr}
	if m.metricsSecure {
		o.SecureServing = true
		o.FilterProvider = filters.WithAuthenticationAndAuthorization
		o.TLSOpts = []func(*tls.Config){func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} }}
	}
	return o
}
