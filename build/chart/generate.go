package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Chart is where the chart lives in the repository.
const Chart = "charts/drillerd"

// namespace is the namespace deploy/ installs into; the chart installs into
// the release's.
const namespace = "drillerd-system"

// A manifest is a file of deploy/ and what the chart makes of it.
type manifest struct {
	// skip says why the chart leaves the file out; empty: it does not.
	skip string
	// condition, if any, switches every object of the file on or off.
	condition string
	// edit replaces the fields that chart values control.
	edit func(d *document, obj *yaml.Node) error
}

// install holds the resources of deploy/kustomization.yaml. Every one must be
// here: a manifest added to deploy/ without a rule here stops make chart.
var install = map[string]manifest{
	"install/namespace.yaml":           {skip: "Helm installs into a namespace that exists or that --create-namespace creates; README says how to label it for Pod Security"},
	"install/rbac.yaml":                {},
	"install/deployment.yaml":          {edit: editDeployment},
	"install/service.yaml":             {},
	"install/networkpolicy.yaml":       {condition: ".Values.networkPolicy.enabled"},
	"install/poddisruptionbudget.yaml": {condition: "gt (int .Values.replicas) 1"},
	"install/aggregated-roles.yaml":    {},
	"install/admission-policy.yaml":    {condition: ".Values.admissionPolicy.enabled"},
}

// monitoring holds the resources of deploy/monitoring/kustomization.yaml.
var monitoring = map[string]manifest{
	"servicemonitor.yaml": {condition: ".Values.monitoring.serviceMonitor.enabled", edit: editServiceMonitor},
	"prometheusrule.yaml": {condition: ".Values.monitoring.prometheusRule.enabled", edit: extraLabels(".Values.monitoring.prometheusRule.labels")},
}

// dashboard is the ConfigMap deploy/monitoring generates.
var dashboard = manifest{condition: ".Values.monitoring.dashboard.enabled", edit: editDashboard}

type kustomization struct {
	Resources          []string `yaml:"resources"`
	ConfigMapGenerator []struct {
		Name      string   `yaml:"name"`
		Namespace string   `yaml:"namespace"`
		Files     []string `yaml:"files"`
		Options   struct {
			Labels map[string]string `yaml:"labels"`
		} `yaml:"options"`
	} `yaml:"configMapGenerator"`
}

