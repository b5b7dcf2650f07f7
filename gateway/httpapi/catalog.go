package httpapi

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/hamba/avro/v2"

	"github.com/sluicehq/sluice/products"
)

type productJSON struct {
	ID            string      `json:"id"`
	Title         string      `json:"title"`
	Description   string      `json:"description"`
	Owner         string      `json:"owner"`
	SchemaVersion int         `json:"schema_version"`
	FreshnessSLA  string      `json:"freshness_sla"`
	ReplayWindow  string      `json:"replay_window"`
	Fields        []fieldJSON `json:"fields,omitempty"`
	Links         linksJSON   `json:"links"`
}

type fieldJSON struct {
	Name           string          `json:"name"`
	Type           json.RawMessage `json:"type"`
	Classification string          `json:"classification"`
	Description    string          `json:"description,omitempty"`
}

type linksJSON struct {
	Self    string `json:"self"`
	Schema  string `json:"schema"`
	Records string `json:"records"`
	Stream  string `json:"stream"`
	View    string `json:"view"`
}

func describe(p *products.Product, withFields bool) productJSON {
	base := "/v1/products/" + p.ID
	out := productJSON{
		ID: p.ID, Title: p.Title, Description: p.Description, Owner: p.Owner,
		SchemaVersion: p.Current().Version,
		FreshnessSLA:  p.FreshnessSLA.String(),
		ReplayWindow:  p.ReplayWindow.String(),
		Links:         linksJSON{Self: base, Schema: base + "/schema", Records: base + "/records", Stream: base + "/stream", View: base + "/view"},
	}
	if rs, ok := p.Current().Schema.(*avro.RecordSchema); ok && withFields {
		for _, f := range rs.Fields() {
			fs, _ := p.Field(f.Name())
			desc := fs.Description
			if desc == "" {
				desc = f.Doc()
			}
			out.Fields = append(out.Fields, fieldJSON{
				Name: f.Name(), Type: json.RawMessage(f.Type().String()),
				Classification: string(fs.Classification), Description: desc,
			})
		}
	}
	return out
}

func (s *Server) listProducts(w http.ResponseWriter, r *http.Request) {
	if !onlyParams(w, r) {
		return
	}
	if _, ok := s.authorize(w, r, nil); !ok {
		return
	}
	list := make([]productJSON, 0, len(s.cfg.Catalog.Products))
	for _, p := range s.cfg.Catalog.Products {
		list = append(list, describe(p, false))
	}
	writeJSON(w, http.StatusOK, map[string]any{"products": list})
}

func (s *Server) getProduct(w http.ResponseWriter, r *http.Request) {
	p, _, ok := s.product(w, r)
	if !ok || !onlyParams(w, r) {
		return
	}
	if _, ok := s.authorize(w, r, nil); !ok {
		return
	}
	writeJSON(w, http.StatusOK, describe(p, true))
}

// getSchema serves the Avro schema of the caller's view of the product
// (masked fields change type, dropped fields vanish), or with ?version=N
// the product's upstream schema version N as its data owner wrote it.
func (s *Server) getSchema(w http.ResponseWriter, r *http.Request) {
	p, _, ok := s.product(w, r)
	if !ok || !onlyParams(w, r, "version", "purpose") {
		return
	}
	sv := p.Current()
	if r.URL.Query().Get("version") == "" {
		acc, ok := s.authorize(w, r, p)
		if !ok {
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Sluice-Policy-Revision", acc.Revision)
		_, _ = w.Write(acc.Explain.Schema)
		return
	}
	// The upstream schema (docs, every field) is for partners holding a
	// grant of the product, whatever its purpose.
	if acc, ok := s.authorize(w, r, p); !ok || acc == nil {
		return
	}
	if q := r.URL.Query().Get("version"); q != "" {
		n, err := strconv.Atoi(q)
		v, found := p.Version(n)
		if err != nil || !found {
			writeProblem(w, r, newProblem(ProblemInvalidQuery, http.StatusBadRequest,
				"version "+quote(q)+" is not a schema version of "+p.ID+"; the current one is "+strconv.Itoa(sv.Version)))
			return
		}
		sv = v
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Sluice-Schema-Version", strconv.Itoa(sv.Version))
	w.Header().Set("Sluice-Schema-Id", strconv.Itoa(sv.ID))
	text := sv.Text // as the data owner wrote it: docs and defaults included
	if text == "" {
		text = sv.Schema.String()
	}
	_, _ = w.Write([]byte(text))
}
