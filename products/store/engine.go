package store

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sluicehq/sluice/products"
)

// The two backends share one implementation (this file): the SQL is
// portable between SQLite >= 3.39 and PostgreSQL ($n placeholders, ON
// CONFLICT upserts, partial unique indexes). What differs (how time values
// are bound, row locks, uniqueness errors, migrations' locking, change
// notification) is behind backend.

// querier runs statements, inside or outside a transaction.
type querier interface {
	exec(ctx context.Context, q string, args ...any) (rowsAffected int64, err error)
	query(ctx context.Context, q string, args ...any) (rows, error)
	queryRow(ctx context.Context, q string, args ...any) row
}

type rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close() error
}

type row interface {
	Scan(dest ...any) error
}

type backend interface {
	querier // reads outside a transaction
	// tx runs fn in one read-write transaction and commits it; fn may be
	// run again when the database asks for a retry.
	tx(ctx context.Context, fn func(q querier) error) error
	// forUpdate is appended to a SELECT that reads a row the transaction
	// will update (" FOR UPDATE", or "" where the transaction already holds
	// the write lock).
	forUpdate() string
	// ts and day convert a time or a UTC day into a query argument.
	ts(t time.Time) any
	day(t time.Time) any
	// isUnique reports whether err is a unique-constraint violation.
	isUnique(err error) bool
	// lockMigrations serialises migrating processes inside the migration
	// transaction.
	lockMigrations(ctx context.Context, q querier) error
	// notify is called inside a transaction, before commit, with the changes
	// it made; published after the commit.
	notify(ctx context.Context, q querier, changes []Change) error
	published(changes []Change)
	changes(ctx context.Context) (<-chan Change, error)
	close() error
}

// engine implements Store over a backend.
type engine struct {
	b      backend
	now    func() time.Time // tests replace it
	closed atomic.Bool
}

func newEngine(b backend) *engine {
	return &engine{b: b, now: time.Now}
}

// clock returns the current time as the store keeps it: UTC, microseconds.
func (e *engine) clock() time.Time { return e.now().UTC().Truncate(time.Microsecond) }

// txn is a transaction that records the changes it makes.
type txn struct {
	querier
	changes []Change
}

func (t *txn) changed(kind ChangeKind, id string) {
	c := Change{Kind: kind, ID: id}
	if !slices.Contains(t.changes, c) {
		t.changes = append(t.changes, c)
	}
}

// inTx runs fn in a transaction; the changes fn records are notified in the
// transaction and published after it commits.
func (e *engine) inTx(ctx context.Context, fn func(t *txn) error) error {
	if e.closed.Load() {
		return ErrClosed
	}
	var changes []Change
	err := e.b.tx(ctx, func(q querier) error {
		t := &txn{querier: q}
		if err := fn(t); err != nil {
			return err
		}
		changes = t.changes
		if len(changes) == 0 {
			return nil
		}
		return e.b.notify(ctx, q, changes)
	})
	if err != nil {
		return err
	}
	if len(changes) > 0 {
		e.b.published(changes)
	}
	return nil
}

// read returns the querier for reads outside a transaction.
func (e *engine) read() (querier, error) {
	if e.closed.Load() {
		return nil, ErrClosed
	}
	return e.b, nil
}

// dbErr wraps a database failure with what was being done.
func dbErr(what string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, ErrNotFound) || errors.Is(err, ErrInvalid) || errors.Is(err, ErrConflict) ||
		errors.Is(err, ErrIllegalTransition) || errors.Is(err, ErrClosed) || isKeyErr(err) {
		return err
	}
	return fmt.Errorf("store: %s: %w", what, err)
}

func isKeyErr(err error) bool {
	return errors.Is(err, ErrKeyMalformed) || errors.Is(err, ErrKeyNotFound) ||
		errors.Is(err, ErrKeyExpired) || errors.Is(err, ErrKeyRevoked)
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}

func checkID(what, id string) error {
	if !idPattern.MatchString(id) {
		return invalid("%s %q (want ^[a-z][a-z0-9-]{1,62}$)", what, id)
	}
	return nil
}

func checkText(what, s string, required bool, max int) error {
	if required && strings.TrimSpace(s) == "" {
		return invalid("%s is required", what)
	}
	if len(s) > max {
		return invalid("%s is %d bytes long, at most %d allowed", what, len(s), max)
	}
	return nil
}

// timeScan scans a timestamp or date column (time.Time from PostgreSQL,
// text from SQLite, NULL as the zero time) into *t, in UTC.
type timeScan struct{ t *time.Time }

func (s timeScan) Scan(v any) error {
	switch v := v.(type) {
	case nil:
		*s.t = time.Time{}
		return nil
	case time.Time:
		*s.t = v.UTC()
		return nil
	case []byte:
		return s.parse(string(v))
	case string:
		return s.parse(v)
	}
	return fmt.Errorf("store: cannot scan %T into a time", v)
}

func (s timeScan) parse(v string) error {
	layout := time.RFC3339Nano
	if len(v) == len(time.DateOnly) {
		layout = time.DateOnly
	}
	t, err := time.Parse(layout, v)
	if err != nil {
		return fmt.Errorf("store: bad stored time %q: %w", v, err)
	}
	*s.t = t.UTC()
	return nil
}

