package chart_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/drillerd/drillerd/test/localcluster"
)

var (
	helmOnce sync.Once
	helmPath string
	helmErr  error
)

// helm runs the Helm built from test/tools/helm (test/tools/build.sh helm;
// $DRILLERD_HELM names another) and returns its standard output.
func helm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	helmOnce.Do(func() {
		if helmPath = os.Getenv("DRILLERD_HELM"); helmPath != "" {
			return
		}
		cmd := exec.CommandContext(context.Background(), repoPath(t, "test", "tools", "build.sh"), "helm")
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		if err != nil {
			helmErr = fmt.Errorf("building helm (test/tools/build.sh helm): %w", err)
			return
		}
		helmPath = filepath.Join(strings.TrimSpace(string(out)), "helm")
	})
	if helmErr != nil {
		t.Fatal(helmErr)
	}
	cmd := exec.Command(helmPath, args...)
	// No user configuration, repositories or plugins: only the chart.
	home := t.TempDir()
	cmd.Env = append(os.Environ(), "HELM_CONFIG_HOME="+home, "HELM_CACHE_HOME="+home, "HELM_DATA_HOME="+home, "KUBECONFIG="+filepath.Join(home, "none"))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("helm %s: %v\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String(), nil
}

func repoPath(t *testing.T, parts ...string) string {
	t.Helper()
	root, err := localcluster.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(append([]string{root}, parts...)...)
}

// render runs helm template on charts/drillerd in namespace ns with the
// values files and --set flags given, and returns the objects.
func render(t *testing.T, ns string, flags ...string) objects {
	t.Helper()
	text := renderText(t, ns, flags...)
	objs, err := parseObjects(text)
	if err != nil {
		t.Fatalf("helm template's output: %v\n%s", err, text)
	}
	return objs
}

func renderText(t *testing.T, ns string, flags ...string) string {
	t.Helper()
	args := append([]string{"template", "drillerd", repoPath(t, "charts", "drillerd"), "--namespace", ns}, flags...)
	out, err := helm(t, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// An object is a Kubernetes object as plain YAML data.
type object = map[string]any

type objects []object

// parseObjects reads a stream of YAML documents, skipping empty ones.
func parseObjects(text string) (objects, error) {
	var out objects
	r := utilyaml.NewYAMLReader(bufio.NewReader(strings.NewReader(text)))
	for {
		doc, err := r.Read()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		var obj object
		if err := yaml.Unmarshal(doc, &obj); err != nil {
			return nil, err
		}
		if len(obj) > 0 {
			out = append(out, obj)
		}
	}
}

// key names an object: Kind/namespace/name.
func key(obj object) string {
	return fmt.Sprintf("%v/%v/%v", obj["kind"], field(obj, "metadata", "namespace"), field(obj, "metadata", "name"))
}

func (o objects) keys() []string {
	var keys []string
	for _, obj := range o {
		keys = append(keys, key(obj))
	}
	sort.Strings(keys)
	return keys
}

// get returns the object of kind and name, failing the test without it.
func (o objects) get(t *testing.T, kind, name string) object {
	t.Helper()
	for _, obj := range o {
		if obj["kind"] == kind && field(obj, "metadata", "name") == name {
			return obj
		}
	}
	t.Fatalf("no %s %s among %v", kind, name, o.keys())
	return nil
}

func (o objects) has(kind, name string) bool {
	for _, obj := range o {
		if obj["kind"] == kind && field(obj, "metadata", "name") == name {
			return true
		}
	}
	return false
}

// field follows a path of map keys and list indexes (ints).
func field(v any, path ...any) any {
	for _, p := range path {
		switch p := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[p]
		case int:
			l, ok := v.([]any)
			if !ok || p >= len(l) {
				return nil
			}
			v = l[p]
		}
	}
	return v
}

// container returns the drillerd container of the Deployment.
func container(t *testing.T, objs objects) map[string]any {
	t.Helper()
	c, _ := field(objs.get(t, "Deployment", "drillerd"), "spec", "template", "spec", "containers", 0).(map[string]any)
	if c == nil || c["name"] != "drillerd" {
		t.Fatalf("the Deployment's first container is not drillerd: %v", c)
	}
	return c
}

func stringList(v any) []string {
	var out []string
	l, _ := v.([]any)
	for _, x := range l {
		out = append(out, fmt.Sprint(x))
	}
	return out
}
