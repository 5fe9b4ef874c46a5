// Package v1alpha1 is the drills.drillerd.dev/v1alpha1 API: RestoreDrill,
// the plan for proving that a database can be restored from its latest
// VolumeSnapshot, and DrillRun, one execution of that plan.
//
// +kubebuilder:object:generate=true
// +groupName=drills.drillerd.dev
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the API group and version of drillerd's resources.
	GroupVersion = schema.GroupVersion{Group: "drills.drillerd.dev", Version: "v1alpha1"}

	// SchemeBuilder registers the types with a runtime.Scheme.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds the types of this group-version to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion, &RestoreDrill{}, &RestoreDrillList{}, &DrillRun{}, &DrillRunList{})
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
