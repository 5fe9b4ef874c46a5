package validate

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// databasesToCheck lists the session's own database and every database that
// accepts connections, templates aside, in name order.
const databasesToCheck = `
SELECT current_database(), coalesce(array_agg(datname ORDER BY datname COLLATE "C"), '{}')
FROM pg_catalog.pg_database
WHERE datallowconn AND NOT datistemplate`

// outcome is what a built-in found in one database.
type outcome struct {
	value    string
	problems problems
	tables   []TableCount
}

// runBuiltin runs a built-in in every database that accepts connections and
// returns one Result per database.
func (s *Session) runBuiltin(ctx context.Context, c Check) []Result {
	timeout := timeoutOf(c)
	base := Result{Name: c.Name, Expected: expected(c)}
	start := time.Now()
	var databases []string
	err := s.inTx(ctx, pgx.ReadOnly, timeout, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, databasesToCheck).Scan(&s.database, &databases)
	})
	if err != nil {
		r := base
		r.Database, r.Duration = s.database, time.Since(start)
		r.Message = "listing databases: " + describeError(err)
		return []Result{r}
	}
	if !slices.Contains(databases, s.database) { // e.g. connected to a template
		databases = append([]string{s.database}, databases...)
	}
	results := make([]Result, 0, len(databases))
	for _, db := range databases {
		r := base
		r.Database = db
		if err := ctx.Err(); err != nil {
			r.Message = "not run: " + err.Error()
			results = append(results, r)
			continue
		}
		start := time.Now()
		o := s.builtinIn(ctx, c.Builtin, db, timeout)
		r.Duration = time.Since(start)
		r.Value, r.Tables = o.value, o.tables
		r.Message, r.Finding = o.problems.message(), o.problems.finding()
		r.Passed = len(o.problems) == 0
		results = append(results, r)
	}
	return results
}

// builtinIn runs a built-in in database db, over the session's own
// connection or one of its own.
func (s *Session) builtinIn(ctx context.Context, builtin, db string, timeout time.Duration) outcome {
	sess := s
	if db != s.database {
		other, err := s.connectTo(ctx, db)
		if err != nil {
			p := problem{text: fmt.Sprintf("cannot connect to database %s as %s: %s", displayIdent(db), s.cfg.User, describeError(err))}
			if missingDatabase(err) {
				// pg_database lists it, but its directory is gone.
				p.finding = FindingDataMissing
				p.text = fmt.Sprintf("database %s is in the catalog but its files are missing: %s", displayIdent(db), describeError(err))
			}
			return outcome{problems: problems{p}}
		}
		defer other.Close(context.WithoutCancel(ctx)) //nolint:errcheck // read-only work, nothing to lose
		sess = other
	}
	if builtin == BuiltinAmcheck {
		return sess.amcheck(ctx, timeout)
	}
	return sess.tablesReadable(ctx, timeout)
}

// missingDatabase reports whether err is PostgreSQL saying a database it
// lists does not exist (SQLSTATE 3D000): its subdirectory is missing.
func missingDatabase(err error) bool {
	var pg *pgconn.PgError
	return errors.As(err, &pg) && pg.Code == "3D000"
}

// problem is one thing a built-in found wrong: a sentence naming the
// relation and database, and the kind of finding it is.
type problem struct {
	text    string
	finding string // "", FindingDataMissing or FindingDamaged
}

type problems []problem

// maxListed bounds how many problems a Result's Message spells out.
const maxListed = 5

// message lists the first maxListed problems and counts the rest.
func (ps problems) message() string {
	texts := make([]string, 0, min(len(ps), maxListed)+1)
	for i, p := range ps {
		if i == maxListed {
			texts = append(texts, fmt.Sprintf("and %d more", len(ps)-maxListed))
			break
		}
		texts = append(texts, p.text)
	}
	return strings.Join(texts, "; ")
}

// finding is the gravest finding among the problems: damaged data outranks
// missing data, which outranks a plain failure (a permission, a timeout).
func (ps problems) finding() string {
	rank := map[string]int{FindingDamaged: 2, FindingDataMissing: 1}
	worst := ""
	for _, p := range ps {
		if rank[p.finding] > rank[worst] {
			worst = p.finding
		}
	}
	return worst
}

// plainIdent is a name PostgreSQL's quote_ident leaves unquoted (keywords
// aside).
var plainIdent = regexp.MustCompile(`^[a-z_][a-z0-9_$]*$`)

// displayIdent is a name as a message shows it: as is when plain, else in
// double quotes with embedded quotes doubled, like quote_ident.
func displayIdent(name string) string {
	if plainIdent.MatchString(name) {
		return name
	}
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
}
