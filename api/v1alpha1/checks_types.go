package v1alpha1

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Builtin names a built-in check.
// +kubebuilder:validation:Enum=TablesReadable;Amcheck
type Builtin string

const (
	// BuiltinTablesReadable reads every user table end to end.
	BuiltinTablesReadable Builtin = "TablesReadable"
	// BuiltinAmcheck verifies every btree index with amcheck.
	BuiltinAmcheck Builtin = "Amcheck"
)

// Check is one validation of the restored database: a SQL query with an
// expectation on its first value, or a built-in.
// +kubebuilder:validation:XValidation:rule="has(self.sql) != has(self.builtin)",message="a check needs exactly one of sql or builtin"
// +kubebuilder:validation:XValidation:rule="has(self.builtin) || has(self.name)",message="a sql check needs a name"
// +kubebuilder:validation:XValidation:rule="!has(self.sql) || (has(self.expect) && (has(self.expect.equals) || has(self.expect.min) || has(self.expect.max) || has(self.expect.regex) || (has(self.expect.notEmpty) && self.expect.notEmpty)))",message="a sql check needs an expectation: expect.equals, min, max, regex or notEmpty"
type Check struct {
	// Name identifies the check in results; required for sql checks, a
	// builtin check defaults to the builtin's name.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Name string `json:"name,omitempty"`

	// SQL is a read-only query; its first column of the first row is
	// compared with Expect. It runs in a read-only transaction.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=65536
	// +kubebuilder:validation:XValidation:rule="self.trim() != ''",message="sql must not be blank"
	SQL string `json:"sql,omitempty"`

	// Builtin is a built-in check: TablesReadable or Amcheck.
	// +optional
	Builtin Builtin `json:"builtin,omitempty"`

	// Expect is what the SQL value must satisfy; all given conditions must hold.
	// +optional
	Expect *Expectation `json:"expect,omitempty"`

	// Timeout of this check's statements; default 1m.
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="timeout must be a positive duration such as 30s"
	Timeout *metav1.Duration `json:"timeout,omitempty"`
}

// Expectation on a check's value. Numbers compare numerically.
// +kubebuilder:validation:XValidation:rule="!has(self.min) || !has(self.max) || double(self.min) <= double(self.max)",message="expect.min is greater than expect.max: no value could pass"
type Expectation struct {
	// Equals: the value equals this (numerically when both are numbers).
	// +optional
	Equals *string `json:"equals,omitempty"`
	// Min: the value is a number >= this.
	// +optional
	// +kubebuilder:validation:Pattern=`^-?[0-9]+(\.[0-9]+)?$`
	Min *string `json:"min,omitempty"`
	// Max: the value is a number <= this.
	// +optional
	// +kubebuilder:validation:Pattern=`^-?[0-9]+(\.[0-9]+)?$`
	Max *string `json:"max,omitempty"`
	// Regex: the value matches this RE2 expression.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:XValidation:rule="''.matches(self) || !''.matches(self)",message="expect.regex must be an RE2 expression (https://github.com/google/re2/wiki/Syntax)"
	Regex *string `json:"regex,omitempty"`
	// NotEmpty: the query returns a row whose value is not NULL or empty.
	// +optional
	NotEmpty bool `json:"notEmpty,omitempty"`
}

// FreshnessSpec measures the newest recoverable write.
type FreshnessSpec struct {
	// SQL returns one timestamp: the newest write in the restored data,
	// e.g. SELECT max(created_at) FROM orders.
	// +kubebuilder:validation:MinLength=1
	SQL string `json:"sql"`
	// TimeZone (IANA name) says where a `timestamp without time zone` answer
	// was written. Without it such an answer is refused: drillerd cannot tell
	// when it was. timestamptz and date answers need none.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="self.matches('^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+){0,2}$') && self != 'Local' && timestamp('2000-01-01T00:00:00Z').getFullYear(self) > 0",message="freshness.timeZone must be an IANA time zone name such as Europe/Berlin, Japan or UTC"
	TimeZone string `json:"timeZone,omitempty"`
	// ClockSkew is how much later than the snapshot's cut the newest data may
	// be (clocks of writers and storage disagree); data newer than the cut
	// plus this is not trusted and the RPO is the snapshot's age. Default 5m.
	// +optional
	ClockSkew *metav1.Duration `json:"clockSkew,omitempty"`
}

// DefaultClockSkew is FreshnessSpec.ClockSkew's default.
const DefaultClockSkew = 5 * time.Minute

// DataLossSpec bounds what a copy may lack.
type DataLossSpec struct {
	// MaxTableShrinkPercent: a table with fewer rows than the last Succeeded
	// run read, by more than this share, fails the drill (DataMissing).
	// Default 50; 100 turns the comparison off.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	MaxTableShrinkPercent *int32 `json:"maxTableShrinkPercent,omitempty"`
	// VolatileTables may shrink freely between runs (queues, sessions,
	// caches): schema-qualified names such as public.sessions, in any
	// database.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=100
	VolatileTables []string `json:"volatileTables,omitempty"`
	// ExpectEmpty says a copy without a single user table is what this
	// drill expects. Without it such a copy fails (EmptyDatabase).
	// +optional
	ExpectEmpty bool `json:"expectEmpty,omitempty"`
}

// DefaultMaxTableShrinkPercent is DataLossSpec.MaxTableShrinkPercent's default.
const DefaultMaxTableShrinkPercent = 50

// CheckName is the name a check is reported under.
func (c Check) CheckName() string {
	if c.Name != "" {
		return c.Name
	}
	return string(c.Builtin)
}
