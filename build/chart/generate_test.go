package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestChartAgreesWithDeploy: the chart in the repository is what deploy/
// generates; after a change to deploy/, make chart must be run.
func TestChartAgreesWithDeploy(t *testing.T) {
	files, err := Generate("../..")
	if err != nil {
		t.Fatal(err)
	}
	stale, err := Stale("../..", files)
	if err != nil {
		t.Fatal(err)
	}
	if len(stale) > 0 {
		t.Errorf("%s does not agree with deploy/ (run make chart and commit):\n  %s", Chart, strings.Join(stale, "\n  "))
	}
}

// TestStaleFindsEveryDisagreement: a changed, a missing and a left-over
// generated file are each named; hand-written files are not.
func TestStaleFindsEveryDisagreement(t *testing.T) {
	root := t.TempDir()
	files := map[string][]byte{
		filepath.Join(Chart, "crds", "a.yaml"):            []byte("kind: CustomResourceDefinition\n"),
		filepath.Join(Chart, "templates", "changed.yaml"): []byte(generatedMark + " from deploy/x.yaml */ -}}\nkind: Service\n"),
		filepath.Join(Chart, "templates", "missing.yaml"): []byte(generatedMark + " from deploy/y.yaml */ -}}\nkind: Role\n"),
		filepath.Join(Chart, "templates", "same.yaml"):    []byte(generatedMark + " from deploy/z.yaml */ -}}\nkind: Role\n"),
	}
	if err := Write(root, files); err != nil {
		t.Fatal(err)
	}
	write := func(p, s string) {
		if err := os.WriteFile(filepath.Join(root, p), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(Chart, "templates", "changed.yaml"), generatedMark+" from deploy/x.yaml */ -}}\nkind: Service\nspec: {}\n")
	if err := os.Remove(filepath.Join(root, Chart, "templates", "missing.yaml")); err != nil {
		t.Fatal(err)
	}
	write(filepath.Join(Chart, "templates", "gone.yaml"), generatedMark+" from deploy/gone.yaml */ -}}\n")
	write(filepath.Join(Chart, "templates", "certificate.yaml"), "{{- if .Values.x }}\n{{- end }}\n")

	stale, err := Stale(root, files)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		filepath.Join(Chart, "templates", "changed.yaml") + " (differs)",
		filepath.Join(Chart, "templates", "gone.yaml") + " (left over)",
		filepath.Join(Chart, "templates", "missing.yaml") + " (missing)",
	}
	if strings.Join(stale, "\n") != strings.Join(want, "\n") {
		t.Errorf("Stale = %q, want %q", stale, want)
	}

	if err := Write(root, files); err != nil {
		t.Fatal(err)
	}
	if stale, _ := Stale(root, files); len(stale) != 0 {
		t.Errorf("after Write, Stale = %q, want nothing", stale)
	}
	if _, err := os.Stat(filepath.Join(root, Chart, "templates", "certificate.yaml")); err != nil {
		t.Errorf("Write removed a hand-written template: %v", err)
	}
}

func TestRender(t *testing.T) {
	for _, tc := range []struct {
		name string
		yaml string
		edit func(d *document, obj *yaml.Node) error
		want string
	}{
		{
			name: "template delimiters from deploy/ are escaped",
			yaml: "summary: \"drill {{ $labels.drill }} failed\"\n",
			want: "summary: \"drill {{`{{`}} $labels.drill {{`}}`}} failed\"\n",
		},
		{
			name: "an action in place of a value",
			yaml: "spec:\n  replicas: 2\n",
			edit: func(d *document, obj *yaml.Node) error {
				d.action(get(obj, "spec", "replicas"), "{{ .Values.replicas }}")
				return nil
			},
			want: "spec:\n  replicas: {{ .Values.replicas }}\n",
		},
		{
			name: "an action inside a string, comments kept",
			yaml: "# who\nexpression: user == 'system:serviceaccount:drillerd-system:drillerd'\n",
			edit: func(d *document, obj *yaml.Node) error {
				d.replaceInScalars(obj, "drillerd-system", "{{ .Release.Namespace }}")
				return nil
			},
			want: "# who\nexpression: user == 'system:serviceaccount:{{ .Release.Namespace }}:drillerd'\n",
		},
		{
			name: "blocks at the indentation of the entries they join",
			yaml: "metadata:\n  labels:\n    a: b\nargs:\n  - serve\n",
			edit: func(d *document, obj *yaml.Node) error {
				d.appendBlock(get(obj, "metadata", "labels"), include("drillerd.labels"))
				d.appendBlock(get(obj, "args"), includeIfAny("drillerd.serveFlags"))
				return nil
			},
			want: "metadata:\n  labels:\n    a: b\n    {{- include \"drillerd.labels\" . | nindent 4 }}\nargs:\n  - serve\n" +
				"  {{- with include \"drillerd.serveFlags\" . | trim }}{{ . | nindent 2 }}{{- end }}\n",
		},
		{
			name: "a value replaced by a block",
			yaml: "c:\n  resources:\n    limits: {cpu: 1}\n  name: x\n",
			edit: func(d *document, obj *yaml.Node) error {
				return d.blockValue(get(obj, "c"), "resources", func(indent string) string {
					return "\n" + indent + "  {{- toYaml .Values.resources | nindent 4 }}"
				})
			},
			want: "c:\n  resources:\n    {{- toYaml .Values.resources | nindent 4 }}\n  name: x\n",
		},
		{
			name: "long folded lines are wrapped between words",
			yaml: "m: >-\n  " + strings.Repeat("word ", 30) + "end\n",
			want: "m: >-\n  " + strings.TrimSpace(strings.Repeat("word ", 21)) + "\n  " + strings.Repeat("word ", 9) + "end\n",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var node yaml.Node
			if err := yaml.Unmarshal([]byte(tc.yaml), &node); err != nil {
				t.Fatal(err)
			}
			d := newDocument("test.yaml", &node)
			if tc.edit != nil {
				if err := tc.edit(d, node.Content[0]); err != nil {
					t.Fatal(err)
				}
			}
			got, err := d.render()
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("render:\n%s\nwant:\n%s", got, tc.want)
			}
		})
	}
}

// TestUnknownManifest: a manifest deploy/ installs that the generator has
// no rule for stops it, naming the file and where to add the rule.
func TestUnknownManifest(t *testing.T) {
	root := t.TempDir()
	for _, dir := range []string{"deploy/crds", "deploy/monitoring"} {
		if err := os.MkdirAll(filepath.Join(root, dir), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "deploy/kustomization.yaml"), []byte("resources: [install/cronjob.yaml]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Generate(root)
	if err == nil || !strings.Contains(err.Error(), "install/cronjob.yaml") || !strings.Contains(err.Error(), "build/chart/generate.go") {
		t.Errorf("Generate = %v, want an error naming install/cronjob.yaml and build/chart/generate.go", err)
	}
}