// utcDay returns midnight UTC of t's UTC day.
func utcDay(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// ------------------------------------------------------------- partners

func (e *engine) UpsertPartner(ctx context.Context, p Partner) error {
	if err := checkID("partner id", p.ID); err != nil {
		return err
	}
	if err := checkText("partner "+p.ID+" name", p.Name, true, 200); err != nil {
		return err
	}
	if !p.Type.Valid() {
		return invalid("partner %s: type %q (want mvno, iot, enterprise, internal or regulator)", p.ID, p.Type)
	}
	attrs, err := encodeAttributes(p.Attributes)
	if err != nil {
		return invalid("partner %s attributes: %v", p.ID, err)
	}
	return dbErr("upsert partner "+p.ID, e.inTx(ctx, func(t *txn) error {
		now := e.b.ts(e.clock())
		n, err := t.exec(ctx, `INSERT INTO partners (id, name, type, attributes, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, $5)
			ON CONFLICT (id) DO UPDATE SET name = excluded.name, type = excluded.type,
				attributes = excluded.attributes, updated_at = excluded.updated_at
			WHERE partners.name <> excluded.name OR partners.type <> excluded.type
				OR partners.attributes <> excluded.attributes`,
			p.ID, p.Name, string(p.Type), attrs, now)
		if err != nil {
			return err
		}
		if n > 0 {
			t.changed(ChangePartner, p.ID)
		}
		return nil
	}))
}

const partnerCols = `id, name, type, attributes, created_at, updated_at`

func scanPartner(r row) (Partner, error) {
	var p Partner
	var typ, attrs string
	if err := r.Scan(&p.ID, &p.Name, &typ, &attrs, timeScan{&p.CreatedAt}, timeScan{&p.UpdatedAt}); err != nil {
		return Partner{}, err
	}
	p.Type = products.PartnerType(typ)
	var err error
	if p.Attributes, err = decodeAttributes(attrs); err != nil {
		return Partner{}, fmt.Errorf("partner %s attributes: %w", p.ID, err)
	}
	return p, nil
}

func (e *engine) Partner(ctx context.Context, id string) (Partner, error) {
	q, err := e.read()
	if err != nil {
		return Partner{}, err
	}
	p, err := scanPartner(q.queryRow(ctx, `SELECT `+partnerCols+` FROM partners WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Partner{}, fmt.Errorf("%w: partner %q", ErrNotFound, id)
	}
	return p, dbErr("read partner "+id, err)
}

func (e *engine) Partners(ctx context.Context) ([]Partner, error) {
	q, err := e.read()
	if err != nil {
		return nil, err
	}
	list, err := collect(ctx, q, scanPartner, `SELECT `+partnerCols+` FROM partners`)
	slices.SortFunc(list, func(a, b Partner) int { return strings.Compare(a.ID, b.ID) })
	return list, dbErr("list partners", err)
}

// encodeAttributes renders attributes as canonical JSON (sorted keys), so
// equal attributes are equal text.
func encodeAttributes(attrs map[string]any) (string, error) {
	if attrs == nil {
		return "{}", nil
	}
	if err := checkAttr(attrs, 0); err != nil {
		return "", err
	}
	b, err := json.Marshal(attrs)
	return string(b), err
}

func checkAttr(v any, depth int) error {
	if depth > 8 {
		return errors.New("nested deeper than 8 levels")
	}
	switch v := v.(type) {
	case string, bool, int, int64, float64:
		return nil
	case []any:
		for _, x := range v {
			if err := checkAttr(x, depth+1); err != nil {
				return err
			}
		}
		return nil
	case map[string]any:
		for _, x := range v {
			if err := checkAttr(x, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("unsupported value type %T (want string, int64, float64, bool, list or map)", v)
}

// decodeAttributes is the inverse of encodeAttributes: integers come back as
// int64, other numbers as float64 (the types package products loads).
func decodeAttributes(s string) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader([]byte(s)))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	if m == nil {
		m = map[string]any{}
	}
	return fixNumbers(m).(map[string]any), nil
}

func fixNumbers(v any) any {
	switch v := v.(type) {
	case json.Number:
		if i, err := strconv.ParseInt(string(v), 10, 64); err == nil {
			return i
		}
		f, _ := v.Float64()
		return f
	case []any:
		for i := range v {
			v[i] = fixNumbers(v[i])
		}
	case map[string]any:
		for k := range v {
			v[k] = fixNumbers(v[k])
		}
	}
	return v
}

// ------------------------------------------------------------- keys

func (e *engine) CreateKey(ctx context.Context, partnerID string, ttl time.Duration) (KeyInfo, string, error) {
	if err := checkID("partner id", partnerID); err != nil {
		return KeyInfo{}, "", err
	}
	if ttl <= 0 {
		return KeyInfo{}, "", invalid("key lifetime %v must be > 0", ttl)
	}
	id, presented := newKey()
	now := e.clock()
	k := KeyInfo{ID: id, PartnerID: partnerID, CreatedAt: now, ExpiresAt: now.Add(ttl).Truncate(time.Microsecond)}
	sc, err := newScramCredential(presented[len(keyPrefix)+keyIDLen+1:]) // a few ms: outside the transaction
	if err != nil {
		return KeyInfo{}, "", err
	}
	err = e.inTx(ctx, func(t *txn) error {
		if err := mustExist(ctx, t, "partner", `SELECT 1 FROM partners WHERE id = $1`, partnerID); err != nil {
			return err
		}
		if _, err := t.exec(ctx, `INSERT INTO api_keys (id, partner_id, hash, created_at, expires_at,
				scram_salt, scram_iterations, scram_stored_key, scram_server_key)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
			k.ID, k.PartnerID, hashKey(presented), e.b.ts(k.CreatedAt), e.b.ts(k.ExpiresAt),
			sc.Salt, sc.Iterations, sc.StoredKey, sc.ServerKey); err != nil {
			return err
		}
		t.changed(ChangeKey, k.ID)
		return nil
	})
	if err != nil {
		return KeyInfo{}, "", dbErr("create key for partner "+partnerID, err)
	}
	return k, presented, nil
}

const keyCols = `id, partner_id, created_at, expires_at, revoked_at, COALESCE(revoked_by, '')`

