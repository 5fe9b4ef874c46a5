package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/drillerd/drillerd/internal/follow"
	"github.com/drillerd/drillerd/internal/restore"
	"github.com/drillerd/drillerd/internal/scheduler"
	"github.com/drillerd/drillerd/internal/server"
)

// Where drillerd serves by default, and the name of its leader Lease.
const (
	defaultDrillerdNamespace = "drillerd-system"
	defaultLeaderElectionID  = "drillerd.drills.drillerd.dev"
)

// ServeConfig is the configuration of `drillerd serve`.
type ServeConfig struct {
	Kubeconfig             string
	MetricsBindAddress     string
	HealthProbeBindAddress string
	LeaderElect            bool
	LeaderElectionID       string
	LeaseDuration          time.Duration
	RenewDeadline          time.Duration
	RetryPeriod            time.Duration
	Namespace              string
	PodLabels              string
	SandboxLabels          string
	MaxConcurrentDrills    int
	LogFormat              string
	LogLevel               string
	SweepInterval          time.Duration
	StartingDeadline       time.Duration
	APIBindAddress         string
	Auth                   string
	TLSCertFile            string
	TLSKeyFile             string
	TLSMinVersion          string
	APIAudiences           string
	// KubeAPIQPS and KubeAPIBurst bound drillerd's requests to the API
	// server for each kind of object, and again the scheduler's
	// (client-go's own defaults, 5 and 10, would make a hundred drills due
	// in one minute start seconds late).
	KubeAPIQPS   float64
	KubeAPIBurst int
}

// Leader election timings. The leader renews its Lease every RetryPeriod
// and exits when it could not for RenewDeadline, interrupting every run in
// progress; so RenewDeadline is longer than a control plane restart or
// upgrade usually keeps the API server away (client-go's common 10s is
// not). Another replica takes over LeaseDuration after the last renewal
// of a leader that died.
const (
	DefaultLeaseDuration = 60 * time.Second
	DefaultRenewDeadline = 45 * time.Second
	DefaultRetryPeriod   = 5 * time.Second
)

// leaderJitter is client-go's leader election JitterFactor: a wait
// between tries lasts up to this much more than RetryPeriod.
const leaderJitter = 1.2

// DefaultServeConfig returns the defaults.
func DefaultServeConfig() ServeConfig {
	ns := os.Getenv("POD_NAMESPACE")
	if ns == "" {
		ns = defaultDrillerdNamespace
	}
	return ServeConfig{
		MetricsBindAddress:     ":8080",
		HealthProbeBindAddress: ":8081",
		LeaderElect:            true,
		LeaderElectionID:       defaultLeaderElectionID,
		LeaseDuration:          DefaultLeaseDuration,
		RenewDeadline:          DefaultRenewDeadline,
		RetryPeriod:            DefaultRetryPeriod,
		Namespace:              ns,
		PodLabels:              "app.kubernetes.io/name=drillerd",
		MaxConcurrentDrills:    2,
		LogFormat:              "json",
		LogLevel:               "info",
		SweepInterval:          10 * time.Minute,
		KubeAPIQPS:             50,
		KubeAPIBurst:           100,
		StartingDeadline:       scheduler.DefaultStartingDeadline,
		APIBindAddress:         ":8443",
		Auth:                   "kubernetes",
		TLSMinVersion:          "1.2",
		APIAudiences:           server.DefaultAudience,
	}
}

