package validate

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Session is one connection to a restored database that runs checks. Like
// its pgx.Conn, it runs one thing at a time.
type Session struct{ conn *pgx.Conn }

// Connect opens a connection with cfg. Its error is pgx's, unchanged.
func Connect(ctx context.Context, cfg *pgx.ConnConfig) (*Session, error) {
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return NewSession(conn), nil
}

// NewSession makes a Session of an open connection; the Session's Close
// closes it.
func NewSession(conn *pgx.Conn) *Session { return &Session{conn: conn} }

// Close closes the connection.
func (s *Session) Close(ctx context.Context) error { return s.conn.Close(ctx) }

// inTx runs f in a transaction with a statement timeout. A read-only one is
// always rolled back; a read-write one is committed when f succeeds.
func (s *Session) inTx(ctx context.Context, mode pgx.TxAccessMode, timeout time.Duration, f func(pgx.Tx) error) error {
	tx, err := s.conn.BeginTx(ctx, pgx.TxOptions{AccessMode: mode})
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // nothing to keep, or already committed
	ms := max(timeout.Milliseconds(), 1)
	if _, err := tx.Exec(ctx, fmt.Sprintf("SET LOCAL statement_timeout = %d", ms)); err != nil {
		return err
	}
	if err := f(tx); err != nil {
		return err
	}
	if mode == pgx.ReadWrite {
		return tx.Commit(ctx)
	}
	return nil
}

// typeName is the name of the type with the given OID, as the connection
// knows it.
func (s *Session) typeName(oid uint32) string {
	if t, ok := s.conn.TypeMap().TypeForOID(oid); ok {
		return t.Name
	}
	return fmt.Sprintf("value of type OID %d", oid)
}

// describeError keeps PostgreSQL's message and SQLSTATE, and nothing of the
// connection's configuration.
func describeError(err error) string {
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		return fmt.Sprintf("%s (SQLSTATE %s)", pg.Message, pg.Code)
	}
	return err.Error()
}

func isStatementTimeout(err error) bool {
	var pg *pgconn.PgError
	return errors.As(err, &pg) && pg.Code == "57014" && strings.Contains(pg.Message, "statement timeout")
}
