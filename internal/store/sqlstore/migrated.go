package sqlstore

import "context"

// Migrated reports whether the database holds deputy's schema (Migrate has run on
// it), changing nothing: tools that read an existing trail use it to refuse a
// database nobody has set up (on PostgreSQL, the schema search_path names).
func (db *DB) Migrated(ctx context.Context) (bool, error) {
	q := `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'`
	if db.d.name == "postgres" {
		q = `SELECT count(*) FROM pg_catalog.pg_tables WHERE tablename = 'schema_migrations' AND schemaname = current_schema()`
	}
	var n int
	if err := db.r.QueryRowContext(ctx, q).Scan(&n); err != nil {
		return false, db.fail("migrated", err)
	}
	return n > 0, nil
}