// BindFlags registers the flags on fs.
func (c *ServeConfig) BindFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Kubeconfig, "kubeconfig", c.Kubeconfig, "kubeconfig file; default: in-cluster configuration, then $KUBECONFIG")
	fs.StringVar(&c.MetricsBindAddress, "metrics-bind-address", c.MetricsBindAddress, "address of /metrics; 0 disables it")
	fs.StringVar(&c.HealthProbeBindAddress, "health-probe-bind-address", c.HealthProbeBindAddress, "address of /healthz and /readyz; 0 disables them")
	fs.BoolVar(&c.LeaderElect, "leader-elect", c.LeaderElect, "elect a leader (Lease in --namespace) so that only one process schedules and runs drills; turn off only when exactly one drillerd runs")
	fs.StringVar(&c.LeaderElectionID, "leader-election-id", c.LeaderElectionID, "name of the leader election Lease")
	fs.DurationVar(&c.LeaseDuration, "leader-election-lease-duration", c.LeaseDuration, "how long after the leader's last renewal another replica may take over")
	fs.DurationVar(&c.RenewDeadline, "leader-election-renew-deadline", c.RenewDeadline, "how long the leader keeps trying to renew its Lease (the API server unreachable) before it exits, interrupting the runs in progress")
	fs.DurationVar(&c.RetryPeriod, "leader-election-retry-period", c.RetryPeriod, "how often replicas try to renew or acquire the Lease")
	fs.StringVar(&c.Namespace, "namespace", c.Namespace, "namespace drillerd runs in (sandbox NetworkPolicies admit drillerd pods from it); default $POD_NAMESPACE")
	fs.StringVar(&c.PodLabels, "pod-labels", c.PodLabels, "labels of drillerd's pods, key=value[,key=value], admitted by sandbox NetworkPolicies")
	fs.StringVar(&c.SandboxLabels, "sandbox-labels", c.SandboxLabels, "labels added to every sandbox object (namespace, pod, claim, snapshot, content copy, restored volume...), key=value[,key=value]: for cost allocation or a policy engine's exemptions; drillerd's own keys and Pod Security labels are refused")
	fs.IntVar(&c.MaxConcurrentDrills, "max-concurrent-drills", c.MaxConcurrentDrills, "how many drills progress at once")
	fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, "json or console")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "debug, info or error")
	fs.StringVar(&c.APIBindAddress, "api-bind-address", c.APIBindAddress, "address of the HTTP API (HTTPS); 0 disables it")
	fs.StringVar(&c.Auth, "auth", c.Auth, "API authentication: kubernetes (TokenReview and SubjectAccessReview) or none")
	fs.StringVar(&c.TLSCertFile, "tls-cert-file", c.TLSCertFile, "API serving certificate; default: self-signed")
	fs.StringVar(&c.TLSKeyFile, "tls-key-file", c.TLSKeyFile, "API serving key; default: self-signed")
	fs.StringVar(&c.TLSMinVersion, "tls-min-version", c.TLSMinVersion, "lowest TLS version the API accepts: 1.2 or 1.3")
	fs.StringVar(&c.APIAudiences, "api-audiences", c.APIAudiences, "audiences an API token must be valid for, comma-separated (kubectl create token SA --audience drillerd); a token for none of them is refused")
	fs.Float64Var(&c.KubeAPIQPS, "kube-api-qps", c.KubeAPIQPS, "requests per second drillerd may make to the API server for each kind of object, on average (the scheduler has a budget of its own)")
	fs.IntVar(&c.KubeAPIBurst, "kube-api-burst", c.KubeAPIBurst, "requests drillerd may make to the API server for each kind of object in a burst")
	fs.DurationVar(&c.SweepInterval, "sweep-interval", c.SweepInterval, "how often orphaned sandboxes are looked for (also at start-up)")
	fs.DurationVar(&c.StartingDeadline, "starting-deadline", c.StartingDeadline, "how late a schedule tick may still start its run, like a CronJob's startingDeadlineSeconds: a tick handled later (drillerd was down) starts no run and is skipped as MissedDeadline, so an outage does not fire a backlog")
}

// Validate names the first bad flag and how to fix it.
func (c *ServeConfig) Validate() error {
	var errs []error
	if c.MaxConcurrentDrills < 1 {
		errs = append(errs, fmt.Errorf("--max-concurrent-drills=%d: must be at least 1", c.MaxConcurrentDrills))
	}
	if c.Auth != "kubernetes" && c.Auth != "none" {
		errs = append(errs, fmt.Errorf("--auth=%q: use kubernetes or none", c.Auth))
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		errs = append(errs, errors.New("--tls-cert-file and --tls-key-file go together: give both or neither"))
	}
	if _, err := server.ParseTLSVersion(c.TLSMinVersion); err != nil {
		errs = append(errs, err)
	}
	if _, err := server.ParseAudiences(c.APIAudiences); err != nil {
		errs = append(errs, err)
	}
	if c.LeaderElect {
		errs = append(errs, validateLeaderElection(c.LeaseDuration, c.RenewDeadline, c.RetryPeriod))
	}
	if c.KubeAPIQPS <= 0 {
		errs = append(errs, fmt.Errorf("--kube-api-qps=%g: must be positive", c.KubeAPIQPS))
	}
	if c.KubeAPIBurst < 1 {
		errs = append(errs, fmt.Errorf("--kube-api-burst=%d: must be at least 1", c.KubeAPIBurst))
	}
	if c.SweepInterval <= 0 {
		errs = append(errs, fmt.Errorf("--sweep-interval=%s: must be positive", c.SweepInterval))
	}
	if c.StartingDeadline <= 0 {
		errs = append(errs, fmt.Errorf("--starting-deadline=%s: must be positive", c.StartingDeadline))
	}
	if c.LogFormat != "json" && c.LogFormat != "console" {
		errs = append(errs, fmt.Errorf("--log-format=%q: use json or console", c.LogFormat))
	}
	if _, err := parseLabels(c.PodLabels); err != nil {
		errs = append(errs, fmt.Errorf("--pod-labels=%q: %v; use key=value[,key=value]", c.PodLabels, err))
	}
	if _, err := sandboxLabels(c.SandboxLabels); err != nil {
		errs = append(errs, err)
	}
	switch c.LogLevel {
	case "debug", "info", "error":
	default:
		errs = append(errs, fmt.Errorf("--log-level=%q: use debug, info or error", c.LogLevel))
	}
	return errors.Join(errs...)
}