func scanKey(r row, extra ...any) (KeyInfo, error) {
	var k KeyInfo
	dest := append([]any{&k.ID, &k.PartnerID, timeScan{&k.CreatedAt}, timeScan{&k.ExpiresAt},
		timeScan{&k.RevokedAt}, &k.RevokedBy}, extra...)
	if err := r.Scan(dest...); err != nil {
		return KeyInfo{}, err
	}
	return k, nil
}

func (e *engine) VerifyKey(ctx context.Context, presented string) (KeyInfo, error) {
	id, ok := parseKey(presented)
	if !ok {
		// Never echo the presented value: it may be a real secret with a typo.
		return KeyInfo{}, fmt.Errorf("%w (want slk_<id>_<secret>, %d characters)", ErrKeyMalformed, keyLen)
	}
	q, err := e.read()
	if err != nil {
		return KeyInfo{}, err
	}
	var stored []byte
	k, err := scanKey(q.queryRow(ctx, `SELECT `+keyCols+`, hash FROM api_keys WHERE id = $1`, id), &stored)
	if errors.Is(err, sql.ErrNoRows) {
		return KeyInfo{}, fmt.Errorf("%w: no key slk_%s", ErrKeyNotFound, id)
	}
	if err != nil {
		return KeyInfo{}, dbErr("verify key slk_"+id, err)
	}
	// The hash check comes first: only the key's holder learns whether it
	// is revoked or expired.
	if subtle.ConstantTimeCompare(hashKey(presented), stored) != 1 {
		return KeyInfo{}, fmt.Errorf("%w: no key slk_%s", ErrKeyNotFound, id)
	}
	if err := k.Check(e.clock()); err != nil {
		return KeyInfo{}, err
	}
	return k, nil
}

func (e *engine) ScramKey(ctx context.Context, id string) (KeyInfo, ScramCredential, error) {
	q, err := e.read()
	if err != nil {
		return KeyInfo{}, ScramCredential{}, err
	}
	var sc ScramCredential
	var iterations sql.NullInt64
	k, err := scanKey(q.queryRow(ctx, `SELECT `+keyCols+`, scram_salt, scram_iterations, scram_stored_key, scram_server_key
		FROM api_keys WHERE id = $1`, id), &sc.Salt, &iterations, &sc.StoredKey, &sc.ServerKey)
	if errors.Is(err, sql.ErrNoRows) {
		return KeyInfo{}, ScramCredential{}, fmt.Errorf("%w: no key slk_%s", ErrKeyNotFound, id)
	}
	if err != nil {
		return KeyInfo{}, ScramCredential{}, dbErr("read key slk_"+id, err)
	}
	if !iterations.Valid || len(sc.Salt) == 0 || len(sc.StoredKey) == 0 || len(sc.ServerKey) == 0 {
		return KeyInfo{}, ScramCredential{}, fmt.Errorf("%w: key slk_%s was created before SCRAM credentials were kept; create a new key, or log in with PLAIN", ErrKeyNoScram, id)
	}
	sc.Iterations = int(iterations.Int64)
	return k, sc, nil
}

func (e *engine) Keys(ctx context.Context, partnerID string) ([]KeyInfo, error) {
	q, err := e.read()
	if err != nil {
		return nil, err
	}
	list, err := collect(ctx, q, func(r row) (KeyInfo, error) { return scanKey(r) },
		`SELECT `+keyCols+` FROM api_keys WHERE partner_id = $1 ORDER BY created_at, id`, partnerID)
	return list, dbErr("list keys of partner "+partnerID, err)
}

func (e *engine) RevokeKey(ctx context.Context, partnerID, keyID, actor string) error {
	if err := checkText("actor", actor, true, 200); err != nil {
		return err
	}
	return dbErr("revoke key "+keyID, e.inTx(ctx, func(t *txn) error {
		n, err := t.exec(ctx, `UPDATE api_keys SET revoked_at = $3, revoked_by = $4
			WHERE id = $1 AND partner_id = $2 AND revoked_at IS NULL`,
			keyID, partnerID, e.b.ts(e.clock()), actor)
		if err != nil {
			return err
		}
		if n > 0 {
			t.changed(ChangeKey, keyID)
			return nil
		}
		err = mustExist(ctx, t, "key", `SELECT 1 FROM api_keys WHERE id = $1 AND partner_id = $2`, keyID, partnerID)
		if errors.Is(err, ErrNotFound) {
			return fmt.Errorf("%w: partner %q has no key %q", ErrKeyNotFound, partnerID, keyID)
		}
		return err // nil: already revoked
	}))
}

// ------------------------------------------------------------- plans

var knownFormats = []string{FormatJSON, FormatNDJSON, FormatSSE, FormatKafka}

func checkPlan(p Plan) error {
	if err := checkID("plan id", p.ID); err != nil {
		return err
	}
	if err := checkText("plan "+p.ID+" name", p.Name, true, 200); err != nil {
		return err
	}
	for _, c := range []struct {
		field string
		v     int64
	}{
		{"records_per_second", p.RecordsPerSecond},
		{"bytes_per_second", p.BytesPerSecond},
		{"concurrent_streams", int64(p.ConcurrentStreams)},
		{"monthly_record_quota", p.MonthlyRecordQuota},
	} {
		if c.v <= 0 {
			return invalid("plan %s: %s %d must be > 0", p.ID, c.field, c.v)
		}
	}
	if p.ReplayWindow < 0 || p.ReplayWindow%time.Second != 0 {
		return invalid("plan %s: replay window %v must be >= 0 and whole seconds", p.ID, p.ReplayWindow)
	}
	if len(p.Formats) == 0 {
		return invalid("plan %s: formats is empty (want some of %s)", p.ID, strings.Join(knownFormats, ", "))
	}
	for i, f := range p.Formats {
		if !slices.Contains(knownFormats, f) {
			return invalid("plan %s: unknown format %q (want %s)", p.ID, f, strings.Join(knownFormats, ", "))
		}
		if slices.Contains(p.Formats[:i], f) {
			return invalid("plan %s: format %q listed twice", p.ID, f)
		}
	}
	return nil
}

