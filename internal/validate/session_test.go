package validate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// The drill engine puts a Session behind an interface of this shape.
var _ interface {
	Restrict(context.Context, string) (string, error)
	Run(context.Context, []Check) []Result
	Freshness(context.Context, string, *time.Location, time.Duration) (time.Time, error)
	Identity(context.Context) (Identity, error)
	WriteProbe(context.Context, time.Duration) error
	Close(context.Context) error
} = (*Session)(nil)

func TestConnectFailsWithoutAServer(t *testing.T) {
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := pgx.ParseConfig("postgres://postgres@127.0.0.1:" + strconv.Itoa(port) + "/drill?sslmode=disable&connect_timeout=5")
	if err != nil {
		t.Fatal(err)
	}
	if sess, err := Connect(t.Context(), cfg); err == nil || sess != nil {
		t.Errorf("Connect to a closed port = %v, %v; want no session and an error", sess, err)
	}
}

func TestCloseClosesTheConnection(t *testing.T) {
	conn := openSession(t, "postgres", "drill").conn
	sess := NewSession(conn)
	if err := sess.Close(t.Context()); err != nil || !conn.IsClosed() {
		t.Errorf("Close = %v; connection closed: %v", err, conn.IsClosed())
	}
}

func TestNewSessionReachesTheOtherDatabases(t *testing.T) {
	c := primary.server(t, setupPrimary)
	conn, err := pgx.Connect(t.Context(), c.url("postgres", "noext"))
	if err != nil {
		t.Fatal(err)
	}
	sess := NewSession(conn)
	t.Cleanup(func() { _ = sess.Close(context.Background()) })
	var databases []string
	for _, r := range sess.Run(t.Context(), []Check{{Name: "tables", Builtin: BuiltinTablesReadable}}) {
		databases = append(databases, r.Database)
	}
	if got := strings.Join(databases, " "); got != "byteadamage compressdamage drill heapdamage indexdamage legacy noext postgres private truncated unlinked widedamage" {
		t.Errorf("TablesReadable ran in %s", got)
	}
}

func TestTheSessionsDatabaseDefaultsToTheUser(t *testing.T) {
	c := primary.server(t, setupPrimary)
	conn, err := pgx.Connect(t.Context(), strings.Replace(c.url("postgres", ""), "/?", "?", 1))
	if err != nil {
		t.Fatal(err)
	}
	sess := NewSession(conn)
	t.Cleanup(func() { _ = sess.Close(context.Background()) })
	r := sess.Run(t.Context(), []Check{{Name: "db", SQL: "SELECT current_database()", Expect: Expectation{Equals: s("postgres")}}})[0]
	if !r.Passed || r.Database != "postgres" {
		t.Errorf("Run = %+v, want it to pass in database postgres", r)
	}
}

func TestErrorKinds(t *testing.T) {
	tests := []struct {
		name             string
		err              error
		refused, missing bool
	}{
		{"a privilege refused", &pgconn.PgError{Code: "42501"}, true, false},
		{"a prohibited statement (dblink without a password)", &pgconn.PgError{Code: "2F003"}, true, false},
		{"a listed database whose directory is gone", &pgconn.PgError{Code: "3D000", Message: `database "inventory" does not exist`}, false, true},
		{"wrapped", fmt.Errorf("while connecting: %w", &pgconn.PgError{Code: "3D000"}), false, true},
		{"a network error", errors.New("connection refused"), false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Refused(tt.err); got != tt.refused {
				t.Errorf("Refused = %v, want %v", got, tt.refused)
			}
			if got := missingDatabase(tt.err); got != tt.missing {
				t.Errorf("missingDatabase = %v, want %v", got, tt.missing)
			}
		})
	}
}

func TestConnectionLost(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"the server killed: the socket ends mid-statement", fmt.Errorf("check slow: %w", io.ErrUnexpectedEOF), true},
		{"a statement on a connection already broken", &probeError{statement: "BEGIN", err: fmt.Errorf("conn closed: %w", pgconn.ErrConnClosed)}, true},
		{"the server shutting down (fast)", &pgconn.PgError{Code: "57P01", Message: "terminating connection due to administrator command"}, true},
		{"another backend crashed", &pgconn.PgError{Code: "57P02", Message: "terminating connection because of crash of another server process"}, true},
		{"a connection exception", &pgconn.PgError{Code: "08006"}, true},
		{"reset by the peer", fmt.Errorf("read: %w", syscall.ECONNRESET), true},
		{"the copy refused a write", &pgconn.PgError{Code: "25006", Message: "cannot execute CREATE TABLE in a read-only transaction"}, false},
		{"a statement timeout", &pgconn.PgError{Code: "57014"}, false},
		{"a damaged page", &pgconn.PgError{Code: "XX001"}, false},
		{"no error", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ConnectionLost(tt.err); got != tt.want {
				t.Errorf("ConnectionLost(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}
