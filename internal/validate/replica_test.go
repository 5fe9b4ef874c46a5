package validate

import (
	"os"
	"path/filepath"
)

// replicaDamage records what setupReplica did.
var replicaDamage struct {
	file  string // accounts' file, as pg_relation_filepath names it
	block int64  // the page overwritten
}

// setupReplica builds a cluster with data checksums, the amcheck extension
// and table accounts, overwrites bytes in the middle of one of accounts'
// pages while it is stopped, and starts it again with standby.signal and no
// primary to follow: a copy restored from a replica's volume, which serves
// reads and refuses writes.
func setupReplica() (*cluster, error) {
	c, err := newCluster("--data-checksums")
	if err != nil {
		return c, err
	}
	if err := c.start(); err != nil {
		return c, err
	}
	if err := c.exec("postgres",
		`CREATE EXTENSION amcheck`,
		`CREATE TABLE accounts (id int PRIMARY KEY, owner text NOT NULL)`,
		`INSERT INTO accounts SELECT g, md5(g::text) FROM generate_series(1, 1000) g`,
		`VACUUM ANALYZE accounts`,
	); err != nil {
		return c, err
	}
	if err := c.query("postgres", "SELECT pg_relation_filepath('accounts')", &replicaDamage.file); err != nil {
		return c, err
	}
	if err := c.stop(); err != nil {
		return c, err
	}
	replicaDamage.block = 2
	if err := editPage(c.file(replicaDamage.file), replicaDamage.block, func(page []byte) error {
		copy(page[pageSize/2:], "sixteen bytes!!!")
		return nil
	}); err != nil {
		return c, err
	}
	signal := filepath.Join(c.data, "standby.signal")
	if err := os.WriteFile(signal, nil, 0o600); err != nil {
		return c, err
	}
	if c.cred != nil {
		if err := os.Chown(signal, int(c.cred.Uid), int(c.cred.Gid)); err != nil {
			return c, err
		}
	}
	return c, c.start()
}