func (e *engine) UpsertPlan(ctx context.Context, p Plan) error {
	if err := checkPlan(p); err != nil {
		return err
	}
	formats, _ := json.Marshal(p.Formats)
	return dbErr("upsert plan "+p.ID, e.inTx(ctx, func(t *txn) error {
		now := e.b.ts(e.clock())
		if p.Default {
			others, err := collect(ctx, t, scanString, `SELECT id FROM plans WHERE is_default = $1 AND id <> $2`, true, p.ID)
			if err != nil {
				return err
			}
			for _, id := range others {
				if _, err := t.exec(ctx, `UPDATE plans SET is_default = $2, updated_at = $3 WHERE id = $1`, id, false, now); err != nil {
					return err
				}
				t.changed(ChangePlan, id)
			}
		}
		n, err := t.exec(ctx, `INSERT INTO plans (id, name, records_per_second, bytes_per_second,
				concurrent_streams, monthly_record_quota, replay_window_seconds, formats, is_default,
				created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)
			ON CONFLICT (id) DO UPDATE SET name = excluded.name,
				records_per_second = excluded.records_per_second, bytes_per_second = excluded.bytes_per_second,
				concurrent_streams = excluded.concurrent_streams, monthly_record_quota = excluded.monthly_record_quota,
				replay_window_seconds = excluded.replay_window_seconds, formats = excluded.formats,
				is_default = excluded.is_default, updated_at = excluded.updated_at
			WHERE plans.name <> excluded.name
				OR plans.records_per_second <> excluded.records_per_second
				OR plans.bytes_per_second <> excluded.bytes_per_second
				OR plans.concurrent_streams <> excluded.concurrent_streams
				OR plans.monthly_record_quota <> excluded.monthly_record_quota
				OR plans.replay_window_seconds <> excluded.replay_window_seconds
				OR plans.formats <> excluded.formats
				OR plans.is_default <> excluded.is_default`,
			p.ID, p.Name, p.RecordsPerSecond, p.BytesPerSecond, int64(p.ConcurrentStreams), p.MonthlyRecordQuota,
			int64(p.ReplayWindow/time.Second), string(formats), p.Default, now)
		if err != nil {
			return err
		}
		if n > 0 {
			t.changed(ChangePlan, p.ID)
		}
		return nil
	}))
}

const planCols = `id, name, records_per_second, bytes_per_second, concurrent_streams, monthly_record_quota,
	replay_window_seconds, formats, is_default, created_at, updated_at`

func scanPlan(r row) (Plan, error) {
	var p Plan
	var streams, replay int64
	var formats string
	if err := r.Scan(&p.ID, &p.Name, &p.RecordsPerSecond, &p.BytesPerSecond, &streams, &p.MonthlyRecordQuota,
		&replay, &formats, &p.Default, timeScan{&p.CreatedAt}, timeScan{&p.UpdatedAt}); err != nil {
		return Plan{}, err
	}
	p.ConcurrentStreams = int(streams)
	p.ReplayWindow = time.Duration(replay) * time.Second
	if err := json.Unmarshal([]byte(formats), &p.Formats); err != nil {
		return Plan{}, fmt.Errorf("plan %s formats: %w", p.ID, err)
	}
	return p, nil
}

func (e *engine) Plan(ctx context.Context, id string) (Plan, error) {
	q, err := e.read()
	if err != nil {
		return Plan{}, err
	}
	p, err := scanPlan(q.queryRow(ctx, `SELECT `+planCols+` FROM plans WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Plan{}, fmt.Errorf("%w: plan %q", ErrNotFound, id)
	}
	return p, dbErr("read plan "+id, err)
}

func (e *engine) Plans(ctx context.Context) ([]Plan, error) {
	q, err := e.read()
	if err != nil {
		return nil, err
	}
	list, err := collect(ctx, q, scanPlan, `SELECT `+planCols+` FROM plans`)
	slices.SortFunc(list, func(a, b Plan) int { return strings.Compare(a.ID, b.ID) })
	return list, dbErr("list plans", err)
}

// ------------------------------------------------------------- subscriptions

const subCols = `id, partner_id, product, purpose, plan_id, state, created_at, updated_at, kafka_format`

func scanSub(r row) (Subscription, error) {
	var s Subscription
	var state string
	if err := r.Scan(&s.ID, &s.PartnerID, &s.Product, &s.Purpose, &s.PlanID, &state,
		timeScan{&s.CreatedAt}, timeScan{&s.UpdatedAt}, &s.KafkaFormat); err != nil {
		return Subscription{}, err
	}
	s.State = State(state)
	return s, nil
}

func (e *engine) CreateSubscription(ctx context.Context, partnerID, product, purpose, planID, actor string, opts ...SubscriptionOption) (Subscription, error) {
	if err := checkID("partner id", partnerID); err != nil {
		return Subscription{}, err
	}
	if err := checkID("product id", product); err != nil {
		return Subscription{}, err
	}
	if !products.ValidPurpose(purpose) {
		return Subscription{}, invalid("purpose %q (want billing, fraud-prevention, network-analytics, marketing or regulatory)", purpose)
	}
	if planID != "" {
		if err := checkID("plan id", planID); err != nil {
			return Subscription{}, err
		}
	}
	if err := checkText("actor", actor, true, 200); err != nil {
		return Subscription{}, err
	}
	now := e.clock()
	s := Subscription{ID: newID("sub_"), PartnerID: partnerID, Product: product, Purpose: purpose,
		PlanID: planID, State: StateRequested, KafkaFormat: KafkaFormatJSON, CreatedAt: now, UpdatedAt: now}
	for _, o := range opts {
		o(&s)
	}
	if !ValidKafkaFormat(s.KafkaFormat) {
		return Subscription{}, invalid("kafka format %q (want json or avro)", s.KafkaFormat)
	}
	err := e.inTx(ctx, func(t *txn) error {
		if err := mustExist(ctx, t, "partner", `SELECT 1 FROM partners WHERE id = $1`, partnerID); err != nil {
			return err
		}
		if s.PlanID == "" {
			err := t.queryRow(ctx, `SELECT id FROM plans WHERE is_default = $1`, true).Scan(&s.PlanID)
			if errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("%w: no plan given and no default plan", ErrNotFound)
			}
			if err != nil {
				return err
			}
		} else if err := mustExist(ctx, t, "plan", `SELECT 1 FROM plans WHERE id = $1`, s.PlanID); err != nil {
			return err
		}
		var open string
		err := t.queryRow(ctx, `SELECT id FROM subscriptions
			WHERE partner_id = $1 AND product = $2 AND purpose = $3 AND state NOT IN ('rejected', 'revoked')`,
			partnerID, product, purpose).Scan(&open)
		if err == nil {
			return fmt.Errorf("%w: partner %s already holds subscription %s for %s (%s)", ErrConflict, partnerID, open, product, purpose)
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		ts := e.b.ts(now)
		if _, err := t.exec(ctx, `INSERT INTO subscriptions (`+subCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8)`,
			s.ID, s.PartnerID, s.Product, s.Purpose, s.PlanID, string(s.State), ts, s.KafkaFormat); err != nil {
			if e.b.isUnique(err) { // a concurrent request won the race
				return fmt.Errorf("%w: partner %s already holds a subscription for %s (%s)", ErrConflict, partnerID, product, purpose)
			}
			return err
		}
		if err := insertHistory(ctx, t, s.ID, step{ActionRequest, "", StateRequested}, actor, "", ts); err != nil {
			return err
		}
		t.changed(ChangeSubscription, s.ID)
		return nil
	})
	if err != nil {
		return Subscription{}, dbErr("create subscription", err)
	}
	return s, nil
}

