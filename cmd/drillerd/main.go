// Command drillerd proves that databases can be restored from their
// Kubernetes VolumeSnapshots.
//
//	drillerd serve                       run the controller
//	drillerd run -n NS DRILL [--wait]    start a drill and print its report
//	drillerd version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	goruntime "runtime"
	"runtime/debug"
	"syscall"
	_ "time/tzdata" // the same time zones as the API server's (which embeds them), whatever the image holds

	snapshotv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
)

// version is set at build time with -ldflags "-X main.version=..." (make
// build: git describe); see buildVersion.
var version = "dev"

// buildVersion is drillerd's version: the one set at build time, else the
// module version the go command recorded (go install ...@v0.1.0), else
// "dev".
func buildVersion() string {
	if version != "dev" && version != "" {
		return version
	}
	if info, ok := debug.ReadBuildInfo(); ok && info.Main.Version != "" && info.Main.Version != "(devel)" {
		return info.Main.Version
	}
	return "dev"
}

// userAgent is what drillerd's requests say they come from, e.g.
// "drillerd/v0.1.0 (linux/amd64) serve": the API server's audit log records
// it with each request.
func userAgent(command string) string {
	return fmt.Sprintf("drillerd/%s (%s/%s) %s", buildVersion(), goruntime.GOOS, goruntime.GOARCH, command)
}

// Exit codes of `drillerd run`.
const (
	exitSucceeded = 0
	exitFailed    = 1
	exitError     = 2
	exitUsage     = 64
)

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(exitUsage)
	}
	switch os.Args[1] {
	case "serve":
		cfg := DefaultServeConfig()
		fs := flag.NewFlagSet("serve", flag.ContinueOnError)
		cfg.BindFlags(fs)
		if err := fs.Parse(os.Args[2:]); err != nil {
			os.Exit(flagExit(err))
		}
		if err := cfg.Validate(); err != nil {
			fmt.Fprintf(os.Stderr, "drillerd serve: %v\n", err)
			os.Exit(exitUsage)
		}
		if err := serve(cfg); err != nil {
			fmt.Fprintf(os.Stderr, "drillerd serve: %v\n", err)
			os.Exit(1)
		}
	case "run":
		var cfg RunConfig
		fs := flag.NewFlagSet("run", flag.ContinueOnError)
		cfg.BindFlags(fs)
		if err := fs.Parse(reorderFlags(fs, os.Args[2:])); err != nil {
			os.Exit(flagExit(err))
		}
		cfg.Drill = fs.Arg(0)
		if err := cfg.Validate(); err != nil {
			fmt.Fprintf(os.Stderr, "drillerd run: %v\n", err)
			os.Exit(exitUsage)
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := runDrill(ctx, cfg, os.Stdout, os.Stderr)
		stop()
		os.Exit(code)
	case "version", "--version":
		fmt.Println("drillerd", buildVersion())
	default:
		usage()
		os.Exit(exitUsage)
	}
}

// flagExit is the exit code after a flag error (the flag package has
// printed it): 0 for -h, else exitUsage, never a verdict's code.
func flagExit(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	return exitUsage
}

func usage() {
	fmt.Fprint(os.Stderr, `usage:
  drillerd serve [flags]                      run the controller (see drillerd serve -h)
  drillerd run -n NAMESPACE DRILL [flags]     start a drill, wait, print the report; exit 0 Succeeded, 1 Failed, 2 Error
  drillerd version
`)
}

// reorderFlags lets flags follow the positional argument (run DRILL -n ns).
func reorderFlags(fs *flag.FlagSet, args []string) []string {
	var flags, positional []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if len(a) > 1 && a[0] == '-' {
			flags = append(flags, a)
			name := a[1:]
			if name[0] == '-' {
				name = name[1:]
			}
			if f := fs.Lookup(name); f != nil && !isBool(f) && i+1 < len(args) {
				flags = append(flags, args[i+1])
				i++
			}
			continue
		}
		positional = append(positional, a)
	}
	return append(flags, positional...)
}

func isBool(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// newScheme knows drillerd's, the core and the snapshot types.
func newScheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, drillsv1.AddToScheme, snapshotv1.AddToScheme} {
		if err := add(s); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// contextNamespace is the namespace of the kubeconfig's current context,
// as kubectl uses it; default when it names none.
func contextNamespace(kubeconfig string) string {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = kubeconfig
	ns, _, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).Namespace()
	if err != nil || ns == "" {
		return "default"
	}
	return ns
}

// restConfig loads --kubeconfig, else in-cluster, else $KUBECONFIG or
// ~/.kube/config, for command (serve, run): its requests carry userAgent.
func restConfig(kubeconfig, command string) (*rest.Config, error) {
	cfg, err := loadRestConfig(kubeconfig)
	if err != nil {
		return nil, err
	}
	cfg.UserAgent = userAgent(command)
	return cfg, nil
}

func loadRestConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig != "" {
		return clientcmd.BuildConfigFromFlags("", kubeconfig)
	}
	if cfg, err := rest.InClusterConfig(); err == nil {
		return cfg, nil
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	return clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
}
