package store

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"strconv"
	"time"
)

// Schema migrations: migrations/<backend>/NNNN_name.sql, applied in version
// order, each once, recorded in schema_migrations. A migration is never
// edited once released: change the schema with a new file, for both
// backends.
//
//go:embed migrations
var migrationFS embed.FS

var migrationName = regexp.MustCompile(`^(\d{4})_[a-z0-9_]+\.sql$`)

type migration struct {
	version int
	name    string
	sql     string
}

// loadMigrations reads the migrations of one backend directory.
func loadMigrations(dir string) ([]migration, error) {
	entries, err := fs.ReadDir(migrationFS, path.Join("migrations", dir))
	if err != nil {
		return nil, err
	}
	var out []migration
	for _, e := range entries {
		m := migrationName.FindStringSubmatch(e.Name())
		if m == nil {
			return nil, fmt.Errorf("store: migration file %s/%s: name must be NNNN_name.sql", dir, e.Name())
		}
		v, _ := strconv.Atoi(m[1])
		b, err := fs.ReadFile(migrationFS, path.Join("migrations", dir, e.Name()))
		if err != nil {
			return nil, err
		}
		if len(out) > 0 && out[len(out)-1].version == v {
			return nil, fmt.Errorf("store: migrations %s and %s have the same version", out[len(out)-1].name, e.Name())
		}
		out = append(out, migration{version: v, name: e.Name(), sql: string(b)})
	}
	slices.SortFunc(out, func(a, b migration) int { return a.version - b.version })
	return out, nil
}

// migrate applies the migrations the database lacks, all in one
// transaction, under the backend's migration lock: of several processes
// opening a fresh database at once, one migrates and the others then find
// nothing to do.
func migrate(ctx context.Context, b backend, dir, table string) error {
	ms, err := loadMigrations(dir)
	if err != nil {
		return err
	}
	err = b.tx(ctx, func(q querier) error {
		if err := b.lockMigrations(ctx, q); err != nil {
			return fmt.Errorf("lock: %w", err)
		}
		if _, err := q.exec(ctx, table); err != nil {
			return fmt.Errorf("create schema_migrations: %w", err)
		}
		applied, err := collect(ctx, q, func(r row) (int64, error) {
			var v int64
			err := r.Scan(&v)
			return v, err
		}, `SELECT version FROM schema_migrations ORDER BY version`)
		if err != nil {
			return err
		}
		if n := len(applied); n > 0 && (len(ms) == 0 || applied[n-1] > int64(ms[len(ms)-1].version)) {
			known := 0
			if len(ms) > 0 {
				known = ms[len(ms)-1].version
			}
			return fmt.Errorf("database schema version %d is newer than this sluice knows (%d): upgrade sluice", applied[n-1], known)
		}
		for _, m := range ms {
			if slices.Contains(applied, int64(m.version)) {
				continue
			}
			if _, err := q.exec(ctx, m.sql); err != nil {
				return fmt.Errorf("apply %s: %w", m.name, err)
			}
			if _, err := q.exec(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)`,
				int64(m.version), m.name, b.ts(time.Now().UTC().Truncate(time.Microsecond))); err != nil {
				return fmt.Errorf("record %s: %w", m.name, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: migrate %s schema: %w", dir, err)
	}
	return nil
}
