package httpapi

import (
	"context"
	"errors"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/sluicehq/sluice/gateway/internal/cursor"
	"github.com/sluicehq/sluice/gateway/internal/hub"
	"github.com/sluicehq/sluice/gateway/internal/upstream"
	"github.com/sluicehq/sluice/products"
)

const (
	defaultLimit = 100
	maxLimit     = 1000
)

// parseStart reads where a client wants to start: a cursor (from the query
// or, for streams, Last-Event-ID) or from=earliest|latest|<RFC 3339>.
func parseStart(r *http.Request, p *products.Product, lastEventID string, def hub.StartKind) (hub.Start, *Problem) {
	q := r.URL.Query()
	c := lastEventID
	if c == "" {
		c = q.Get("cursor")
	}
	from := q.Get("from")
	if c != "" {
		if from != "" && lastEventID == "" {
			return hub.Start{}, newProblem(ProblemInvalidQuery, http.StatusBadRequest, "give either cursor or from, not both")
		}
		pos, err := cursor.Decode(c, cursor.Tag(p.ID))
		if err != nil {
			pr := newProblem(ProblemInvalidCursor, http.StatusBadRequest, err.Error())
			if errors.Is(err, cursor.ErrOtherProduct) {
				pr.Detail = "this cursor was issued for another data product; use the next_cursor or SSE id returned by /v1/products/" + p.ID
			}
			pr.Example = "use the value of next_cursor (REST) or of the last SSE id: field, e.g. " + cursor.Encode(cursor.Tag(p.ID), []int64{0, 0, 0})
			return hub.Start{}, pr
		}
		return hub.Start{Kind: hub.StartCursor, Positions: pos}, nil
	}
	switch from {
	case "":
		return hub.Start{Kind: def}, nil
	case "earliest":
		return hub.Start{Kind: hub.StartEarliest}, nil
	case "latest":
		return hub.Start{Kind: hub.StartLatest}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, from)
	if err != nil {
		pr := newProblem(ProblemInvalidFrom, http.StatusBadRequest, "from must be earliest, latest or an RFC 3339 time; got "+quote(from))
		pr.Example = "from=earliest, from=latest or from=2026-11-25T10:00:00Z"
		return hub.Start{}, pr
	}
	return hub.Start{Kind: hub.StartTime, Time: t}, nil
}

// positionProblem maps a failure to resolve or read a position.
func positionProblem(p *products.Product, err error) *Problem {
	var pe *hub.PositionError
	if errors.As(err, &pe) {
		if pe.Gone {
			pr := newProblem(ProblemCursorExpired, http.StatusGone,
				"partition "+strconv.Itoa(int(pe.Partition))+" offset "+strconv.FormatInt(pe.Offset, 10)+
					" has been removed by the product's retention ("+p.ReplayWindow.String()+"); resume from earliest_cursor")
			if pe.Earliest != nil {
				pr.EarliestCursor = cursor.Encode(cursor.Tag(p.ID), pe.Earliest)
			}
			return pr
		}
		return newProblem(ProblemInvalidCursor, http.StatusBadRequest,
			"the cursor names a position the product does not have (partition "+strconv.Itoa(int(pe.Partition))+"); use a cursor returned by this API")
	}
	if errors.Is(err, upstream.ErrUnknownTopic) {
		return newProblem(ProblemUpstream, http.StatusServiceUnavailable, "the product's topic does not exist upstream yet")
	}
	return upstreamProblem(err)
}

