// Package crd validates and defaults custom resources in-process as the
// API server does, from the CustomResourceDefinitions drillerd generates
// (deploy/crds): the OpenAPI schema with its formats, enums and patterns,
// the x-kubernetes-validations CEL rules, and the schema's defaults. Unit
// tests and fuzz targets use it to learn what the API server would admit
// without a cluster; the end-to-end tests check the same rules against the
// real API server.
package crd

import (
	"context"
	"fmt"
	"os"

	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsvalidation "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/validation"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel"
	structuraldefaulting "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/defaulting"
	apiservervalidation "k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	"sigs.k8s.io/yaml"
)

// Validator checks objects of one version of a CustomResourceDefinition.
type Validator struct {
	schema     *structuralschema.Structural
	validator  apiservervalidation.SchemaValidator
	celRules   *cel.Validator
	apiVersion string
	kind       string
}

// Load reads the CustomResourceDefinition in path and returns the
// validator of its version (e.g. v1alpha1).
func Load(path, version string) (*Validator, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	crd := &apiextensionsv1.CustomResourceDefinition{}
	if err := yaml.UnmarshalStrict(raw, crd); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	// What the API server checks when the CRD is installed: a rule that
	// does not compile, or whose estimated cost exceeds the budget, is
	// refused there.
	apiextensionsv1.SetObjectDefaults_CustomResourceDefinition(crd)
	installed := &apiextensions.CustomResourceDefinition{}
	if err := apiextensionsv1.Convert_v1_CustomResourceDefinition_To_apiextensions_CustomResourceDefinition(crd, installed, nil); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if errs := apiextensionsvalidation.ValidateCustomResourceDefinition(context.Background(), installed); len(errs) > 0 {
		return nil, fmt.Errorf("%s: the API server would refuse to install it: %w", path, errs.ToAggregate())
	}
	for _, v := range crd.Spec.Versions {
		if v.Name != version || v.Schema == nil || v.Schema.OpenAPIV3Schema == nil {
			continue
		}
		internal := &apiextensions.JSONSchemaProps{}
		if err := apiextensionsv1.Convert_v1_JSONSchemaProps_To_apiextensions_JSONSchemaProps(v.Schema.OpenAPIV3Schema, internal, nil); err != nil {
			return nil, fmt.Errorf("%s: converting the schema of %s: %w", path, version, err)
		}
		structural, err := structuralschema.NewStructural(internal)
		if err != nil {
			return nil, fmt.Errorf("%s: the schema of %s is not structural: %w", path, version, err)
		}
		validator, _, err := apiservervalidation.NewSchemaValidator(internal)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return &Validator{
			schema: structural, validator: validator,
			celRules:   cel.NewValidator(structural, true, celconfig.PerCallLimit),
			apiVersion: crd.Spec.Group + "/" + version, kind: crd.Spec.Names.Kind,
		}, nil
	}
	return nil, fmt.Errorf("%s: no version %s with a schema", path, version)
}

// Object is an object of the validator's kind named namespace/name with
// spec, as JSON decodes it (map[string]any).
func (v *Validator) Object(namespace, name string, spec any) map[string]any {
	return map[string]any{
		"apiVersion": v.apiVersion, "kind": v.kind,
		"metadata": map[string]any{"namespace": namespace, "name": name},
		"spec":     spec,
	}
}

// Admit defaults obj in place as the API server does on create, then
// validates it against the schema and its CEL rules, and returns what the
// API server would refuse it for (none: it is admitted).
func (v *Validator) Admit(ctx context.Context, obj map[string]any) field.ErrorList {
	structuraldefaulting.Default(obj, v.schema)
	errs := apiservervalidation.ValidateCustomResource(nil, obj, v.validator)
	celErrs, _ := v.celRules.Validate(ctx, nil, v.schema, obj, nil, celconfig.RuntimeCELCostBudget)
	return append(errs, celErrs...)
}
