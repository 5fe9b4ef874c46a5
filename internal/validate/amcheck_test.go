package validate

import (
	"strings"
	"testing"
	"time"
)

func TestAmcheck(t *testing.T) {
	tests := []struct {
		name     string
		user, db string
		value    string
		messages []string // parts of Message; none when it passes
	}{
		{"verifies every btree index", "postgres", "drill", "4 indexes verified", nil},
		{"says why it cannot create the extension", "nopriv", "noext", "", []string{"cannot create the amcheck extension", "SQLSTATE 42501"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sess := openSession(t, tt.user, tt.db)
			r := sess.Run(t.Context(), []Check{{Name: "indexes", Builtin: BuiltinAmcheck}})[0]
			if r.Name != "indexes" || r.Passed != (len(tt.messages) == 0) || r.Value != tt.value || (r.Passed && r.Message != "") {
				t.Errorf("Amcheck as %s on %s = %+v, want value %q", tt.user, tt.db, r, tt.value)
			}
			for _, part := range tt.messages {
				if !strings.Contains(r.Message, part) {
					t.Errorf("Message = %q, want it to contain %q", r.Message, part)
				}
			}
			if r.Expected != "every btree index verified" || r.Duration <= 0 || r.Duration > 30*time.Second {
				t.Errorf("Expected = %q, Duration = %s", r.Expected, r.Duration)
			}
		})
	}
}
