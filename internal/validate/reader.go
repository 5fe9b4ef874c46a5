package validate

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// readerPrefix starts the name of the role Restrict creates.
const readerPrefix = "drillerd_checks_"

// NewReaderRole names a role for Restrict: drillerd_checks_ and 8 random
// hexadecimal digits. It is named before the database starts, so that the
// sandbox's pg_ident.conf can let drillerd's client certificate log in as it.
func NewReaderRole() string {
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix) // never fails
	return readerPrefix + hex.EncodeToString(suffix)
}

// Restrict makes the user's SQL checks and the freshness query run as
// role, which it creates in the copy for this session: it may log in and
// read every table (pg_read_all_data on PostgreSQL 14 and later; SELECT on
// every table of the session's database before) and nothing else: not a
// superuser, no server files, no programs, no other servers. It logs in the
// way the session did: with a random password that lives in this session
// only when the session used a password, else with the session's TLS
// client certificate alone (the copy's pg_ident.conf must map it to role).
// The built-ins keep the session's own role. A session whose role is not a
// superuser has none of those powers to begin with and is left as it is.
// Restrict returns the role's name, "" when the session was left as it is.
func (s *Session) Restrict(ctx context.Context, role string) (string, error) {
	if !strings.HasPrefix(role, readerPrefix) {
		return "", fmt.Errorf("the read-only role's name %q does not begin with %s", role, readerPrefix)
	}
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
	password := ""
	if s.cfg.Password != "" {
		secret := make([]byte, 24)
		_, _ = rand.Read(secret) // never fails
		password = hex.EncodeToString(secret)
	}
	ident := pgx.Identifier{role}.Sanitize()
	create := "CREATE ROLE " + ident + " LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"
	if password != "" {
		create += " PASSWORD '" + password + "'" // hex: nothing to escape in the literal
	}
	stmts := []string{create}
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
		return "", fmt.Errorf("cannot log in as the read-only role %s: %s (the copy's pg_hba.conf and pg_ident.conf must admit it)", role, describeError(err))
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
