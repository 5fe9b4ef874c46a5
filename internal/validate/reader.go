package validate

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// readerPrefix starts the name of the role Restrict creates.
const readerPrefix = "drillerd_checks_"

// Restrict makes the user's SQL checks and the freshness query run as a
// role of their own, created in the copy for this session: it may log in and
// read every table (pg_read_all_data on PostgreSQL 14 and later; SELECT on
// every table of the session's database before) and nothing else: not a
// superuser, no server files, no programs, no other servers. Its password
// is random and lives in this session only. The built-ins keep the
// session's own role. A session whose role is not a superuser has none of
// those powers to begin with and is left as it is. Restrict returns the
// role's name, "" when the session was left as it is.
func (s *Session) Restrict(ctx context.Context) (string, error) {
	var super, recovering bool
	var version int
	err := s.conn.QueryRow(ctx, "SELECT rolsuper, current_setting('server_version_num')::int, pg_catalog.pg_is_in_recovery() FROM pg_catalog.pg_roles WHERE rolname = current_user").Scan(&super, &version, &recovering)
	if err != nil {
		return "", fmt.Errorf("while reading the session's role: %s", describeError(err))
	}
	if !super {
		return "", nil
	}
	if recovering {
		// A standby's data directory: no role can be created, and the
		// drill's SQL must not run as the superuser. The write probe says
		// what is wrong with the copy.
		s.userSQLRefused = "not run: the copy is in recovery (a standby's data directory), so no read-only role could be made for the drill's SQL"
		return "", nil
	}
	secret := make([]byte, 24)
	suffix := make([]byte, 4)
	_, _ = rand.Read(secret) // never fails
	_, _ = rand.Read(suffix)
	role := readerPrefix + hex.EncodeToString(suffix)
	password := hex.EncodeToString(secret)
	ident := pgx.Identifier{role}.Sanitize()
	stmts := []string{
		// hex: nothing to escape in the literal.
		"CREATE ROLE " + ident + " LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD '" + password + "'",
	}
	if version >= 140000 {
		stmts = append(stmts, "GRANT pg_read_all_data TO "+ident)
	} else {
		stmts = append(stmts, `DO $$DECLARE s name; BEGIN
  FOR s IN SELECT nspname FROM pg_catalog.pg_namespace WHERE nspname !~ '^pg_' AND nspname <> 'information_schema' LOOP
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO `+ident+`', s);
    EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA %I TO `+ident+`', s);
    EXECUTE format('GRANT SELECT ON ALL SEQUENCES IN SCHEMA %I TO `+ident+`', s);
  END LOOP; END$$`)
	}
	err = s.inTx(ctx, pgx.ReadWrite, DefaultCheckTimeout, func(tx pgx.Tx) error {
		for _, stmt := range stmts {
			if _, err := tx.Exec(ctx, stmt); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("while creating the read-only role %s in the copy: %s", role, describeError(err))
	}
	cfg := s.cfg.Copy()
	cfg.User, cfg.Password = role, password
	reader, err := Connect(ctx, cfg)
	if err != nil {
		return "", fmt.Errorf("cannot log in as the read-only role %s: %s (the copy's pg_hba.conf must admit it)", role, describeError(err))
	}
	s.reader = reader
	return role, nil
}

// forChecks is the session the user's SQL runs on: the restricted reader,
// or this session when there is none.
func (s *Session) forChecks() *Session {
	if s.reader != nil {
		return s.reader
	}
	return s
}
