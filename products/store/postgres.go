package store

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// PostgreSQL backend: pgx v5 with a pgxpool, for several replicas sharing
// one database.
//
// Transactions run at READ COMMITTED; Transition locks the subscription row
// with SELECT ... FOR UPDATE, so concurrent transitions of one subscription
// apply one after the other, each seeing the state the previous one left.
// A transaction the server aborts as a deadlock or serialization failure is
// retried. Migrations take a transaction-scoped advisory lock first, so
// replicas starting together migrate once.
//
// Changes: each transaction that changes something calls pg_notify on the
// store's channel before it commits (PostgreSQL delivers notifications only
// on commit, and never for a rolled-back transaction); the payload is
// "<kind> <id>". Each Store LISTENs on one dedicated connection (outside the
// pool) once Changes is first called, and fans the notifications out to its
// subscribers. When that connection is lost the Store reconnects with
// backoff and then sends ChangeResync, since notifications sent meanwhile
// are gone.
//
// The channel is "sluice_changes" for the public schema and
// "sluice_changes:<schema>" otherwise, so deployments (or tests) in
// different schemas of one database do not hear each other.

const pgMigrationsTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
	version    bigint NOT NULL PRIMARY KEY,
	name       text NOT NULL,
	applied_at timestamptz NOT NULL
)`

const (
	pgTxAttempts     = 5
	pgListenMaxDelay = 5 * time.Second
)

type pgBackend struct {
	pool    *pgxpool.Pool
	channel string
	lockKey int64 // advisory lock of migrations, per schema
	bus     *broadcaster

	ctx    context.Context // ends at close: stops the listener
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu        sync.Mutex // guards listening
	listening bool
}

func openPostgres(ctx context.Context, dsn string) (Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx's parse errors do not repeat the password.
		return nil, fmt.Errorf("%w: PostgreSQL DSN: %v", ErrInvalid, err)
	}
	where := fmt.Sprintf("PostgreSQL %s:%d/%s", cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", where, err)
	}
	var schema *string
	if err := pool.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		pool.Close()
		return nil, fmt.Errorf("store: connect to %s: %w", where, err)
	}
	if schema == nil {
		pool.Close()
		return nil, fmt.Errorf("store: %s: no current schema (does the search_path name an existing schema?)", where)
	}
	bctx, cancel := context.WithCancel(context.Background())
	b := &pgBackend{
		pool:    pool,
		channel: pgChannel(*schema),
		lockKey: pgLockKey(*schema),
		bus:     newBroadcaster(),
		ctx:     bctx,
		cancel:  cancel,
	}
	if err := migrate(ctx, b, "postgres", pgMigrationsTable); err != nil {
		b.close()
		return nil, fmt.Errorf("%w (%s, schema %s)", err, where, *schema)
	}
	return newEngine(b), nil
}

func pgChannel(schema string) string {
	if schema == "public" {
		return "sluice_changes"
	}
	c := "sluice_changes:" + schema
	if len(c) > 63 { // PostgreSQL identifiers are at most 63 bytes
		h := sha256.Sum256([]byte(schema))
		c = "sluice_changes:" + hex.EncodeToString(h[:16])
	}
	return c
}

func pgLockKey(schema string) int64 {
	h := sha256.Sum256([]byte("sluice store migrations " + schema))
	return int64(binary.BigEndian.Uint64(h[:8]))
}

func (b *pgBackend) close() error {
	b.cancel()
	b.wg.Wait()
	b.bus.close()
	b.pool.Close()
	return nil
}

// pgQuerier adapts *pgxpool.Pool and pgx.Tx.
type pgQuerier struct {
	c interface {
		Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
		Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
		QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	}
}

func (q pgQuerier) exec(ctx context.Context, stmt string, args ...any) (int64, error) {
	tag, err := q.c.Exec(ctx, stmt, args...)
	return tag.RowsAffected(), err
}

func (q pgQuerier) query(ctx context.Context, stmt string, args ...any) (rows, error) {
	rs, err := q.c.Query(ctx, stmt, args...)
	if err != nil {
		return nil, err
	}
	return pgRows{rs}, nil
}

func (q pgQuerier) queryRow(ctx context.Context, stmt string, args ...any) row {
	return q.c.QueryRow(ctx, stmt, args...)
}

type pgRows struct{ pgx.Rows }

func (r pgRows) Close() error {
	r.Rows.Close()
	return r.Rows.Err()
}

func (b *pgBackend) exec(ctx context.Context, stmt string, args ...any) (int64, error) {
	return pgQuerier{b.pool}.exec(ctx, stmt, args...)
}

func (b *pgBackend) query(ctx context.Context, stmt string, args ...any) (rows, error) {
	return pgQuerier{b.pool}.query(ctx, stmt, args...)
}

func (b *pgBackend) queryRow(ctx context.Context, stmt string, args ...any) row {
	return pgQuerier{b.pool}.queryRow(ctx, stmt, args...)
}

func (b *pgBackend) tx(ctx context.Context, fn func(q querier) error) error {
	for attempt := 1; ; attempt++ {
		err := pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error { return fn(pgQuerier{tx}) })
		if err == nil || attempt == pgTxAttempts || !pgRetryable(err) {
			return err
		}
	}
}

// pgRetryable: the server aborted the transaction and asks for a retry.
func pgRetryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01") // serialization_failure, deadlock_detected
}

func (b *pgBackend) forUpdate() string { return " FOR UPDATE" }

func (b *pgBackend) ts(t time.Time) any  { return t.UTC() }
func (b *pgBackend) day(t time.Time) any { return utcDay(t) }

func (b *pgBackend) isUnique(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

func (b *pgBackend) lockMigrations(ctx context.Context, q querier) error {
	_, err := q.exec(ctx, `SELECT pg_advisory_xact_lock($1)`, b.lockKey)
	return err
}

func (b *pgBackend) notify(ctx context.Context, q querier, changes []Change) error {
	for _, c := range changes {
		if _, err := q.exec(ctx, `SELECT pg_notify($1, $2)`, b.channel, c.String()); err != nil {
			return fmt.Errorf("notify %s: %w", c, err)
		}
	}
	return nil
}

func (b *pgBackend) published([]Change) {} // the listener hears our own notifications too

func (b *pgBackend) changes(ctx context.Context) (<-chan Change, error) {
	if err := b.listen(ctx); err != nil {
		return nil, err
	}
	return b.bus.subscribe(ctx)
}

// listen starts the listener once: connects, LISTENs, and leaves a
// goroutine (owned by the backend, stopped by close) receiving.
func (b *pgBackend) listen(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.listening {
		return nil
	}
	if b.ctx.Err() != nil {
		return ErrClosed
	}
	conn, err := b.connectListener(ctx)
	if err != nil {
		return fmt.Errorf("store: listen for changes: %w", err)
	}
	b.listening = true
	b.wg.Add(1)
	go b.receive(conn)
	return nil
}

func (b *pgBackend) connectListener(ctx context.Context) (*pgx.Conn, error) {
	conn, err := pgx.ConnectConfig(ctx, b.pool.Config().ConnConfig)
	if err != nil {
		return nil, err
	}
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{b.channel}.Sanitize()); err != nil {
		conn.Close(context.Background())
		return nil, err
	}
	return conn, nil
}

// receive forwards notifications to the broadcaster until the backend
// closes, reconnecting when the connection fails.
func (b *pgBackend) receive(conn *pgx.Conn) {
	defer b.wg.Done()
	defer func() {
		if conn != nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			conn.Close(ctx)
			cancel()
		}
	}()
	for {
		n, err := conn.WaitForNotification(b.ctx)
		if err == nil {
			if n.Channel != b.channel {
				continue
			}
			if c, ok := parseChange(n.Payload); ok {
				b.bus.publish(c)
			}
			continue
		}
		if b.ctx.Err() != nil {
			return
		}
		conn.Close(context.Background())
		conn = nil
		for delay := 100 * time.Millisecond; conn == nil; delay = min(2*delay, pgListenMaxDelay) {
			select {
			case <-b.ctx.Done():
				return
			case <-time.After(delay):
			}
			cctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
			conn, _ = b.connectListener(cctx)
			cancel()
		}
		b.bus.publish(Change{Kind: ChangeResync})
	}
}
