package policy

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// testProducts are the shipped products' current schemas as the gateway
// describes them to the policy (testdata/products.json, written from
// products/catalog and schemas/avro).
func testProducts(t testing.TB) map[string]Product {
	t.Helper()
	b, err := os.ReadFile("testdata/products.json")
	if err != nil {
		t.Fatal(err)
	}
	var ps map[string]Product
	if err := json.Unmarshal(b, &ps); err != nil {
		t.Fatal(err)
	}
	return ps
}

// enterpriseCells are enterprise-x's cells in the demo partner registry
// (products/partners/demo.yaml): Berlin's first 5G site and two sectors of
// Munich's first. products/generate numbers cells independently of its seed.
var enterpriseCells = []any{"262-01-2B0000001", "262-01-2B0000002", "262-01-2B0000003", "262-01-2B0006001", "262-01-2B0006002"}

// demoPartners are the demo partners of the shipped policy.
var demoPartners = map[string]Partner{
	"mvno-a":         {ID: "mvno-a", Name: "MVNO A", Type: "mvno", Attributes: map[string]any{"mvno_id": "mvno-a"}},
	"mvno-b":         {ID: "mvno-b", Name: "MVNO B", Type: "mvno", Attributes: map[string]any{"mvno_id": "mvno-b"}},
	"iot-fleet":      {ID: "iot-fleet", Name: "IoT Fleet", Type: "iot", Attributes: map[string]any{"platform": "iot-fleet"}},
	"enterprise-x":   {ID: "enterprise-x", Name: "Enterprise X", Type: "enterprise", Attributes: map[string]any{"cells": enterpriseCells}},
	"internal-noc":   {ID: "internal-noc", Name: "Network Operations Centre", Type: "internal"},
	"internal-fraud": {ID: "internal-fraud", Name: "Fraud Team", Type: "internal"},
	"regulator":      {ID: "regulator", Name: "Regulator", Type: "regulator"},
}

// writePolicy writes files (name -> content) into dir, replacing what is
// there, and gives each a modification time at least a second after the
// previous write's, so that pollers see every change even on file systems
// with coarse timestamps.
func writePolicy(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		mtime := nextMtime()
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
}

var (
	mtimeMu   sync.Mutex
	lastMtime time.Time
)

func nextMtime() time.Time {
	mtimeMu.Lock()
	defer mtimeMu.Unlock()
	next := lastMtime.Add(time.Second)
	if now := time.Now(); now.After(next) {
		next = now
	}
	lastMtime = next
	return next
}

// newTestEngine compiles files written into a fresh directory.
func newTestEngine(t testing.TB, files map[string]string) (*Engine, string) {
	t.Helper()
	dir := t.TempDir()
	writePolicy(t, dir, files)
	e, err := New(Options{Dir: dir})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return e, dir
}

// rowPolicy is a minimal policy that allows everything and has the given
// row rules, to test the translation of residuals.
func rowPolicy(rows string) map[string]string {
	return map[string]string{"p.rego": `package sluice

decision := {"allow": true, "reason": "test", "fields": {}, "consent_required": false}

` + rows}
}

// decide runs Decide with a background context and a simple input.
func decide(t testing.TB, e *Engine, in Input) (Decision, error) {
	t.Helper()
	return e.Decide(context.Background(), in)
}

// simpleInput is a request by mvno-b for cdr analytics, with the fields the
// row rules of the tests name.
func simpleInput() Input {
	return Input{
		Partner: Partner{ID: "mvno-b", Type: "mvno", Attributes: map[string]any{"mvno_id": "mvno-b", "cells": []string{"c1", "c2"}, "max": 10}},
		Grant:   Grant{Product: "cdr", Purpose: "network-analytics"},
		Product: Product{ID: "cdr", Fields: []Field{
			{Name: "msisdn", Classification: "direct-identifier", Type: "string"},
			{Name: "mvno_id", Classification: "public", Type: "string"},
			{Name: "cell_id", Classification: "quasi-identifier", Type: "string"},
			{Name: "visited_mcc", Classification: "quasi-identifier", Type: "string"},
			{Name: "roaming", Classification: "public", Type: "boolean"},
			{Name: "a", Classification: "public", Type: "string"},
			{Name: "b", Classification: "public", Type: "string"},
			{Name: "n", Classification: "public", Type: "long"},
			{Name: "cells", Classification: "public", Type: "array"},
			{Name: "codes", Classification: "public", Type: "array"},
			{Name: "list", Classification: "public", Type: "array"},
		}},
	}
}

// toJSON round-trips v through encoding/json into plain values, for
// comparisons that ignore Go types (json.Number against float64).
func toJSON(t testing.TB, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}