func (s *Server) records(w http.ResponseWriter, r *http.Request) {
	p, hp, ok := s.product(w, r)
	if !ok {
		return
	}
	acc, ok := s.authorize(w, r, p)
	if !ok {
		return
	}
	if !onlyParams(w, r, "cursor", "from", "limit", "purpose") {
		return
	}
	limit := defaultLimit
	if q := r.URL.Query().Get("limit"); q != "" {
		n, err := strconv.Atoi(q)
		if err != nil || n < 1 || n > maxLimit {
			writeProblem(w, r, newProblem(ProblemInvalidLimit, http.StatusBadRequest, "limit must be an integer from 1 to "+strconv.Itoa(maxLimit)+"; got "+quote(q)))
			return
		}
		limit = n
	}
	start, pr := parseStart(r, p, "", hub.StartEarliest)
	if pr != nil {
		writeProblem(w, r, pr)
		return
	}
	v := acc.View
	// The plan: a page carries at most the records and bytes the rate
	// bucket holds (and the monthly quota leaves); none: 429.
	budget, budgetBytes, ok := restBudget(w, r, acc.Quota, limit)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	pos, err := hp.Resolve(ctx, start)
	if err != nil {
		writeProblem(w, r, positionProblem(p, err))
		return
	}
	var aud Delivery
	if a := s.cfg.Audit; a != nil {
		if aud, err = a.Open(ctx, AuditStream{Door: "rest", Partner: acc.Partner, Product: p.ID, Purpose: acc.Purpose,
			Revision: acc.Revision, Cursor: cursor.Encode(cursor.Tag(p.ID), pos)}); err != nil {
			writeProblem(w, r, auditUnavailable(err))
			return
		}
		defer func() { aud.Close("page") }()
	}
	rd := hp.Reader(v, pos)
	defer rd.Close()
	evs, err := rd.Next(ctx, budget, 0)
	if err != nil {
		writeProblem(w, r, positionProblem(p, err))
		return
	}
	kept, size, cutPos, all := cut(evs, pos, len(rd.Positions()), budget, budgetBytes)
	if all {
		cutPos = rd.Positions()
	}
	if q := acc.Quota; q != nil {
		b := q.Bucket()
		if kept == 0 && !all {
			// The first record alone is larger than the bytes left: it is
			// served when the bucket is full (a record larger than the
			// whole bucket then drives it into debt), else refused.
			first := len(firstData(evs))
			ok, retry := b.Take(1, first)
			if !ok {
				rateLimited(w, r, acc.Quota, retry, "bytes_per_second")
				return
			}
			kept, size, cutPos, _ = cut(evs, pos, len(rd.Positions()), 1, math.Inf(1))
		} else if ok, retry := b.Take(kept, size); !ok {
			// Another request of the partner took the tokens meanwhile.
			rateLimited(w, r, acc.Quota, retry, "records_per_second")
			return
		}
		b.Headers(w.Header())
	}
	next := nextCursor(p.ID, cutPos)
	n := 0
	ndjson := WantsNDJSON(r)
	buf := make([]byte, 0, 64<<10)
	if ndjson {
		for _, e := range evs {
			if e.Data != nil && n < kept {
				buf = append(buf, e.Data...)
				buf = append(buf, '\n')
				n++
			}
		}
		w.Header().Set("Content-Type", "application/x-ndjson")
	} else {
		buf = append(buf, `{"records":[`...)
		for _, e := range evs {
			if e.Data != nil && n < kept {
				if n > 0 {
					buf = append(buf, ',')
				}
				buf = append(buf, e.Data...)
				n++
			}
		}
		buf = append(buf, `],"next_cursor":"`...)
		buf = append(buf, next...)
		buf = append(buf, "\"}\n"...)
		w.Header().Set("Content-Type", "application/json")
	}
	w.Header().Set("Sluice-Next-Cursor", next)
	w.Header().Set("Cache-Control", "no-store")
	if _, err := w.Write(buf); err == nil {
		if acc.Quota != nil {
			acc.Quota.Delivered(n, size)
		}
		if aud != nil {
			aud.Delivered(n, size, next)
		}
	}
	s.cfg.Metrics.Delivered.WithLabelValues(p.ID, "rest").Add(float64(n))
	s.cfg.Metrics.DeliveredBytes.WithLabelValues(p.ID, "rest").Add(float64(size))
}

// firstData is the first record of evs the view kept.
func firstData(evs []hub.Event) []byte {
	for _, e := range evs {
		if e.Data != nil {
			return e.Data
		}
	}
	return nil
}

// WantsNDJSON reports whether a records request asks for NDJSON (the
// plan format ndjson) rather than a JSON page (json).
func WantsNDJSON(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Accept"), "application/x-ndjson")
}
