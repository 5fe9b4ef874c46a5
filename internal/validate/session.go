package validate

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Session is one connection to a restored database that runs checks. Like
// its pgx.Conn, it runs one thing at a time. It keeps the connection's
// configuration to reach the cluster's other databases the same way: the
// built-ins open one more connection at a time, one per other database, and
// close it when done there.
type Session struct {
	conn     *pgx.Conn
	cfg      *pgx.ConnConfig
	database string   // the database conn is connected to
	reader   *Session // Restrict's session for the user's SQL; nil before
	// userSQLRefused, when set, is why the user's SQL is not run at all.
	userSQLRefused string
}

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
func NewSession(conn *pgx.Conn) *Session {
	cfg := conn.Config()
	// PostgreSQL connects to the database named like the user when none is given.
	return &Session{conn: conn, cfg: cfg, database: cmp.Or(cfg.Database, cfg.User)}
}

// Close closes the connection, and the restricted reader's.
func (s *Session) Close(ctx context.Context) error {
	if s.reader != nil {
		_ = s.reader.Close(ctx)
	}
	return s.conn.Close(ctx)
}

// connectTo opens a Session on another database of the same cluster, with
// the same configuration (host, user, credentials, TLS).
func (s *Session) connectTo(ctx context.Context, database string) (*Session, error) {
	cfg := s.cfg.Copy()
	cfg.Database = database
	return Connect(ctx, cfg)
}

// inTx runs f in a transaction with a statement timeout. A read-only one is
// always rolled back; any other (pgx.ReadWrite, or "" for the session's
// default, as an application's plain BEGIN) is committed when f succeeds.
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
	if mode != pgx.ReadOnly {
		return tx.Commit(ctx)
	}
	return nil
}

// inSavepoint runs f in a savepoint of tx, so that a failing statement
// leaves tx usable for the next relation.
func inSavepoint(ctx context.Context, tx pgx.Tx, f func(pgx.Tx) error) error {
	sp, err := tx.Begin(ctx)
	if err != nil {
		return err
	}
	if err := f(sp); err != nil {
		_ = sp.Rollback(context.WithoutCancel(ctx))
		return err
	}
	return sp.Commit(ctx)
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
		if pg.Detail != "" {
			return fmt.Sprintf("%s (SQLSTATE %s): %s", pg.Message, pg.Code, pg.Detail)
		}
		return fmt.Sprintf("%s (SQLSTATE %s)", pg.Message, pg.Code)
	}
	return err.Error()
}

// Refused reports whether err is PostgreSQL refusing the connected role a
// privilege (SQLSTATE 42501) or a statement it may not run (2F003, e.g.
// dblink without a password): the drill's configuration is at fault, not
// the copy.
func Refused(err error) bool {
	var pg *pgconn.PgError
	return errors.As(err, &pg) && (pg.Code == "42501" || pg.Code == "2F003")
}

// ConnectionLost reports whether err is drillerd's connection to the copy
// going away under it: the server closed it (it crashed, was killed, or
// shut down: SQLSTATE 57P01, 57P02 or class 08), or the socket ended in
// the middle of a statement, or a statement was tried on a connection
// already broken. A statement the copy answered with an error is not.
func ConnectionLost(err error) bool {
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		return pg.Code == "57P01" || pg.Code == "57P02" || strings.HasPrefix(pg.Code, "08")
	}
	return errors.Is(err, pgconn.ErrConnClosed) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, net.ErrClosed)
}

// findingOf is the finding an error is: FindingDamaged when PostgreSQL
// reported corrupted data (SQLSTATE class XX: internal error, data_corrupted,
// index_corrupted) or an I/O problem with a relation file (class 58: e.g.
// 58P01 could not open file), "" otherwise.
func findingOf(err error) string {
	var pg *pgconn.PgError
	if errors.As(err, &pg) && (strings.HasPrefix(pg.Code, "XX") || strings.HasPrefix(pg.Code, "58")) {
		return FindingDamaged
	}
	return ""
}

// isServerError says whether err is PostgreSQL's answer to a statement, after
// which the connection is still usable; anything else (a broken connection,
// a cancelled context) ends the check.
func isServerError(err error) bool {
	var pg *pgconn.PgError
	return errors.As(err, &pg)
}

func isStatementTimeout(err error) bool {
	var pg *pgconn.PgError
	return errors.As(err, &pg) && pg.Code == "57014" && strings.Contains(pg.Message, "statement timeout")
}
