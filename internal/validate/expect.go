package validate

import (
	"cmp"
	"fmt"
	"math/big"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
)

// maxShown bounds how many characters of a value a Result shows.
const maxShown = 200

// Expectation on the first column of the first row of a check's query,
// compared as text or number. All given conditions must hold.
type Expectation struct {
	Equals   *string // exact text equality; numeric equality when both sides are numbers ("1000" == "1000.0")
	Min, Max *string // inclusive numeric bounds; a non-numeric value fails
	Regex    *string // RE2 that must match the text value
	NotEmpty bool    // at least one row and a non-NULL, non-blank value
}

// Validate checks a Check's shape and returns an error naming the field, for
// example `checks[2].expect.min: "abc" is not a number`. index is the check's
// position in the drill's list.
func (c Check) Validate(index int) error {
	field := func(f string) string { return fmt.Sprintf("checks[%d].%s", index, f) }
	hasSQL, hasBuiltin := strings.TrimSpace(c.SQL) != "", c.Builtin != ""
	switch {
	case hasSQL && hasBuiltin:
		return fmt.Errorf("%s: give exactly one of sql or builtin, not both", field("sql"))
	case !hasSQL && !hasBuiltin:
		return fmt.Errorf("%s: give exactly one of sql or builtin", field("sql"))
	case hasBuiltin && c.Builtin != BuiltinTablesReadable && c.Builtin != BuiltinAmcheck:
		return fmt.Errorf("%s: unknown builtin %q; use %s or %s", field("builtin"), c.Builtin, BuiltinTablesReadable, BuiltinAmcheck)
	case hasSQL && c.Expect == (Expectation{}):
		return fmt.Errorf("%s: a sql check needs an expectation (equals, min, max, regex or notEmpty)", field("expect"))
	case c.Timeout < 0:
		return fmt.Errorf("%s: %s is negative", field("timeout"), c.Timeout)
	}
	bounds := []struct {
		name  string
		value *string
	}{{"min", c.Expect.Min}, {"max", c.Expect.Max}}
	for _, b := range bounds {
		if b.value == nil {
			continue
		}
		if _, ok := parseNumber(*b.value); !ok {
			return fmt.Errorf("%s: %q is not a number", field("expect."+b.name), *b.value)
		}
	}
	if c.Expect.Min != nil && c.Expect.Max != nil {
		// As doubles, as the API server's rule compares them: bounds that
		// differ only beyond a double's precision pass both, and the check
		// then fails on its value.
		lo, loErr := strconv.ParseFloat(strings.TrimSpace(*c.Expect.Min), 64)
		hi, hiErr := strconv.ParseFloat(strings.TrimSpace(*c.Expect.Max), 64)
		if loErr == nil && hiErr == nil && lo > hi {
			return fmt.Errorf("%s: min %s is greater than max %s, so no value can pass", field("expect"), *c.Expect.Min, *c.Expect.Max)
		}
	}
	if c.Expect.Regex != nil {
		if _, err := regexp.Compile(*c.Expect.Regex); err != nil {
			return fmt.Errorf("%s: %v", field("expect.regex"), err)
		}
	}
	return nil
}

// Describe says the expectation in words: ">= 1000", "= 5",
// ">= 1 and <= 9", "matches ^ok$", "not empty".
func (e Expectation) Describe() string {
	var parts []string
	if e.Equals != nil {
		parts = append(parts, "= "+*e.Equals)
	}
	if e.Min != nil {
		parts = append(parts, ">= "+*e.Min)
	}
	if e.Max != nil {
		parts = append(parts, "<= "+*e.Max)
	}
	if e.Regex != nil {
		parts = append(parts, "matches "+*e.Regex)
	}
	if e.NotEmpty {
		parts = append(parts, "not empty")
	}
	return strings.Join(parts, " and ")
}

// Evaluate compares a query's first value with the expectation: value is nil
// for NULL, found is false when the query returned no rows. It returns why
// the expectation does not hold, or "" when it holds.
func (e Expectation) Evaluate(value *string, found bool) string {
	if !found {
		return "the query returned no rows"
	}
	if value == nil {
		if e == (Expectation{}) {
			return ""
		}
		return "the value is NULL"
	}
	v := *value
	if e.NotEmpty && strings.TrimSpace(v) == "" {
		return "the value is empty"
	}
	if e.Equals != nil {
		got, gotNumber := parseNumber(v)
		want, wantNumber := parseNumber(*e.Equals)
		switch {
		case gotNumber && wantNumber:
			if got.cmp(want) != 0 {
				return fmt.Sprintf("value %s is not %s", shorten(v), *e.Equals)
			}
		case v != *e.Equals:
			return fmt.Sprintf("value %q is not %q", shorten(v), *e.Equals)
		}
	}
	if e.Min != nil || e.Max != nil {
		n, ok := parseNumber(v)
		if !ok {
			return fmt.Sprintf("value %q is not a number", shorten(v))
		}
		if e.Min != nil {
			if lo, ok := parseNumber(*e.Min); !ok {
				return fmt.Sprintf("min %q is not a number", *e.Min)
			} else if n.cmp(lo) < 0 {
				return fmt.Sprintf("value %s < min %s", v, *e.Min)
			}
		}
		if e.Max != nil {
			if hi, ok := parseNumber(*e.Max); !ok {
				return fmt.Sprintf("max %q is not a number", *e.Max)
			} else if n.cmp(hi) > 0 {
				return fmt.Sprintf("value %s > max %s", v, *e.Max)
			}
		}
	}
	if e.Regex != nil {
		re, err := regexp.Compile(*e.Regex)
		if err != nil {
			return "bad regex: " + err.Error()
		}
		if !re.MatchString(v) {
			return fmt.Sprintf("value %q does not match %s", shorten(v), *e.Regex)
		}
	}
	return ""
}

// number is an exact decimal, or an infinity (inf -1 or 1) as PostgreSQL
// prints for numeric and float columns.
type number struct {
	inf int
	r   *big.Rat
}

// decimalSyntax is what counts as a number: plain decimals as PostgreSQL
// prints them, with an optional short exponent (no hex, fractions or
// underscores, and no exponent big enough to exhaust memory).
var decimalSyntax = regexp.MustCompile(`^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d{1,4})?$`)

func parseNumber(s string) (number, bool) {
	s = strings.TrimSpace(s)
	switch strings.ToLower(s) {
	case "infinity", "+infinity", "inf", "+inf":
		return number{inf: 1}, true
	case "-infinity", "-inf":
		return number{inf: -1}, true
	}
	if !decimalSyntax.MatchString(s) {
		return number{}, false
	}
	r, ok := new(big.Rat).SetString(s)
	return number{r: r}, ok
}

func (a number) cmp(b number) int {
	if a.inf != 0 || b.inf != 0 {
		return cmp.Compare(a.inf, b.inf)
	}
	return a.r.Cmp(b.r)
}

// shorten keeps a value short enough for a status field.
func shorten(v string) string {
	if utf8.RuneCountInString(v) <= maxShown {
		return v
	}
	return string([]rune(v)[:maxShown]) + "…"
}
