package main

import (
	"runtime"
	"testing"
)

func TestUserAgentNamesTheVersionAndTheCommand(t *testing.T) {
	saved := version
	t.Cleanup(func() { version = saved })
	tests := []struct {
		name, version, command, want string
	}{
		{"a release", "v0.1.0", "serve", "drillerd/v0.1.0 (" + runtime.GOOS + "/" + runtime.GOARCH + ") serve"},
		{"make build's git describe", "521f417-dirty", "run", "drillerd/521f417-dirty (" + runtime.GOOS + "/" + runtime.GOARCH + ") run"},
		{"built without a version", "dev", "serve", "drillerd/dev (" + runtime.GOOS + "/" + runtime.GOARCH + ") serve"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			version = tt.version
			if got := userAgent(tt.command); got != tt.want {
				t.Errorf("userAgent(%q) = %q, want %q", tt.command, got, tt.want)
			}
		})
	}
}
