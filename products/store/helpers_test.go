package store

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluicehq/sluice/products/store/storetest"
)

// The store tests run against SQLite always and against PostgreSQL when
// SLUICE_TEST_POSTGRES_DSN names a server (deploy/postgres/start.sh starts
// one; deploy/test.sh does it for the suite). Each PostgreSQL test gets a
// fresh schema (search_path in its DSN), dropped at cleanup.
const pgEnv = storetest.PostgresEnv

// forEachBackend runs fn as a subtest per backend, each with a fresh,
// empty database.
func forEachBackend(t *testing.T, fn func(t *testing.T, dsn string)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) { fn(t, newSQLiteDSN(t)) })
	t.Run("postgres", func(t *testing.T) {
		base := os.Getenv(pgEnv)
		if base == "" {
			t.Skip(pgEnv + " not set (deploy/postgres/start.sh prints one)")
		}
		fn(t, newPostgresDSN(t, base))
	})
}

func newSQLiteDSN(t *testing.T) string {
	return "sqlite:" + filepath.Join(t.TempDir(), "sluice.db")
}

func newPostgresDSN(t *testing.T, base string) string { return storetest.PostgresDSN(t, base) }

// openStore opens dsn and closes it at cleanup.
func openStore(t *testing.T, dsn string) *engine {
	t.Helper()
	s, err := Open(t.Context(), dsn)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s.(*engine)
}

// rawRows reads a query's rows with every column as text (test inspection
// of what is really stored).
func rawRows(t *testing.T, e *engine, stmt string) [][]string {
	t.Helper()
	rs, err := e.b.query(t.Context(), stmt)
	if err != nil {
		t.Fatalf("%s: %v", stmt, err)
	}
	defer rs.Close()
	var out [][]string
	for rs.Next() {
		var a, b, c string
		if err := rs.Scan(&a, &b, &c); err != nil {
			t.Fatal(err)
		}
		out = append(out, []string{a, b, c})
	}
	if err := rs.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// rawExec runs a statement on the database directly (test set-up of
// states the API cannot reach).
func rawExec(t *testing.T, e *engine, stmt string, args ...any) {
	t.Helper()
	if err := e.b.tx(t.Context(), func(q querier) error {
		_, err := q.exec(t.Context(), stmt, args...)
		return err
	}); err != nil {
		t.Fatalf("%s: %v", stmt, err)
	}
}

// seedBasics creates partners p1 and p2 and plans basic (default) and big.
func seedBasics(t *testing.T, s Store) {
	t.Helper()
	ctx := t.Context()
	for _, p := range []Partner{
		{ID: "mvno-a", Name: "MVNO A", Type: "mvno", Attributes: map[string]any{"mvno_id": "mvno-a"}},
		{ID: "iot-fleet", Name: "IoT Fleet", Type: "iot", Attributes: map[string]any{"platform": "iot-fleet"}},
	} {
		if err := s.UpsertPartner(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []Plan{testPlan("basic", true), testPlan("big", false)} {
		if err := s.UpsertPlan(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
}

func testPlan(id string, def bool) Plan {
	return Plan{ID: id, Name: "Plan " + id, RecordsPerSecond: 100, BytesPerSecond: 1 << 20, ConcurrentStreams: 5,
		MonthlyRecordQuota: 1_000_000, ReplayWindow: time.Hour, Formats: []string{FormatJSON, FormatSSE}, Default: def}
}

// recv waits up to d for a change matching want, skipping others.
func recv(t *testing.T, ch <-chan Change, want Change, d time.Duration) {
	t.Helper()
	timeout := time.After(d)
	for {
		select {
		case c, ok := <-ch:
			if !ok {
				t.Fatalf("change feed closed before %v arrived", want)
			}
			if c == want {
				return
			}
		case <-timeout:
			t.Fatalf("no %v within %v", want, d)
		}
	}
}

// closedWithin waits up to d for ch to be closed (draining it).
func closedWithin(t *testing.T, ch <-chan Change, d time.Duration) {
	t.Helper()
	timeout := time.After(d)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-timeout:
			t.Fatalf("change feed not closed within %v", d)
		}
	}
}
