package httpapi

import (
	"context"
	"errors"
	"net/http"
	"time"
)

// Auditor records what the front door delivers in the audit trail, and
// fails closed: a delivery that no persisted audit event covers is not
// made. Access decisions themselves are recorded by the Authorizer. A nil
// Auditor records nothing.
type Auditor interface {
	// Healthy is nil while audit events are being persisted.
	Healthy() error
	// Open records that a stream (or a REST page) of partner is about to
	// deliver product from cursor, and returns its delivery record. It
	// returns only once the open is persisted; an error means nothing may
	// be delivered.
	Open(ctx context.Context, s AuditStream) (Delivery, error)
}

// AuditStream describes a delivery for the audit trail.
type AuditStream struct {
	Door     string // "rest" or "sse"
	Partner  string
	Product  string
	Purpose  string
	Revision string
	Cursor   string // where delivery starts
}

// Delivery is the audit record of one stream's (or page's) deliveries.
type Delivery interface {
	// Cover returns nil when records written now are covered by a
	// persisted audit event (the open, or a delivery summary recent
	// enough); when a summary is due it appends one for what was delivered
	// since the last and waits for it. An error means the audit sink is
	// not persisting: write nothing, keep the position, and retry.
	Cover(ctx context.Context) error
	// Delivered counts records written, and the cursor after them.
	Delivered(records, bytes int, cursor string)
	// Close appends the final summary and the close event (reason: client,
	// shutdown, revoked, reauthenticate, quota, error, page).
	Close(reason string)
}

// ErrAuditUnavailable: a service refuses a change the audit trail cannot
// record (fail closed).
var ErrAuditUnavailable = errors.New("audit trail unavailable")

// auditUnavailable is the 503 of a front door whose audit sink is down.
func auditUnavailable(err error) *Problem {
	return newProblem(ProblemAuditUnavailable, http.StatusServiceUnavailable,
		"the audit trail cannot record this access right now, so no data is served (fail closed); retry shortly")
}

// auditPause is how often a stream paused by the audit sink tries again.
const auditPause = 250 * time.Millisecond
