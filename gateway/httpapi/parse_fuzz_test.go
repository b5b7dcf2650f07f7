package httpapi

import (
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/sluicehq/sluice/gateway/internal/cursor"
	"github.com/sluicehq/sluice/gateway/internal/hub"
	"github.com/sluicehq/sluice/products"
)

// FuzzParseStart feeds arbitrary query strings and Last-Event-ID headers to
// the start-position parser: it must never panic, and every rejection is a
// 400 problem with a stable type and a detail.
func FuzzParseStart(f *testing.F) {
	p := &products.Product{ID: "cdr"}
	good := cursor.Encode(cursor.Tag("cdr"), []int64{1, 2, 3})
	f.Add("from=earliest", "")
	f.Add("cursor="+good, "")
	f.Add("", good)
	f.Add("from=2026-11-25T10:00:00Z", "")
	f.Add("from=2026-13-45T99:00:00Z&cursor=c1", "c1")
	f.Add("cursor=%zz", "\x00")
	f.Fuzz(func(t *testing.T, query, lastID string) {
		if _, err := url.ParseQuery(query); err != nil {
			return // net/http would not route such a URL here
		}
		r := httptest.NewRequest("GET", "/v1/products/cdr/records", nil)
		r.URL.RawQuery = query
		s, pr := parseStart(r, p, lastID, hub.StartEarliest)
		if pr != nil {
			if pr.Status != 400 || pr.Type == "" || pr.Detail == "" || titles[pr.Type] == "" {
				t.Fatalf("bad problem for %q / %q: %+v", query, lastID, pr)
			}
			return
		}
		if s.Kind == hub.StartCursor && len(s.Positions) == 0 {
			t.Fatalf("cursor start without positions for %q / %q", query, lastID)
		}
	})
}
