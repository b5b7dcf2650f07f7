package httpapi

import (
	"encoding/csv"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// UsageRow is one partner's usage of one product for one purpose on one
// UTC day. In JSON the day is a date, YYYY-MM-DD.
type UsageRow struct {
	Day     time.Time // midnight UTC
	Partner string
	Product string
	Purpose string
	Records int64
	Bytes   int64
}

// MarshalJSON writes the row as GET /v1/usage shows it.
func (u UsageRow) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Day     string `json:"day"`
		Partner string `json:"partner"`
		Product string `json:"product"`
		Purpose string `json:"purpose"`
		Records int64  `json:"records"`
		Bytes   int64  `json:"bytes"`
	}{u.Day.UTC().Format(dayLayout), u.Partner, u.Product, u.Purpose, u.Records, u.Bytes})
}

// UsageFilter selects usage: the UTC days from From (inclusive) to To
// (exclusive), both midnight UTC; Partner and Product when not empty.
type UsageFilter struct {
	From, To time.Time
	Partner  string
	Product  string
}

// dayLayout is the form of a day in usage queries and answers.
const dayLayout = "2006-01-02"

// usageColumns is the header row of the CSV answer.
var usageColumns = []string{"day", "partner", "product", "purpose", "records", "bytes"}

// parseUsageQuery reads from, to, partner and product. to defaults to
// tomorrow (today included), from to the first day of the month of the
// last day asked for: no parameters is the current UTC month so far.
func parseUsageQuery(q url.Values, now time.Time) (UsageFilter, *Problem) {
	bad := func(detail string) (UsageFilter, *Problem) {
		return UsageFilter{}, newProblem(ProblemInvalidQuery, http.StatusBadRequest, detail)
	}
	day := func(name string) (time.Time, bool) {
		t, err := time.Parse(dayLayout, q.Get(name))
		return t, err == nil
	}
	var f UsageFilter
	now = now.UTC()
	f.To = time.Date(now.Year(), now.Month(), now.Day()+1, 0, 0, 0, 0, time.UTC)
	if q.Has("to") {
		t, ok := day("to")
		if !ok {
			return bad("to " + quote(q.Get("to")) + " is not a date; want YYYY-MM-DD (UTC, exclusive), e.g. 2026-12-01")
		}
		f.To = t
	}
	last := f.To.AddDate(0, 0, -1)
	f.From = time.Date(last.Year(), last.Month(), 1, 0, 0, 0, 0, time.UTC)
	if q.Has("from") {
		t, ok := day("from")
		if !ok {
			return bad("from " + quote(q.Get("from")) + " is not a date; want YYYY-MM-DD (UTC, inclusive), e.g. 2026-11-01")
		}
		f.From = t
	}
	if !f.From.Before(f.To) {
		return bad("from " + f.From.Format(dayLayout) + " must be before to " + f.To.Format(dayLayout) + " (to is exclusive)")
	}
	for _, p := range []struct {
		name string
		dst  *string
	}{{"partner", &f.Partner}, {"product", &f.Product}} {
		if v := q.Get(p.name); q.Has(p.name) && !idPattern.MatchString(v) {
			return bad(p.name + " " + quote(v) + " is not a " + p.name + " id")
		}
		*p.dst = q.Get(p.name)
	}
	return f, nil
}

func (s *Server) usage(w http.ResponseWriter, r *http.Request) {
	svc, acc, ok := s.keys(w, r, "from", "to", "partner", "product")
	if !ok {
		return
	}
	f, pr := parseUsageQuery(r.URL.Query(), time.Now())
	if pr != nil {
		writeProblem(w, r, pr)
		return
	}
	switch {
	case svc.Admin(acc.Partner):
		// Every partner's usage, or the one asked for.
	case f.Partner == "" || f.Partner == acc.Partner:
		f.Partner = acc.Partner
	default:
		writeProblem(w, r, newProblem(ProblemForbiddenAdmin, http.StatusForbidden,
			"partner "+acc.Partner+" may only read its own usage; leave out partner= (only the data owner's admin identity may name another)"))
		return
	}
	rows, err := svc.Usage(r.Context(), f)
	if err != nil {
		writeProblem(w, r, s.keyProblem(r, err, f.Partner, ""))
		return
	}
	w.Header().Set("Vary", "Accept")
	from, to := f.From.Format(dayLayout), f.To.Format(dayLayout)
	if strings.Contains(r.Header.Get("Accept"), "text/csv") {
		writeUsageCSV(w, rows, from, to)
		return
	}
	var total struct {
		Records int64 `json:"records"`
		Bytes   int64 `json:"bytes"`
	}
	for _, u := range rows {
		total.Records += u.Records
		total.Bytes += u.Bytes
	}
	if rows == nil {
		rows = []UsageRow{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"from": from, "to": to, "usage": rows, "total": total})
}

// writeUsageCSV writes usage rows as RFC 4180 CSV with a header row, for
// billing.
func writeUsageCSV(w http.ResponseWriter, rows []UsageRow, from, to string) {
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="sluice-usage-`+from+`-`+to+`.csv"`)
	w.WriteHeader(http.StatusOK)
	cw := csv.NewWriter(w)
	cw.UseCRLF = true // RFC 4180
	_ = cw.Write(usageColumns)
	for _, u := range rows {
		_ = cw.Write([]string{u.Day.UTC().Format(dayLayout), u.Partner, u.Product, u.Purpose,
			strconv.FormatInt(u.Records, 10), strconv.FormatInt(u.Bytes, 10)})
	}
	cw.Flush()
}
