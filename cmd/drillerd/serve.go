package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"

	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/client-go/kubernetes"
	coordinationv1client "k8s.io/client-go/kubernetes/typed/coordination/v1"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/drillerd/drillerd/internal/drill"
	"github.com/drillerd/drillerd/internal/metrics"
	"github.com/drillerd/drillerd/internal/restore"
	"github.com/drillerd/drillerd/internal/scheduler"
	"github.com/drillerd/drillerd/internal/server"
)

// serve runs the controller until SIGTERM (a second SIGTERM exits at once).
func serve(cfg ServeConfig) error {
	level := map[string]zapcore.Level{"debug": zapcore.DebugLevel, "info": zapcore.InfoLevel, "error": zapcore.ErrorLevel}[cfg.LogLevel]
	ctrl.SetLogger(zap.New(zap.UseDevMode(cfg.LogFormat == "console"), zap.Level(level)))
	log := ctrl.Log.WithName("drillerd")

	restCfg, err := restConfig(cfg.Kubeconfig, "serve")
	if err != nil {
		return fmt.Errorf("while loading the kubeconfig: %w", err)
	}
	restCfg.QPS, restCfg.Burst = float32(cfg.KubeAPIQPS), cfg.KubeAPIBurst
	scheme, err := newScheme()
	if err != nil {
		return err
	}
	podLabels, _ := parseLabels(cfg.PodLabels)
	extraLabels, _ := sandboxLabels(cfg.SandboxLabels)
	clientset, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		return err
	}
	ctx := ctrl.SetupSignalHandler()
	if cfg.LeaderElect {
		if err := checkLeaseNamespace(ctx, clientset, cfg, log); err != nil {
			return err
		}
	}
	lock, err := leaseLock(ctx, restCfg, clientset, scheme, cfg)
	if err != nil {
		return fmt.Errorf("while setting up leader election: %w", err)
	}
	mgr, err := ctrl.NewManager(restCfg, ctrl.Options{
		Scheme:                              scheme,
		Metrics:                             metricsserver.Options{BindAddress: cfg.MetricsBindAddress},
		HealthProbeBindAddress:              cfg.HealthProbeBindAddress,
		LeaderElection:                      cfg.LeaderElect,
		LeaderElectionID:                    cfg.LeaderElectionID,
		LeaderElectionNamespace:             cfg.Namespace,
		LeaderElectionReleaseOnCancel:       true,
		LeaderElectionResourceLockInterface: lock,
		LeaseDuration:                       &cfg.LeaseDuration,
		RenewDeadline:                       &cfg.RenewDeadline,
		RetryPeriod:                         &cfg.RetryPeriod,
		// The cache keeps no managedFields: drillerd never reads them, and a
		// cluster's thousands of runs would hold them all in memory.
		Cache: cache.Options{ByObject: drill.CacheByObject(), DefaultTransform: cache.TransformStripManagedFields()},
	})
	if err != nil {
		return fmt.Errorf("while creating the controller manager: %w", err)
	}
	if err := scheduler.IndexDrillName(ctx, mgr); err != nil {
		return err
	}
	gate := drill.NewGate()
	reconciler := &drill.Reconciler{
		Gate:              gate,
		Client:            mgr.GetClient(),
		APIReader:         mgr.GetAPIReader(),
		Clock:             clock.RealClock{},
		Recorder:          mgr.GetEventRecorder("drillerd"),
		Database:          drill.ConnectPostgres,
		Logs:              restore.PodLogs{Client: clientset},
		DrillerdNamespace: cfg.Namespace,
		DrillerdLabels:    podLabels,
		SandboxLabels:     extraLabels,
		MaxInFlight:       cfg.MaxConcurrentDrills,
	}
	if err := reconciler.SetupWithManager(mgr, cfg.MaxConcurrentDrills); err != nil {
		return err
	}
	// The scheduler writes through a client of its own, with its own
	// request budget (--kube-api-qps and --kube-api-burst): the runs of
	// the drills due at one minute are created at once, not queued behind
	// the status writes of the runs in progress.
	scheduleClient, err := client.New(rest.CopyConfig(restCfg), client.Options{
		Scheme: scheme, Mapper: mgr.GetRESTMapper(), Cache: &client.CacheOptions{Reader: mgr.GetCache()},
	})
	if err != nil {
		return fmt.Errorf("while creating the scheduler's API client: %w", err)
	}
	schedules := &scheduler.Controller{
		Client:           scheduleClient,
		Clock:            clock.RealClock{},
		Recorder:         mgr.GetEventRecorder("drillerd"),
		StartingDeadline: cfg.StartingDeadline,
	}
	if err := schedules.SetupWithManager(mgr); err != nil {
		return err
	}
	collector := metrics.NewCollector(mgr.GetClient(), clock.RealClock{}, log.WithName("metrics"))
	collector.Snapshots = mgr.GetAPIReader()
	if err := ctrlmetrics.Registry.Register(collector); err != nil {
		return err
	}
	recovery := &drill.Recovery{
		OrphanRemoved: func(kind string) { collector.OrphansRemoved.WithLabelValues(kind).Inc() },
		SweepFailed:   func(kind string) { collector.SweepErrors.WithLabelValues(kind).Inc() },
		Recorder:      mgr.GetEventRecorder("drillerd"),
		Client:        mgr.GetClient(),
		APIReader:     mgr.GetAPIReader(),
		Clock:         clock.RealClock{},
		Log:           log.WithName("recovery"),
		Gate:          gate,
		SweepInterval: cfg.SweepInterval,
	}
	if err := mgr.Add(recovery); err != nil {
		return err
	}
	if cfg.APIBindAddress != "0" {
		minVersion, _ := server.ParseTLSVersion(cfg.TLSMinVersion)
		audiences, _ := server.ParseAudiences(cfg.APIAudiences)
		tlsConfig, err := server.TLSConfig(server.TLSOptions{
			CertFile: cfg.TLSCertFile, KeyFile: cfg.TLSKeyFile, MinVersion: minVersion, Log: log.WithName("api"),
		})
		if err != nil {
			return fmt.Errorf("while loading the API's TLS certificate: %w", err)
		}
		api := &server.Server{
			Addr: cfg.APIBindAddress, TLS: tlsConfig, Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(),
			Log: log.WithName("api"), DrillNameField: scheduler.DrillNameField, Audiences: audiences,
		}
		if cfg.Auth == "kubernetes" {
			api.Auth = clientset
		} else {
			log.Info("WARNING: --auth=none: anybody who can reach the API can start drills and read runs")
		}
		if err := mgr.Add(api); err != nil {
			return err
		}
		if err := mgr.AddReadyzCheck("api", api.Serving); err != nil {
			return err
		}
	}
	if cfg.MetricsBindAddress != "0" {
		if err := mgr.AddReadyzCheck("metrics", server.Accepting(cfg.MetricsBindAddress)); err != nil {
			return err
		}
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return err
	}
	// Ready once every listener accepts connections (the health listener
	// answers this very check) and the caches have synced: a Service must
	// not send requests to a replica that refuses them, and a replica that
	// cannot read drills yet would answer the API and /metrics with nothing.
	if err := mgr.AddReadyzCheck("caches", func(req *http.Request) error {
		ctx, cancel := context.WithTimeout(req.Context(), time.Second)
		defer cancel()
		if !mgr.GetCache().WaitForCacheSync(ctx) {
			return errors.New("caches not synced yet")
		}
		return nil
	}); err != nil {
		return err
	}
	log.Info("starting", "version", buildVersion(), "namespace", cfg.Namespace, "maxConcurrentDrills", cfg.MaxConcurrentDrills, "leaderElect", cfg.LeaderElect)
	return mgr.Start(ctx)
}

