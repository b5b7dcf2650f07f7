package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// SQLite backend: modernc.org/sqlite (pure Go), one database file, WAL mode.
//
// Writes go through a pool of one connection whose transactions start with
// BEGIN IMMEDIATE (they take the write lock up front, so a read-then-write
// transaction never fails to upgrade its lock); reads use a separate pool of
// read-only connections, which WAL lets run alongside the writer. Other
// processes on the same file wait for the write lock up to the busy
// timeout. Foreign keys are enforced; commits are synchronous (FULL), so a
// committed revocation survives a power cut.
//
// Changes are broadcast in process: to every Store open on the same file in
// this process. SQLite is the single-replica store; several replicas need
// PostgreSQL.

const sqliteBusyTimeout = 10 * time.Second

const sqliteMigrationsTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
	version    INTEGER NOT NULL PRIMARY KEY,
	name       TEXT NOT NULL,
	applied_at TEXT NOT NULL
) STRICT`

type sqliteBackend struct {
	path string
	w, r *sql.DB
	bus  *broadcaster
}

// sqliteBuses: the Stores of this process open on each database file, so a
// change made through one reaches the Changes feeds of all.
var sqliteBuses = struct {
	sync.Mutex
	m map[string]map[*sqliteBackend]struct{}
}{m: map[string]map[*sqliteBackend]struct{}{}}

// sqliteOpening serializes opens of one database file in this process.
var sqliteOpening sync.Map // abs path -> *sync.Mutex

// sqliteBusy reports a SQLITE_BUSY or SQLITE_LOCKED answer.
func sqliteBusy(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "SQLITE_BUSY") || strings.Contains(msg, "database is locked") || strings.Contains(msg, "SQLITE_LOCKED")
}

func openSQLite(ctx context.Context, path string) (Store, error) {
	if path == "" {
		return nil, fmt.Errorf("%w: empty SQLite path", ErrInvalid)
	}
	if strings.ContainsAny(path, "?#") || strings.HasPrefix(path, "file:") || path == ":memory:" {
		return nil, fmt.Errorf("%w: SQLite path %q: want a plain file path (no URI, no ? or #)", ErrInvalid, path)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("store: SQLite path %q: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o750); err != nil {
		return nil, fmt.Errorf("store: create directory for %s: %w", abs, err)
	}
	params := fmt.Sprintf("_pragma=busy_timeout(%d)&_pragma=foreign_keys(1)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)",
		sqliteBusyTimeout.Milliseconds())
	w, err := sql.Open("sqlite", abs+"?"+params+"&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", abs, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	r, err := sql.Open("sqlite", abs+"?"+params+"&_pragma=query_only(1)")
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("store: open %s: %w", abs, err)
	}
	r.SetMaxOpenConns(4)
	r.SetMaxIdleConns(4)
	b := &sqliteBackend{path: abs, w: w, r: r, bus: newBroadcaster()}
	// Switching to WAL and migrating take the database's write lock, and
	// SQLite may answer SQLITE_BUSY at once rather than wait while another
	// connection does the same. Opens of one file in this process take
	// turns; another process is waited for by retrying.
	mu, _ := sqliteOpening.LoadOrStore(abs, new(sync.Mutex))
	mu.(*sync.Mutex).Lock()
	defer mu.(*sync.Mutex).Unlock()
	deadline := time.Now().Add(sqliteBusyTimeout)
	for {
		err := w.PingContext(ctx)
		if err == nil {
			if err = migrate(ctx, b, "sqlite", sqliteMigrationsTable); err == nil {
				break
			}
			if !sqliteBusy(err) || time.Now().After(deadline) {
				b.closeDBs()
				return nil, fmt.Errorf("%w (database %s)", err, abs)
			}
		} else if !sqliteBusy(err) || time.Now().After(deadline) {
			b.closeDBs()
			return nil, fmt.Errorf("store: open SQLite database %s: %w", abs, err)
		}
		select {
		case <-ctx.Done():
			b.closeDBs()
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	sqliteBuses.Lock()
	if sqliteBuses.m[abs] == nil {
		sqliteBuses.m[abs] = map[*sqliteBackend]struct{}{}
	}
	sqliteBuses.m[abs][b] = struct{}{}
	sqliteBuses.Unlock()
	return newEngine(b), nil
}

func (b *sqliteBackend) closeDBs() error {
	return errors.Join(b.r.Close(), b.w.Close())
}

func (b *sqliteBackend) close() error {
	sqliteBuses.Lock()
	delete(sqliteBuses.m[b.path], b)
	if len(sqliteBuses.m[b.path]) == 0 {
		delete(sqliteBuses.m, b.path)
	}
	sqliteBuses.Unlock()
	b.bus.close()
	if err := b.closeDBs(); err != nil {
		return fmt.Errorf("store: close %s: %w", b.path, err)
	}
	return nil
}

// sqlQuerier adapts *sql.DB and *sql.Tx.
type sqlQuerier struct {
	c interface {
		ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
		QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
		QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	}
}

func (q sqlQuerier) exec(ctx context.Context, stmt string, args ...any) (int64, error) {
	res, err := q.c.ExecContext(ctx, stmt, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (q sqlQuerier) query(ctx context.Context, stmt string, args ...any) (rows, error) {
	return q.c.QueryContext(ctx, stmt, args...)
}

func (q sqlQuerier) queryRow(ctx context.Context, stmt string, args ...any) row {
	return q.c.QueryRowContext(ctx, stmt, args...)
}

func (b *sqliteBackend) exec(ctx context.Context, stmt string, args ...any) (int64, error) {
	return sqlQuerier{b.w}.exec(ctx, stmt, args...)
}

func (b *sqliteBackend) query(ctx context.Context, stmt string, args ...any) (rows, error) {
	return sqlQuerier{b.r}.query(ctx, stmt, args...)
}

func (b *sqliteBackend) queryRow(ctx context.Context, stmt string, args ...any) row {
	return sqlQuerier{b.r}.queryRow(ctx, stmt, args...)
}

func (b *sqliteBackend) tx(ctx context.Context, fn func(q querier) error) error {
	tx, err := b.w.BeginTx(ctx, nil) // BEGIN IMMEDIATE (_txlock)
	if err != nil {
		return err
	}
	if err := fn(sqlQuerier{tx}); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

func (b *sqliteBackend) forUpdate() string { return "" } // the transaction holds the write lock

func (b *sqliteBackend) ts(t time.Time) any {
	return t.UTC().Format("2006-01-02T15:04:05.000000Z")
}

func (b *sqliteBackend) day(t time.Time) any { return t.UTC().Format(time.DateOnly) }

func (b *sqliteBackend) isUnique(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	switch se.Code() {
	case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
		return true
	case sqlite3.SQLITE_CONSTRAINT:
		return strings.Contains(se.Error(), "UNIQUE constraint")
	}
	return false
}

// lockMigrations: nothing to do, BEGIN IMMEDIATE already serialises
// writers, across processes too.
func (b *sqliteBackend) lockMigrations(context.Context, querier) error { return nil }

func (b *sqliteBackend) notify(context.Context, querier, []Change) error { return nil }

func (b *sqliteBackend) published(changes []Change) {
	sqliteBuses.Lock()
	defer sqliteBuses.Unlock()
	for other := range sqliteBuses.m[b.path] {
		for _, c := range changes {
			other.bus.publish(c)
		}
	}
}

func (b *sqliteBackend) changes(ctx context.Context) (<-chan Change, error) {
	return b.bus.subscribe(ctx)
}
