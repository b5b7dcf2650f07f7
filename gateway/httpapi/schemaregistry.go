package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/go-chi/chi/v5"
)

// The read-only Schema Registry: the subset of Confluent's Schema Registry
// REST API that deserializers and tooling read, under /schema-registry, so
// a partner reading Avro from the Kafka front door points a standard
// deserializer (Confluent's KafkaAvroDeserializer, franz-go pkg/sr, ...)
// at http(s)://<gateway>/schema-registry with its own credentials.
//
// A partner sees its own Avro topics only: subject "<topic>-value" per
// topic whose subscription asks for Avro, with the topic's current view
// schema. Only the current schema of a subject is served, and its version
// number is its schema id (ids grow as schemas are registered, so a newer
// view of a topic always has a higher version). Any other id, subject or
// version is not found (40403, 40401, 40402): another partner's schema ids
// are never confirmed to exist. Errors use the registry's JSON shape
// {"error_code": 40403, "message": "..."}, not problem+json, because
// registry clients parse that.

// RegistrySubject is one subject the registry serves a partner.
type RegistrySubject struct {
	Subject string // "<topic>-value"
	Topic   string
	ID      int    // the schema id in the topic's records
	Schema  string // the Avro schema (JSON text)
}

// SchemaRegistry is what the registry endpoints read, implemented by the
// gateway on its Kafka decisions.
type SchemaRegistry interface {
	// Subjects returns the partner's subjects (its Avro topics), in topic
	// order.
	Subjects(ctx context.Context, partner string) ([]RegistrySubject, error)
}

// Schema Registry error codes (Confluent's).
const (
	srSubjectNotFound = 40401
	srVersionNotFound = 40402
	srSchemaNotFound  = 40403
	srInvalidVersion  = 42202
	srUnauthorized    = 40101
	srForbidden       = 40301
	srBackend         = 50001
)

// srContentType is the registry's media type; clients also accept JSON.
const srContentType = "application/vnd.schemaregistry.v1+json"

// RegistryError is the registry's error body.
type RegistryError struct {
	ErrorCode int    `json:"error_code"`
	Message   string `json:"message"`
}

func srWrite(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", srContentType)
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

func srError(w http.ResponseWriter, status, code int, msg string) {
	srWrite(w, status, RegistryError{ErrorCode: code, Message: msg})
}

// schemaRegistry is the router mounted at /schema-registry.
func (s *Server) schemaRegistry() http.Handler {
	r := chi.NewRouter()
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		srError(w, http.StatusNotFound, http.StatusNotFound, "HTTP 404 Not Found: this registry serves GET /schemas/ids/{id}, /schemas/ids/{id}/versions, /subjects, /subjects/{subject}/versions and /subjects/{subject}/versions/{version}")
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		srError(w, http.StatusMethodNotAllowed, http.StatusMethodNotAllowed, "HTTP 405 Method Not Allowed: the registry is read-only")
	})
	r.Get("/schemas/ids/{id}", s.srSchemaByID)
	r.Get("/schemas/ids/{id}/versions", s.srSchemaVersions)
	r.Get("/subjects", s.srSubjects)
	r.Get("/subjects/{subject}/versions", s.srSubjectVersions)
	r.Get("/subjects/{subject}/versions/{version}", s.srSubjectVersion)
	return r
}

// srAuthorize identifies the caller by its bearer token or API key, or by
// HTTP basic auth carrying an API key (username = key id, password =
// secret: Confluent clients' basic.auth.user.info), and returns its
// subjects. Query parameters are ignored (clients send several, e.g.
// ?fetchMaxId=false&subject=...), none widens what is served.
func (s *Server) srAuthorize(w http.ResponseWriter, r *http.Request) ([]RegistrySubject, bool) {
	acc, pr := s.cfg.Authorize(basicAsBearer(r), nil, "")
	if pr != nil {
		code := srUnauthorized
		switch pr.Status {
		case http.StatusUnauthorized:
			challenge(w, pr)
			w.Header().Add("WWW-Authenticate", `Basic realm="sluice-schema-registry"`)
		case http.StatusForbidden:
			code = srForbidden
		default:
			code = srBackend
		}
		srError(w, pr.Status, code, pr.Detail)
		return nil, false
	}
	if s.cfg.Registry == nil {
		srError(w, http.StatusNotFound, srSubjectNotFound, "this gateway serves no Avro topics")
		return nil, false
	}
	subs, err := s.cfg.Registry.Subjects(r.Context(), acc.Partner)
	if err != nil {
		if s.cfg.Log != nil {
			s.cfg.Log.Error("schema registry: subjects failed", "partner", acc.Partner, "err", err)
		}
		srError(w, http.StatusServiceUnavailable, srBackend, "the schemas could not be read; retry")
		return nil, false
	}
	return subs, true
}