func insertHistory(ctx context.Context, q querier, subID string, st step, actor, reason string, at any) error {
	_, err := q.exec(ctx, `INSERT INTO subscription_history (subscription_id, action, from_state, to_state, actor, reason, at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`, subID, string(st.action), string(st.from), string(st.to), actor, reason, at)
	return err
}

// reasonRequired: the actions that withdraw or refuse access must say why.
var reasonRequired = []Action{ActionReject, ActionSuspend, ActionRevoke}

func (e *engine) Transition(ctx context.Context, subID string, action Action, actor, reason string) (Subscription, error) {
	if !action.Valid() {
		return Subscription{}, invalid("action %q (want approve, reject, activate, suspend, resume or revoke)", action)
	}
	if err := checkText("actor", actor, true, 200); err != nil {
		return Subscription{}, err
	}
	if err := checkText("reason for "+string(action), reason, slices.Contains(reasonRequired, action), 2000); err != nil {
		return Subscription{}, err
	}
	var s Subscription
	err := e.inTx(ctx, func(t *txn) error {
		var err error
		s, err = e.lockSubscription(ctx, t, subID)
		if err != nil {
			return err
		}
		steps, ok := plan(s.State, action)
		if !ok {
			return &TransitionError{SubscriptionID: subID, From: s.State, Action: action}
		}
		now := e.clock()
		ts := e.b.ts(now)
		for _, st := range steps {
			if err := insertHistory(ctx, t, subID, st, actor, reason, ts); err != nil {
				return err
			}
		}
		s.State, s.UpdatedAt = steps[len(steps)-1].to, now
		if _, err := t.exec(ctx, `UPDATE subscriptions SET state = $2, updated_at = $3 WHERE id = $1`,
			subID, string(s.State), ts); err != nil {
			return err
		}
		t.changed(ChangeSubscription, subID)
		return nil
	})
	if err != nil {
		return Subscription{}, dbErr("transition subscription "+subID, err)
	}
	return s, nil
}