// leaseLock is the leader-election Lease --leader-election-id in
// --namespace, as controller-runtime makes it, except that its requests
// carry drillerd's user agent (controller-runtime would put client-go's in
// its place); nil without --leader-elect.
func leaseLock(ctx context.Context, restCfg *rest.Config, clientset kubernetes.Interface, scheme *runtime.Scheme, cfg ServeConfig) (resourcelock.Interface, error) {
	if !cfg.LeaderElect {
		return nil, nil
	}
	leaseCfg := rest.CopyConfig(restCfg)
	leaseCfg.UserAgent += " leader-election"
	// A request about the Lease gives up after half the renew deadline, so
	// that one hung request cannot cost the leadership.
	leaseCfg.Timeout = cfg.RenewDeadline / 2
	coordination, err := coordinationv1client.NewForConfig(leaseCfg)
	if err != nil {
		return nil, err
	}
	host, err := os.Hostname()
	if err != nil {
		return nil, err
	}
	id := host + "_" + string(uuid.NewUUID())
	// Leadership changes are events on the Lease, as controller-runtime
	// records them.
	broadcaster := record.NewBroadcaster(record.WithContext(ctx))
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: clientset.CoreV1().Events("")})
	return &resourcelock.LeaseLock{
		LeaseMeta: metav1.ObjectMeta{Namespace: cfg.Namespace, Name: cfg.LeaderElectionID},
		Client:    coordination,
		LockConfig: resourcelock.ResourceLockConfig{
			Identity:      id,
			EventRecorder: broadcaster.NewRecorder(scheme, corev1.EventSource{Component: id}),
		},
	}, nil
}