// basicAsBearer turns basic auth with an API key into the bearer form the
// Authorizer checks: username = key id (or slk_<id>), password = secret;
// a password that is a whole key (slk_...) is taken as it is.
func basicAsBearer(r *http.Request) *http.Request {
	user, pass, ok := r.BasicAuth()
	if !ok {
		return r
	}
	key := pass
	if !strings.HasPrefix(pass, "slk_") {
		key = "slk_" + strings.TrimPrefix(user, "slk_") + "_" + pass
	}
	r2 := r.Clone(r.Context())
	r2.Header.Set("Authorization", "Bearer "+key)
	return r2
}

func srSchemaNotFoundErr(w http.ResponseWriter) {
	srError(w, http.StatusNotFound, srSchemaNotFound, "Schema not found")
}

// schemaID parses {id}; a malformed id is simply not found.
func schemaID(r *http.Request) (int, bool) {
	id, err := strconv.Atoi(chi.URLParam(r, "id"))
	return id, err == nil && id > 0
}

func (s *Server) srSchemaByID(w http.ResponseWriter, r *http.Request) {
	subs, ok := s.srAuthorize(w, r)
	if !ok {
		return
	}
	id, ok := schemaID(r)
	if ok {
		for _, sub := range subs {
			if sub.ID == id {
				// schemaType is omitted for AVRO, as the registry does.
				srWrite(w, http.StatusOK, map[string]any{"schema": sub.Schema})
				return
			}
		}
	}
	srSchemaNotFoundErr(w)
}

func (s *Server) srSchemaVersions(w http.ResponseWriter, r *http.Request) {
	subs, ok := s.srAuthorize(w, r)
	if !ok {
		return
	}
	id, ok := schemaID(r)
	type sv struct {
		Subject string `json:"subject"`
		Version int    `json:"version"`
	}
	var out []sv
	for _, sub := range subs {
		if ok && sub.ID == id {
			out = append(out, sv{sub.Subject, sub.ID})
		}
	}
	if len(out) == 0 {
		srSchemaNotFoundErr(w)
		return
	}
	srWrite(w, http.StatusOK, out)
}

func (s *Server) srSubjects(w http.ResponseWriter, r *http.Request) {
	subs, ok := s.srAuthorize(w, r)
	if !ok {
		return
	}
	out := make([]string, 0, len(subs))
	for _, sub := range subs {
		out = append(out, sub.Subject)
	}
	slices.Sort(out)
	srWrite(w, http.StatusOK, out)
}

// srSubject authorizes the caller and finds {subject} among its subjects,
// or writes the error (40101, 40401).
func (s *Server) srSubject(w http.ResponseWriter, r *http.Request) (RegistrySubject, bool) {
	subs, ok := s.srAuthorize(w, r)
	if !ok {
		return RegistrySubject{}, false
	}
	name := chi.URLParam(r, "subject")
	for _, sub := range subs {
		if sub.Subject == name {
			return sub, true
		}
	}
	srError(w, http.StatusNotFound, srSubjectNotFound, "Subject "+quote(name)+" not found")
	return RegistrySubject{}, false
}

func (s *Server) srSubjectVersions(w http.ResponseWriter, r *http.Request) {
	sub, ok := s.srSubject(w, r)
	if !ok {
		return
	}
	srWrite(w, http.StatusOK, []int{sub.ID})
}

func (s *Server) srSubjectVersion(w http.ResponseWriter, r *http.Request) {
	sub, ok := s.srSubject(w, r)
	if !ok {
		return
	}
	v := chi.URLParam(r, "version")
	if v != "latest" && v != "-1" {
		n, err := strconv.Atoi(v)
		switch {
		case err != nil || n <= 0 || n > 1<<31-1:
			srError(w, http.StatusUnprocessableEntity, srInvalidVersion,
				"The specified version "+quote(v)+" is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\"")
			return
		case n != sub.ID:
			srError(w, http.StatusNotFound, srVersionNotFound, "Version "+v+" not found")
			return
		}
	}
	srWrite(w, http.StatusOK, map[string]any{"subject": sub.Subject, "version": sub.ID, "id": sub.ID, "schema": sub.Schema})
}
