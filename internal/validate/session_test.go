package validate

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// The drill engine puts a Session behind an interface of this shape.
var _ interface {
	Run(context.Context, []Check) []Result
	Freshness(context.Context, string, time.Duration) (time.Time, error)
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