// validateLeaderElection checks what client-go requires of the timings:
// lease duration > renew deadline > jittered retry period > 0.
func validateLeaderElection(lease, renew, retry time.Duration) error {
	switch {
	case retry <= 0:
		return fmt.Errorf("--leader-election-retry-period=%s: must be positive", retry)
	case float64(renew) <= leaderJitter*float64(retry):
		return fmt.Errorf("--leader-election-renew-deadline=%s: must be longer than %.1f times --leader-election-retry-period (%s)", renew, leaderJitter, retry)
	case lease <= renew:
		return fmt.Errorf("--leader-election-lease-duration=%s: must be longer than --leader-election-renew-deadline (%s)", lease, renew)
	}
	return nil
}

func parseLabels(s string) (map[string]string, error) {
	out := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%q is not key=value", kv)
		}
		out[k] = v
	}
	return out, nil
}

// sandboxLabels parses --sandbox-labels: none when empty.
func sandboxLabels(s string) (map[string]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	labels, err := parseLabels(s)
	if err != nil {
		return nil, fmt.Errorf("--sandbox-labels=%q: %v; use key=value[,key=value]", s, err)
	}
	if err := restore.CheckExtraLabels(labels); err != nil {
		return nil, fmt.Errorf("--sandbox-labels=%q: %w", s, err)
	}
	return labels, nil
}

// RunConfig is the configuration of `drillerd run`.
type RunConfig struct {
	Kubeconfig string
	Namespace  string
	Drill      string
	Snapshot   string
	Wait       bool
	Output     string
	Timeout    time.Duration
	// ExplainPendingAfter is how long a run may stay unstarted or Pending
	// before drillerd run says why it may be.
	ExplainPendingAfter time.Duration
	// DrillerdNamespace and LeaderElectionID name drillerd's leader Lease,
	// read to explain a run that no drillerd picks up.
	DrillerdNamespace string
	LeaderElectionID  string
}

// BindFlags registers the flags on fs.
func (c *RunConfig) BindFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Kubeconfig, "kubeconfig", c.Kubeconfig, "kubeconfig file; default $KUBECONFIG or ~/.kube/config")
	fs.StringVar(&c.Namespace, "n", c.Namespace, "namespace of the RestoreDrill; default: the kubeconfig context's")
	fs.StringVar(&c.Namespace, "namespace", c.Namespace, "namespace of the RestoreDrill; default: the kubeconfig context's")
	fs.StringVar(&c.Snapshot, "snapshot", c.Snapshot, "restore this VolumeSnapshot instead of the newest ready one")
	fs.BoolVar(&c.Wait, "wait", true, "wait for the verdict and print the report")
	fs.StringVar(&c.Output, "output", "text", "report format: text or json")
	fs.StringVar(&c.Output, "o", "text", "report format: text or json")
	fs.DurationVar(&c.Timeout, "timeout", 2*time.Hour, "how long to wait for the verdict")
	fs.DurationVar(&c.ExplainPendingAfter, "explain-pending-after", follow.DefaultExplainAfter, "when the run has not started after this long, say why it may not have: who holds drillerd's leader Lease, or which runs hold the drill slots")
	fs.StringVar(&c.DrillerdNamespace, "drillerd-namespace", defaultDrillerdNamespace, "namespace drillerd serves in (serve's --namespace), where its leader Lease is")
	fs.StringVar(&c.LeaderElectionID, "leader-election-id", defaultLeaderElectionID, "name of drillerd's leader Lease (serve's --leader-election-id)")
}

// Validate names the first bad argument and how to fix it.
func (c *RunConfig) Validate() error {
	switch {
	case c.Drill == "":
		return errors.New("missing RestoreDrill name: drillerd run -n NAMESPACE DRILL")
	case c.Output != "text" && c.Output != "json":
		return fmt.Errorf("--output=%q: use text or json", c.Output)
	case c.Timeout <= 0:
		return fmt.Errorf("--timeout=%s: must be positive", c.Timeout)
	case c.ExplainPendingAfter <= 0:
		return fmt.Errorf("--explain-pending-after=%s: must be positive", c.ExplainPendingAfter)
	case c.DrillerdNamespace == "" || c.LeaderElectionID == "":
		return errors.New("--drillerd-namespace and --leader-election-id must not be empty: they name drillerd's leader Lease")
	}
	return nil
}