func (e *engine) Subscription(ctx context.Context, id string) (Subscription, error) {
	q, err := e.read()
	if err != nil {
		return Subscription{}, err
	}
	s, err := scanSub(q.queryRow(ctx, `SELECT `+subCols+` FROM subscriptions WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Subscription{}, fmt.Errorf("%w: subscription %q", ErrNotFound, id)
	}
	return s, dbErr("read subscription "+id, err)
}

func (e *engine) Subscriptions(ctx context.Context, f Filter) ([]Subscription, error) {
	q, err := e.read()
	if err != nil {
		return nil, err
	}
	var where []string
	var args []any
	for _, c := range []struct{ col, v string }{
		{"partner_id", f.PartnerID}, {"product", f.Product}, {"state", string(f.State)},
	} {
		if c.v != "" {
			args = append(args, c.v)
			where = append(where, fmt.Sprintf("%s = $%d", c.col, len(args)))
		}
	}
	stmt := `SELECT ` + subCols + ` FROM subscriptions`
	if len(where) > 0 {
		stmt += ` WHERE ` + strings.Join(where, " AND ")
	}
	list, err := collect(ctx, q, scanSub, stmt+` ORDER BY created_at, id`, args...)
	return list, dbErr("list subscriptions", err)
}

func (e *engine) History(ctx context.Context, subID string) ([]TransitionRecord, error) {
	q, err := e.read()
	if err != nil {
		return nil, err
	}
	list, err := collect(ctx, q, func(r row) (TransitionRecord, error) {
		var h TransitionRecord
		var action, from, to string
		err := r.Scan(&h.SubscriptionID, &action, &from, &to, &h.Actor, &h.Reason, timeScan{&h.At})
		h.Action, h.From, h.To = Action(action), State(from), State(to)
		return h, err
	}, `SELECT subscription_id, action, from_state, to_state, actor, reason, at
		FROM subscription_history WHERE subscription_id = $1 ORDER BY seq`, subID)
	if err != nil {
		return nil, dbErr("read history of subscription "+subID, err)
	}
	if len(list) == 0 { // every subscription has its request in history
		return nil, fmt.Errorf("%w: subscription %q", ErrNotFound, subID)
	}
	return list, nil
}

// ------------------------------------------------------------- usage

type usageKey struct {
	day                       time.Time
	partner, product, purpose string
}

func (e *engine) AddUsage(ctx context.Context, deltas []UsageDelta) error {
	// Merge the batch per row and apply it in one order: two concurrent
	// batches then lock rows in the same order and cannot deadlock.
	sum := map[usageKey]*UsageDelta{}
	for i, d := range deltas {
		if err := checkID(fmt.Sprintf("usage[%d] partner id", i), d.PartnerID); err != nil {
			return err
		}
		if err := checkID(fmt.Sprintf("usage[%d] product id", i), d.Product); err != nil {
			return err
		}
		if err := checkText(fmt.Sprintf("usage[%d] purpose", i), d.Purpose, true, 63); err != nil {
			return err
		}
		if d.Day.IsZero() {
			return invalid("usage[%d] day is missing", i)
		}
		if d.Records < 0 || d.Bytes < 0 {
			return invalid("usage[%d] records %d and bytes %d must be >= 0", i, d.Records, d.Bytes)
		}
		if d.Records == 0 && d.Bytes == 0 {
			continue
		}
		k := usageKey{utcDay(d.Day), d.PartnerID, d.Product, d.Purpose}
		if s, ok := sum[k]; ok {
			s.Records += d.Records
			s.Bytes += d.Bytes
		} else {
			d.Day = k.day
			sum[k] = &d
		}
	}
	if len(sum) == 0 {
		return nil
	}
	keys := make([]usageKey, 0, len(sum))
	for k := range sum {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b usageKey) int {
		return cmp.Or(a.day.Compare(b.day), strings.Compare(a.partner, b.partner),
			strings.Compare(a.product, b.product), strings.Compare(a.purpose, b.purpose))
	})
	return dbErr("add usage", e.inTx(ctx, func(t *txn) error {
		for _, k := range keys {
			d := sum[k]
			if _, err := t.exec(ctx, `INSERT INTO usage_daily (day, partner_id, product, purpose, records, bytes)
				VALUES ($1, $2, $3, $4, $5, $6)
				ON CONFLICT (day, partner_id, product, purpose) DO UPDATE
				SET records = usage_daily.records + excluded.records, bytes = usage_daily.bytes + excluded.bytes`,
				e.b.day(k.day), k.partner, k.product, k.purpose, d.Records, d.Bytes); err != nil {
				return err
			}
		}
		return nil
	}))
}

func (e *engine) Usage(ctx context.Context, f UsageFilter) ([]UsageRow, error) {
	q, err := e.read()
	if err != nil {
		return nil, err
	}
	var where []string
	var args []any
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, fmt.Sprintf(cond, len(args)))
	}
	if !f.From.IsZero() {
		add("day >= $%d", e.b.day(utcDay(f.From)))
	}
	if !f.To.IsZero() {
		end := utcDay(f.To)
		if !end.Equal(f.To) {
			end = end.AddDate(0, 0, 1)
		}
		add("day < $%d", e.b.day(end))
	}
	if f.PartnerID != "" {
		add("partner_id = $%d", f.PartnerID)
	}
	if f.Product != "" {
		add("product = $%d", f.Product)
	}
	stmt := `SELECT day, partner_id, product, purpose, records, bytes FROM usage_daily`
	if len(where) > 0 {
		stmt += ` WHERE ` + strings.Join(where, " AND ")
	}
	list, err := collect(ctx, q, func(r row) (UsageRow, error) {
		var u UsageRow
		err := r.Scan(timeScan{&u.Day}, &u.PartnerID, &u.Product, &u.Purpose, &u.Records, &u.Bytes)
		return u, err
	}, stmt, args...)
	slices.SortFunc(list, func(a, b UsageRow) int {
		return cmp.Or(a.Day.Compare(b.Day), strings.Compare(a.PartnerID, b.PartnerID),
			strings.Compare(a.Product, b.Product), strings.Compare(a.Purpose, b.Purpose))
	})
	return list, dbErr("read usage", err)
}

// ------------------------------------------------------------- changes, close

func (e *engine) Changes(ctx context.Context) (<-chan Change, error) {
	if e.closed.Load() {
		return nil, ErrClosed
	}
	return e.b.changes(ctx)
}

func (e *engine) Close() error {
	if e.closed.Swap(true) {
		return nil
	}
	return e.b.close()
}

// ------------------------------------------------------------- helpers

func collect[T any](ctx context.Context, q querier, scan func(row) (T, error), stmt string, args ...any) ([]T, error) {
	rs, err := q.query(ctx, stmt, args...)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	var out []T
	for rs.Next() {
		v, err := scan(rs)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	if err := rs.Err(); err != nil {
		return nil, err
	}
	return out, rs.Close()
}

func scanString(r row) (string, error) {
	var s string
	err := r.Scan(&s)
	return s, err
}

// mustExist returns ErrNotFound naming what when stmt returns no row.
func mustExist(ctx context.Context, q querier, what, stmt string, args ...any) error {
	var one int64
	err := q.queryRow(ctx, stmt, args...).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%w: %s %q", ErrNotFound, what, args[0])
	}
	return err
}

// ------------------------------------------------------------- quota shares

func (e *engine) ShareQuota(ctx context.Context, replica string, mine []QuotaShare, fresh time.Duration) ([]QuotaShare, error) {
	if err := checkText("replica", replica, true, 200); err != nil {
		return nil, err
	}
	if fresh <= 0 {
		return nil, invalid("fresh %v must be > 0", fresh)
	}
	for i, s := range mine {
		if err := checkID(fmt.Sprintf("share[%d] partner id", i), s.PartnerID); err != nil {
			return nil, err
		}
		if err := checkID(fmt.Sprintf("share[%d] product id", i), s.Product); err != nil {
			return nil, err
		}
		if !(s.Demand >= 0) || s.Streams < 0 || math.IsInf(s.Demand, 0) {
			return nil, invalid("share[%d] demand %v and streams %d must be finite and >= 0", i, s.Demand, s.Streams)
		}
	}
	now := e.clock()
	var out []QuotaShare
	err := e.inTx(ctx, func(t *txn) error {
		// Expired rows of any replica (one that crashed) go; this replica's
		// rows are rewritten whole.
		if _, err := t.exec(ctx, `DELETE FROM quota_shares WHERE replica = $1 OR updated_at < $2`,
			replica, e.b.ts(now.Add(-10*fresh))); err != nil {
			return err
		}
		for _, s := range mine {
			if _, err := t.exec(ctx, `INSERT INTO quota_shares (replica, partner_id, product, demand, streams, updated_at)
				VALUES ($1, $2, $3, $4, $5, $6)
				ON CONFLICT (replica, partner_id, product) DO UPDATE
				SET demand = excluded.demand, streams = excluded.streams, updated_at = excluded.updated_at`,
				replica, s.PartnerID, s.Product, s.Demand, s.Streams, e.b.ts(now)); err != nil {
				return err
			}
		}
		var err error
		out, err = collect(ctx, t, func(r row) (QuotaShare, error) {
			var s QuotaShare
			err := r.Scan(&s.Replica, &s.PartnerID, &s.Product, &s.Demand, &s.Streams, timeScan{&s.UpdatedAt})
			return s, err
		}, `SELECT replica, partner_id, product, demand, streams, updated_at FROM quota_shares
			WHERE updated_at >= $1`, e.b.ts(now.Add(-fresh)))
		return err
	})
	slices.SortFunc(out, func(a, b QuotaShare) int {
		return cmp.Or(strings.Compare(a.PartnerID, b.PartnerID), strings.Compare(a.Product, b.Product),
			strings.Compare(a.Replica, b.Replica))
	})
	return out, dbErr("share quota", err)
}

// ------------------------------------------------------------- kafka nodes

func (e *engine) ShareKafkaNode(ctx context.Context, me KafkaNode, fresh time.Duration) ([]KafkaNode, error) {
	if err := checkText("replica", me.Replica, true, 200); err != nil {
		return nil, err
	}
	if err := checkText("kafka node host", me.Host, true, 255); err != nil {
		return nil, err
	}
	if me.NodeID < 0 || me.Port <= 0 || me.Port > 65535 {
		return nil, invalid("kafka node %d at port %d: want id >= 0 and port 1..65535", me.NodeID, me.Port)
	}
	if fresh <= 0 {
		return nil, invalid("fresh %v must be > 0", fresh)
	}
	now := e.clock()
	var out []KafkaNode
	err := e.inTx(ctx, func(t *txn) error {
		if _, err := t.exec(ctx, `DELETE FROM kafka_nodes WHERE updated_at < $1`, e.b.ts(now.Add(-10*fresh))); err != nil {
			return err
		}
		if _, err := t.exec(ctx, `INSERT INTO kafka_nodes (replica, node_id, host, port, updated_at)
			VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (replica) DO UPDATE
			SET node_id = excluded.node_id, host = excluded.host, port = excluded.port, updated_at = excluded.updated_at`,
			me.Replica, me.NodeID, me.Host, me.Port, e.b.ts(now)); err != nil {
			return err
		}
		var err error
		out, err = collect(ctx, t, func(r row) (KafkaNode, error) {
			var n KafkaNode
			err := r.Scan(&n.Replica, &n.NodeID, &n.Host, &n.Port, timeScan{&n.UpdatedAt})
			return n, err
		}, `SELECT replica, node_id, host, port, updated_at FROM kafka_nodes WHERE updated_at >= $1`, e.b.ts(now.Add(-fresh)))
		return err
	})
	slices.SortFunc(out, func(a, b KafkaNode) int {
		return cmp.Or(cmp.Compare(a.NodeID, b.NodeID), strings.Compare(a.Replica, b.Replica))
	})
	return out, dbErr("share kafka node", err)
}

func (e *engine) DropKafkaNode(ctx context.Context, replica string) error {
	return dbErr("drop kafka node", e.inTx(ctx, func(t *txn) error {
		_, err := t.exec(ctx, `DELETE FROM kafka_nodes WHERE replica = $1`, replica)
		return err
	}))
}

// ------------------------------------------------------------- group offsets

// Limits of GroupOffset and group ids: Kafka's topic name limit, its
// default offset.metadata.max.bytes, and a generous group id bound.
const (
	maxGroupID        = 1024
	maxOffsetTopic    = 249
	maxOffsetMetadata = 4096
)

func (e *engine) CommitOffsets(ctx context.Context, partnerID, group string, offsets []GroupOffset) error {
	if err := checkID("partner id", partnerID); err != nil {
		return err
	}
	if err := checkText("group", group, true, maxGroupID); err != nil {
		return err
	}
	type tp struct {
		topic     string
		partition int32
	}
	seen := make(map[tp]bool, len(offsets))
	for i, o := range offsets {
		if err := checkText(fmt.Sprintf("offsets[%d] topic", i), o.Topic, true, maxOffsetTopic); err != nil {
			return err
		}
		if o.Partition < 0 {
			return invalid("offsets[%d] partition %d must be >= 0", i, o.Partition)
		}
		if len(o.Metadata) > maxOffsetMetadata {
			return invalid("offsets[%d] metadata is %d bytes long, at most %d allowed", i, len(o.Metadata), maxOffsetMetadata)
		}
		k := tp{o.Topic, o.Partition}
		if seen[k] {
			return invalid("offsets[%d]: %s/%d is committed twice in one batch", i, o.Topic, o.Partition)
		}
		seen[k] = true
	}
	if len(offsets) == 0 {
		return nil
	}
	// One row order for every batch: concurrent commits of a group lock
	// rows in the same order and cannot deadlock.
	sorted := slices.Clone(offsets)
	slices.SortFunc(sorted, func(a, b GroupOffset) int {
		return cmp.Or(strings.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
	})
	now := e.clock()
	return dbErr("commit offsets", e.inTx(ctx, func(t *txn) error {
		for _, o := range sorted {
			if _, err := t.exec(ctx, `INSERT INTO group_offsets (partner_id, group_id, topic, kafka_partition, committed_offset, metadata, committed_at)
				VALUES ($1, $2, $3, $4, $5, $6, $7)
				ON CONFLICT (partner_id, group_id, topic, kafka_partition) DO UPDATE
				SET committed_offset = excluded.committed_offset, metadata = excluded.metadata, committed_at = excluded.committed_at`,
				partnerID, group, o.Topic, o.Partition, o.Offset, o.Metadata, e.b.ts(now)); err != nil {
				return err
			}
		}
		return nil
	}))
}

func (e *engine) GroupOffsets(ctx context.Context, partnerID, group string) ([]GroupOffset, error) {
	if err := checkID("partner id", partnerID); err != nil {
		return nil, err
	}
	if err := checkText("group", group, true, maxGroupID); err != nil {
		return nil, err
	}
	q, err := e.read()
	if err != nil {
		return nil, err
	}
	list, err := collect(ctx, q, func(r row) (GroupOffset, error) {
		var o GroupOffset
		err := r.Scan(&o.Topic, &o.Partition, &o.Offset, &o.Metadata, timeScan{&o.CommittedAt})
		return o, err
	}, `SELECT topic, kafka_partition, committed_offset, metadata, committed_at FROM group_offsets
		WHERE partner_id = $1 AND group_id = $2`, partnerID, group)
	// Sorted here: PostgreSQL's ORDER BY on text follows the database's
	// collation, SQLite's compares bytes.
	slices.SortFunc(list, func(a, b GroupOffset) int {
		return cmp.Or(strings.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
	})
	return list, dbErr("read group offsets", err)
}

// ------------------------------------------------------------- kafka format and schemas

// lockSubscription reads a subscription in t, locked against concurrent
// changes until t ends; ErrNotFound when there is none.
func (e *engine) lockSubscription(ctx context.Context, t *txn, subID string) (Subscription, error) {
	s, err := scanSub(t.queryRow(ctx, `SELECT `+subCols+` FROM subscriptions WHERE id = $1`+e.b.forUpdate(), subID))
	if errors.Is(err, sql.ErrNoRows) {
		return Subscription{}, fmt.Errorf("%w: subscription %q", ErrNotFound, subID)
	}
	return s, err
}

func (e *engine) SetKafkaFormat(ctx context.Context, subID, format, actor string) (Subscription, error) {
	if !ValidKafkaFormat(format) {
		return Subscription{}, invalid("kafka format %q (want json or avro)", format)
	}
	if err := checkText("actor", actor, true, 200); err != nil {
		return Subscription{}, err
	}
	var s Subscription
	err := e.inTx(ctx, func(t *txn) error {
		var err error
		s, err = e.lockSubscription(ctx, t, subID)
		if err != nil || s.KafkaFormat == format {
			return err
		}
		now := e.clock()
		ts := e.b.ts(now)
		if err := insertHistory(ctx, t, subID, step{ActionSetKafkaFormat, s.State, s.State}, actor,
			"kafka_format "+s.KafkaFormat+" -> "+format, ts); err != nil {
			return err
		}
		if _, err := t.exec(ctx, `UPDATE subscriptions SET kafka_format = $2, updated_at = $3 WHERE id = $1`,
			subID, format, ts); err != nil {
			return err
		}
		s.KafkaFormat, s.UpdatedAt = format, now
		t.changed(ChangeSubscription, subID)
		return nil
	})
	if err != nil {
		return Subscription{}, dbErr("set kafka format of subscription "+subID, err)
	}
	return s, nil
}

// maxSchemaText bounds a registered schema's text.
const maxSchemaText = 1 << 20

func (e *engine) RegisterSchema(ctx context.Context, schema string) (int, error) {
	if schema == "" || len(schema) > maxSchemaText {
		return 0, invalid("schema text of %d bytes (want 1 to %d)", len(schema), maxSchemaText)
	}
	sum := sha256.Sum256([]byte(schema))
	digest := hex.EncodeToString(sum[:])
	var id int64
	err := e.inTx(ctx, func(t *txn) error {
		// Insert-if-absent, then read: of two replicas registering the same
		// text at once, one inserts and both read its id.
		if _, err := t.exec(ctx, `INSERT INTO registered_schemas (sha256, schema_text, created_at) VALUES ($1, $2, $3)
			ON CONFLICT (sha256) DO NOTHING`, digest, schema, e.b.ts(e.clock())); err != nil {
			return err
		}
		return t.queryRow(ctx, `SELECT id FROM registered_schemas WHERE sha256 = $1`, digest).Scan(&id)
	})
	if err != nil {
		return 0, dbErr("register schema", err)
	}
	return int(id), nil
}

func (e *engine) Schema(ctx context.Context, id int) (string, error) {
	q, err := e.read()
	if err != nil {
		return "", err
	}
	var text string
	err = q.queryRow(ctx, `SELECT schema_text FROM registered_schemas WHERE id = $1`, int64(id)).Scan(&text)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("%w: schema id %d", ErrNotFound, id)
	}
	return text, dbErr(fmt.Sprintf("read schema %d", id), err)
}
