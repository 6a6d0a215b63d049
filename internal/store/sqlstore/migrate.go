package sqlstore

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
)

// migration is one embedded schema change, migrations/<dialect>/NNNN_name.sql.
type migration struct {
	version int64
	name    string
	sql     string
}

// loadMigrations reads the migrations at the root of fsys in version order.
func loadMigrations(fsys fs.FS) ([]migration, error) {
	files, err := fs.Glob(fsys, "*.sql")
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, f := range files {
		num, name, ok := strings.Cut(strings.TrimSuffix(path.Base(f), ".sql"), "_")
		v, err := strconv.ParseInt(num, 10, 64)
		if !ok || err != nil || v <= 0 || name == "" {
			return nil, fmt.Errorf("sqlstore: migration file %q is not named NNNN_name.sql", f)
		}
		text, err := fs.ReadFile(fsys, f)
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: name, sql: string(text)})
	}
	slices.SortFunc(ms, func(a, b migration) int { return cmp.Compare(a.version, b.version) })
	for i := 1; i < len(ms); i++ {
		if ms[i].version == ms[i-1].version {
			return nil, fmt.Errorf("sqlstore: two migrations numbered %d", ms[i].version)
		}
	}
	return ms, nil
}

// Migrate applies the embedded migrations not yet recorded in schema_migrations, in
// order, in one transaction: either all of them are applied or none. A database
// that records a migration this build does not know (a newer deputy wrote it) is
// an error. Calling Migrate again, also from another process, does nothing; on
// PostgreSQL nodes that start at once take turns (an advisory lock).
func (db *DB) Migrate(ctx context.Context) error {
	ms, err := loadMigrations(db.d.migrations)
	if err != nil {
		return err
	}
	known := make(map[int64]bool, len(ms))
	for _, m := range ms {
		known[m.version] = true
	}
	err = db.inLockedTx(ctx, "migrate", db.d.q.lockMigrations, nil, func(tx *sql.Tx, _ []*sql.Stmt) error {
		if _, err := tx.ExecContext(ctx, db.d.q.createMigrations); err != nil {
			return db.fail("migrate: create schema_migrations", err)
		}
		applied, err := appliedVersions(ctx, tx, db.d.q.appliedMigration)
		if err != nil {
			return db.fail("migrate: read schema_migrations", err)
		}
		for v := range applied {
			if !known[v] {
				return fmt.Errorf("sqlstore: migrate: the database has schema version %d, unknown to this build of deputy (newer?)", v)
			}
		}
		for _, m := range ms {
			if applied[m.version] {
				continue
			}
			if _, err := tx.ExecContext(ctx, m.sql); err != nil {
				return db.fail(fmt.Sprintf("migrate: apply %04d_%s", m.version, m.name), err)
			}
			if _, err := tx.ExecContext(ctx, db.d.q.recordMigration, m.version, m.name, micros(time.Now())); err != nil {
				return db.fail(fmt.Sprintf("migrate: record %04d_%s", m.version, m.name), err)
			}
		}
		return nil
	})
	return err
}

func appliedVersions(ctx context.Context, tx *sql.Tx, query string) (map[int64]bool, error) {
	rows, err := tx.QueryContext(ctx, query)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	applied := make(map[int64]bool)
	for rows.Next() {
		var v int64
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		applied[v] = true
	}
	return applied, rows.Err()
}
