package nodeemu

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
)

func TestEffectiveGracePeriodIsTheKubelets(t *testing.T) {
	tests := []struct {
		name           string
		spec, deletion *int64
		want           time.Duration
	}{
		{"the deletion's grace period", ptr.To(int64(30)), ptr.To(int64(5)), 5 * time.Second},
		{"deleted with no grace period: the pod is gone, its containers get a second", ptr.To(int64(30)), ptr.To(int64(0)), time.Second},
		{"a pod with no grace period, deleted with the default", ptr.To(int64(0)), ptr.To(int64(0)), time.Second},
		{"no deletion grace known: the pod's", ptr.To(int64(7)), nil, 7 * time.Second},
		{"neither: Kubernetes' default", nil, nil, 30 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := &corev1.Pod{}
			pod.Spec.TerminationGracePeriodSeconds = tt.spec
			pod.DeletionGracePeriodSeconds = tt.deletion
			if got := effectiveGracePeriod(pod); got != tt.want {
				t.Errorf("effectiveGracePeriod = %s, want %s", got, tt.want)
			}
		})
	}
}