// Generate returns the generated files of the chart, by path relative to
// the repository root.
func Generate(root string) (map[string][]byte, error) {
	out := map[string][]byte{}
	var top kustomization
	if err := readYAML(filepath.Join(root, "deploy", "kustomization.yaml"), &top); err != nil {
		return nil, err
	}
	for _, res := range top.Resources {
		if res == "crds" {
			if err := copyCRDs(root, out); err != nil {
				return nil, err
			}
			continue
		}
		m, ok := install[res]
		if !ok {
			return nil, fmt.Errorf("deploy/kustomization.yaml lists %s, which build/chart does not know: add it to install in build/chart/generate.go", res)
		}
		if m.skip != "" {
			continue
		}
		if err := templateFile(root, "deploy/"+res, m, out); err != nil {
			return nil, err
		}
	}
	for res := range install {
		if !contains(top.Resources, res) {
			return nil, fmt.Errorf("build/chart knows %s, which deploy/kustomization.yaml no longer lists: remove it from install in build/chart/generate.go", res)
		}
	}

	var mon kustomization
	if err := readYAML(filepath.Join(root, "deploy", "monitoring", "kustomization.yaml"), &mon); err != nil {
		return nil, err
	}
	for _, res := range mon.Resources {
		m, ok := monitoring[res]
		if !ok {
			return nil, fmt.Errorf("deploy/monitoring/kustomization.yaml lists %s, which build/chart does not know: add it to monitoring in build/chart/generate.go", res)
		}
		if err := templateFile(root, "deploy/monitoring/"+res, m, out); err != nil {
			return nil, err
		}
	}
	if len(mon.ConfigMapGenerator) != 1 || len(mon.ConfigMapGenerator[0].Files) != 1 {
		return nil, errors.New("deploy/monitoring/kustomization.yaml: build/chart expects one configMapGenerator with one file, the dashboard")
	}
	gen := mon.ConfigMapGenerator[0]
	key, file, ok := strings.Cut(gen.Files[0], "=")
	if !ok {
		file = key
		key = filepath.Base(file)
	}
	data, err := os.ReadFile(filepath.Join(root, "deploy", "monitoring", file))
	if err != nil {
		return nil, err
	}
	cm := configMap(gen.Name, gen.Namespace, gen.Options.Labels, key, string(data))
	text, err := templateDocs("deploy/monitoring/kustomization.yaml", []*yaml.Node{cm}, dashboard)
	if err != nil {
		return nil, err
	}
	out[filepath.Join(Chart, "templates", "dashboard.yaml")] = []byte(text)
	return out, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func readYAML(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := yaml.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// copyCRDs copies the CRDs deploy/crds lists into the chart's crds/, where
// Helm installs them before the templates (and never templates them).
func copyCRDs(root string, out map[string][]byte) error {
	var k kustomization
	if err := readYAML(filepath.Join(root, "deploy", "crds", "kustomization.yaml"), &k); err != nil {
		return err
	}
	for _, res := range k.Resources {
		data, err := os.ReadFile(filepath.Join(root, "deploy", "crds", res))
		if err != nil {
			return err
		}
		out[filepath.Join(Chart, "crds", res)] = data
	}
	return nil
}

// templateFile turns the objects of one deploy/ file into one template.
func templateFile(root, source string, m manifest, out map[string][]byte) error {
	data, err := os.ReadFile(filepath.Join(root, source))
	if err != nil {
		return err
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var docs []*yaml.Node
	for {
		doc := &yaml.Node{}
		if err := dec.Decode(doc); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return fmt.Errorf("%s: %w", source, err)
		}
		docs = append(docs, doc)
	}
	text, err := templateDocs(source, docs, m)
	if err != nil {
		return err
	}
	out[filepath.Join(Chart, "templates", filepath.Base(source))] = []byte(text)
	return nil
}

func templateDocs(source string, docs []*yaml.Node, m manifest) (string, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "{{- /* Generated by make chart (build/chart) from %s: edit that file, not this one. */ -}}\n", source)
	if m.condition != "" {
		fmt.Fprintf(&b, "{{- if %s }}\n", m.condition)
	}
	for i, doc := range docs {
		d := newDocument(source, doc)
		obj := doc.Content[0]
		if m.edit != nil {
			if err := m.edit(d, obj); err != nil {
				return "", err
			}
		}
		if err := common(d, obj); err != nil {
			return "", err
		}
		text, err := d.render()
		if err != nil {
			return "", err
		}
		if i > 0 {
			b.WriteString("---\n")
		}
		b.WriteString(text)
	}
	if m.condition != "" {
		// Not {{- end }}: that would take the last line break off a
		// block scalar that ends the file (the dashboard's JSON).
		b.WriteString("{{ end }}\n")
	}
	return b.String(), nil
}

// common: every object goes into the release's namespace (and drillerd's
// ServiceAccount with it, in bindings and admission policies) and carries
// the chart's labels besides its own.
func common(d *document, obj *yaml.Node) error {
	meta := get(obj, "metadata")
	if meta == nil {
		return fmt.Errorf("%s: %s has no metadata", d.source, ident(obj))
	}
	d.replaceInScalars(obj, namespace, "{{ .Release.Namespace }}")
	d.appendBlock(mapping(meta, "labels"), include("drillerd.labels"))
	return nil
}

// include writes a named template of templates/_helpers.tpl at the
// indentation of the entries it joins.
func include(name string) func(indent string) string {
	return func(indent string) string {
		return fmt.Sprintf("%s{{- include %q . | nindent %d }}", indent, name, len(indent))
	}
}

// includeIfAny is include for a named template that may write nothing.
func includeIfAny(name string) func(indent string) string {
	return func(indent string) string {
		return fmt.Sprintf("%s{{- with include %q . | trim }}{{ . | nindent %d }}{{- end }}", indent, name, len(indent))
	}
}

// withValues writes the map or list at path, if not empty, as more entries.
func withValues(path string) func(indent string) string {
	return func(indent string) string {
		return fmt.Sprintf("%s{{- with %s }}{{ toYaml . | nindent %d }}{{- end }}", indent, path, len(indent))
	}
}

func extraLabels(path string) func(d *document, obj *yaml.Node) error {
	return func(d *document, obj *yaml.Node) error {
		d.appendBlock(get(obj, "metadata", "labels"), withValues(path))
		return nil
	}
}

// editDeployment: the image, replicas and leader election, the serve flags
// worth setting, resources, scheduling, and the API certificate.
func editDeployment(d *document, obj *yaml.Node) error {
	spec := get(obj, "spec")
	if get(spec, "replicas") == nil {
		return fmt.Errorf("%s: %s has no spec.replicas", d.source, ident(obj))
	}
	d.action(get(spec, "replicas"), `{{ include "drillerd.replicas" . }}`)
	if err := d.insertBlockAfter(spec, "replicas", includeIfAny("drillerd.strategy")); err != nil {
		return err
	}
	podMeta := get(spec, "template", "metadata")
	d.appendBlock(mapping(podMeta, "labels"), withValues(".Values.podLabels"))
	d.appendBlock(podMeta, includeIfAny("drillerd.podAnnotations"))
	pod := get(spec, "template", "spec")
	if pod == nil {
		return fmt.Errorf("%s: %s has no spec.template.spec", d.source, ident(obj))
	}
	for _, key := range []string{"volumes", "nodeSelector", "tolerations", "affinity", "imagePullSecrets", "priorityClassName"} {
		if get(pod, key) != nil {
			return fmt.Errorf("%s: %s sets spec.template.spec.%s, which the chart's values set: teach build/chart to merge them", d.source, ident(obj), key)
		}
	}
	d.appendBlock(pod, includeIfAny("drillerd.podSpec"))

	var c *yaml.Node
	for _, item := range get(pod, "containers").Content {
		if get(item, "name").Value == "drillerd" {
			c = item
		}
	}
	if c == nil {
		return fmt.Errorf("%s: %s has no container drillerd", d.source, ident(obj))
	}
	if get(c, "image") == nil || get(c, "volumeMounts") != nil || get(c, "imagePullPolicy") != nil {
		return fmt.Errorf("%s: container drillerd needs an image and no imagePullPolicy or volumeMounts, which the chart's values set", d.source)
	}
	d.action(get(c, "image"), `{{ include "drillerd.image" . }}`)
	if err := d.insertBlockAfter(c, "image", func(indent string) string {
		return fmt.Sprintf("%[1]s{{- with .Values.image.pullPolicy }}\n%[1]simagePullPolicy: {{ . }}\n%[1]s{{- end }}", indent)
	}); err != nil {
		return err
	}
	args := get(c, "args")
	if args == nil || len(args.Content) == 0 || args.Content[0].Value != "serve" {
		return fmt.Errorf("%s: container drillerd's args must begin with serve", d.source)
	}
	for _, arg := range args.Content[1:] {
		flag, _, _ := strings.Cut(arg.Value, "=")
		switch flag {
		case "--leader-elect":
			d.action(arg, `{{ include "drillerd.leaderElectFlag" . }}`)
		case "--max-concurrent-drills":
			d.action(arg, "--max-concurrent-drills={{ .Values.maxConcurrentDrills }}")
		case "--api-audiences", "--tls-min-version", "--tls-cert-file", "--tls-key-file", "--starting-deadline", "--sweep-interval", "--log-level":
			return fmt.Errorf("%s: container drillerd sets %s, which the chart's values set: leave it to drillerd's default in deploy/ or teach build/chart", d.source, flag)
		}
	}
	d.appendBlock(args, includeIfAny("drillerd.serveFlags"))
	if err := d.blockValue(c, "resources", func(indent string) string {
		return fmt.Sprintf("\n%s  {{- toYaml .Values.resources | nindent %d }}", indent, len(indent)+2)
	}); err != nil {
		return err
	}
	d.appendBlock(c, includeIfAny("drillerd.volumeMounts"))
	return nil
}

// editServiceMonitor: extra labels (for a Prometheus's serviceMonitorSelector)
// and the scrape interval.
func editServiceMonitor(d *document, obj *yaml.Node) error {
	d.appendBlock(get(obj, "metadata", "labels"), withValues(".Values.monitoring.serviceMonitor.labels"))
	endpoints := get(obj, "spec", "endpoints")
	if endpoints == nil || len(endpoints.Content) != 1 || get(endpoints.Content[0], "interval") == nil {
		return fmt.Errorf("%s: build/chart expects one endpoint with an interval", d.source)
	}
	d.action(get(endpoints.Content[0], "interval"), "{{ .Values.monitoring.serviceMonitor.interval }}")
	return nil
}

// editDashboard: the dashboard may go to the namespace Grafana's sidecar
// watches, with its folder annotation and labels.
func editDashboard(d *document, obj *yaml.Node) error {
	meta := get(obj, "metadata")
	d.action(get(meta, "namespace"), "{{ .Values.monitoring.dashboard.namespace | default .Release.Namespace }}")
	d.appendBlock(get(meta, "labels"), withValues(".Values.monitoring.dashboard.labels"))
	d.appendBlock(meta, func(indent string) string {
		return fmt.Sprintf("%[1]s{{- with .Values.monitoring.dashboard.annotations }}\n%[1]sannotations:\n%[1]s  {{- toYaml . | nindent %[2]d }}\n%[1]s{{- end }}", indent, len(indent)+2)
	})
	return nil
}

// configMap is the ConfigMap kustomize's configMapGenerator makes.
func configMap(name, ns string, labels map[string]string, key, data string) *yaml.Node {
	str := func(s string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s} }
	m := func(kv ...*yaml.Node) *yaml.Node {
		return &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Content: kv}
	}
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	l := m()
	for _, k := range keys {
		v := str(labels[k])
		v.Style = yaml.DoubleQuotedStyle
		l.Content = append(l.Content, str(k), v)
	}
	content := str(data)
	content.Style = yaml.LiteralStyle
	obj := m(str("apiVersion"), str("v1"), str("kind"), str("ConfigMap"),
		str("metadata"), m(str("name"), str(name), str("namespace"), str(ns), str("labels"), l),
		str("data"), m(str(key), content))
	obj.HeadComment = "The Grafana dashboard, picked up by Grafana's sidecar (label grafana_dashboard)."
	return &yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{obj}}
}
