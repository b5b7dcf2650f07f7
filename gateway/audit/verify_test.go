package audit_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/gateway/audit"
)

func decode(t testing.TB, b []byte) audit.Event {
	t.Helper()
	var ev audit.Event
	if err := json.Unmarshal(b, &ev); err != nil {
		t.Fatal(err)
	}
	return ev
}

func encode(t testing.TB, ev audit.Event) []byte {
	t.Helper()
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// nextOfChain is the index of the next line of the same chain after i, or -1.
func nextOfChain(t testing.TB, lines [][]byte, i int) int {
	chain := decode(t, lines[i]).Chain
	for j := i + 1; j < len(lines); j++ {
		if decode(t, lines[j]).Chain == chain {
			return j
		}
	}
	return -1
}

// TestAuditTamper changes one event of a 200-event export of three chains
// in every way and at every position, and checks Verify fails and points
// into the tampered chain.
func TestAuditTamper(t *testing.T) {
	orig, keys := fixture(t)
	opts := audit.VerifyOptions{Keys: keys, RequireClosed: true}
	if rep, _ := audit.Verify(bytes.NewReader(ndjson(orig)), opts); !rep.OK() {
		t.Fatalf("untouched: %v", rep.Problems)
	}
	clone := func() [][]byte {
		out := make([][]byte, len(orig))
		for i, l := range orig {
			out[i] = bytes.Clone(l)
		}
		return out
	}
	type tamper struct {
		note string
		step int // test every step-th position (1: all; the costly ones under -race sample)
		// apply returns the tampered lines, or nil to skip this position.
		apply func(lines [][]byte, i int) [][]byte
	}
	tampers := []tamper{
		{"modify a field (canonical JSON)", 1, func(lines [][]byte, i int) [][]byte {
			ev := decode(t, lines[i])
			ev.Time = ev.Time.Add(time.Second)
			lines[i] = encode(t, ev)
			return lines
		}},
		{"modify a payload value", 3, func(lines [][]byte, i int) [][]byte {
			ev := decode(t, lines[i])
			switch {
			case ev.Access != nil:
				ev.Access.Allowed = !ev.Access.Allowed
			case ev.Delivery != nil:
				ev.Delivery.Records++
			case ev.Checkpoint != nil:
				ev.Checkpoint.Running = strings.Repeat("0", 64)
			default:
				ev.Instance += "x"
			}
			lines[i] = encode(t, ev)
			return lines
		}},
		{"flip one byte", 3, func(lines [][]byte, i int) [][]byte {
			lines[i][len(lines[i])/2] ^= 0x01
			return lines
		}},
		{"add whitespace", 5, func(lines [][]byte, i int) [][]byte {
			lines[i] = append([]byte(" "), lines[i]...)
			return lines
		}},
		{"delete", 1, func(lines [][]byte, i int) [][]byte {
			return append(lines[:i], lines[i+1:]...)
		}},
		{"reorder with the chain's next event", 1, func(lines [][]byte, i int) [][]byte {
			j := nextOfChain(t, lines, i)
			if j < 0 {
				return nil
			}
			lines[i], lines[j] = lines[j], lines[i]
			return lines
		}},
		{"insert a forged, correctly linked event after it", 1, func(lines [][]byte, i int) [][]byte {
			ev := decode(t, lines[i])
			sum := sha256.Sum256(lines[i])
			forged := audit.Event{V: ev.V, Chain: ev.Chain, Seq: ev.Seq + 1, Prev: hex.EncodeToString(sum[:]),
				Time: ev.Time, Instance: ev.Instance, Kind: audit.KindAdmin, Admin: &audit.Admin{Actor: "mallory", Action: "grant"}}
			return append(lines[:i+1], append([][]byte{encode(t, forged)}, lines[i+1:]...)...)
		}},
		{"duplicate", 5, func(lines [][]byte, i int) [][]byte {
			return append(lines[:i+1], append([][]byte{bytes.Clone(lines[i])}, lines[i+1:]...)...)
		}},
	}
	for _, tc := range tampers {
		t.Run(tc.note, func(t *testing.T) {
			t.Parallel()
			for i := 0; i < len(orig); i += tc.step {
				chain := decode(t, orig[i]).Chain
				lines := tc.apply(clone(), i)
				if lines == nil {
					continue
				}
				rep, err := audit.Verify(bytes.NewReader(ndjson(lines)), opts)
				if err != nil {
					t.Fatal(err)
				}
				if rep.OK() {
					t.Errorf("line %d (chain %s): tampering not detected", i+1, chain)
					continue
				}
				p := rep.Problems[0]
				if p.Chain != chain && p.Chain != "" {
					t.Errorf("line %d (chain %s): first problem names chain %s: %s", i+1, chain, p.Chain, p)
				}
				if p.Pos.Line == 0 {
					t.Errorf("line %d: problem without a position: %s", i+1, p)
				}
			}
		})
	}
}

// TestAuditTailTruncation checks what Verify says when the tail of the
// newest chain is cut: without RequireClosed it cannot be a hard failure
// (a running instance looks the same), but the report names the open chain
// and its unsealed events.
func TestAuditTailTruncation(t *testing.T) {
	lines, keys := fixture(t)
	cut := lines[:len(lines)-3] // gw-b's close and two events before it
	rep, _ := audit.Verify(bytes.NewReader(ndjson(cut)), audit.VerifyOptions{Keys: keys})
	if !rep.OK() {
		t.Fatalf("problems: %v", rep.Problems)
	}
	var open *audit.ChainReport
	for i := range rep.Chains {
		if !rep.Chains[i].Closed {
			open = &rep.Chains[i]
		}
	}
	if open == nil || !strings.HasPrefix(open.ID, "gw-b") || open.Unsealed == 0 || len(rep.Notes) != 1 ||
		!strings.Contains(rep.Notes[0], fmt.Sprintf("%d events after the last checkpoint are unsealed", open.Unsealed)) {
		t.Fatalf("open chain %+v, notes %q", open, rep.Notes)
	}
	rep, _ = audit.Verify(bytes.NewReader(ndjson(cut)), audit.VerifyOptions{Keys: keys, RequireClosed: true})
	if rep.OK() || !strings.Contains(rep.Problems[0].String(), "no chain-close") {
		t.Fatalf("require closed: %v", rep.Problems)
	}

	// Cutting a chain that has a successor is a hard failure even without
	// RequireClosed: the successor recorded where it ended.
	var a1 string
	var idx []int
	for i, l := range lines {
		ev := decode(t, l)
		if a1 == "" {
			a1 = ev.Chain
		}
		if ev.Chain == a1 {
			idx = append(idx, i)
		}
	}
	last := idx[len(idx)-1]
	cut = append(append([][]byte{}, lines[:last]...), lines[last+1:]...)
	rep, _ = audit.Verify(bytes.NewReader(ndjson(cut)), audit.VerifyOptions{Keys: keys})
	if rep.OK() || !strings.Contains(rep.Problems[0].Msg, "tail deleted") {
		t.Fatalf("predecessor cut: %v", rep.Problems)
	}
}

// TestAuditPartial verifies an export of a time range: chains start after
// seq 0, which partial mode accepts.
func TestAuditPartial(t *testing.T) {
	lines, keys := fixture(t)
	part := lines[50:150]
	rep, _ := audit.Verify(bytes.NewReader(ndjson(part)), audit.VerifyOptions{Keys: keys})
	if rep.OK() || !strings.Contains(rep.Problems[0].Msg, "missing") {
		t.Fatalf("strict: %v", rep.Problems)
	}
	rep, _ = audit.Verify(bytes.NewReader(ndjson(part)), audit.VerifyOptions{Keys: keys, AllowPartial: true})
	if !rep.OK() {
		t.Fatalf("partial: %v", rep.Problems)
	}
	// Without a key set, keys of chain-starts that are outside the range
	// are unknown: the report says to give them.
	rep, _ = audit.Verify(bytes.NewReader(ndjson(part)), audit.VerifyOptions{AllowPartial: true})
	if rep.OK() || !strings.Contains(rep.Problems[0].Msg, "give the trusted keys") {
		t.Fatalf("partial without keys: %v", rep.Problems)
	}
	// A gap inside the range is still found.
	gap := append(append([][]byte{}, part[:40]...), part[41:]...)
	if rep, _ := audit.Verify(bytes.NewReader(ndjson(gap)), audit.VerifyOptions{Keys: keys, AllowPartial: true}); rep.OK() {
		t.Fatal("gap in a partial export not detected")
	}
}

func TestAuditVerifyInput(t *testing.T) {
	for _, tc := range []struct {
		note, in string
		events   int
		ok       bool
	}{
		{"empty", "", 0, true},
		{"blank lines", "\n\n \n", 0, true},
		{"not json", "hello\n", 1, false},
		{"json array", "[1,2]\n", 1, false},
		{"unknown field", `{"v":1,"chain":"c","seq":0,"extra":1}` + "\n", 1, false},
		{"two objects on a line", `{"chain":"c"} {"chain":"c"}` + "\n", 1, false},
		{"no chain", `{"v":1}` + "\n", 1, false},
		{"checkpoint without payload", `{"v":1,"chain":"c","seq":1,"prev":"","time":"2026-01-01T00:00:00Z","instance":"i","kind":"checkpoint"}` + "\n", 1, false},
	} {
		rep, err := audit.Verify(strings.NewReader(tc.in), audit.VerifyOptions{})
		if err != nil {
			t.Fatalf("%s: %v", tc.note, err)
		}
		if rep.Events != tc.events || rep.OK() != tc.ok {
			t.Errorf("%s: events %d ok %v, want %d %v: %v", tc.note, rep.Events, rep.OK(), tc.events, tc.ok, rep.Problems)
		}
	}
	long := strings.Repeat("x", audit.MaxLine+10) + "\n"
	if _, err := audit.Verify(strings.NewReader(long), audit.VerifyOptions{}); err == nil {
		t.Error("over-long line accepted")
	}
	// CRLF line ends (a file passed through a Windows tool) still verify.
	lines, keys := fixture(t)
	crlf := append(bytes.Join(lines, []byte("\r\n")), '\r', '\n')
	if rep, _ := audit.Verify(bytes.NewReader(crlf), audit.VerifyOptions{Keys: keys}); !rep.OK() {
		t.Errorf("crlf: %v", rep.Problems)
	}
}

func FuzzAuditVerify(f *testing.F) {
	lines, _ := fixture(f)
	// Small seeds: the fuzzer minimises every interesting input, which is
	// slow for long ones.
	f.Add(ndjson(lines[:3]))
	f.Add(ndjson(lines[8:10]))
	f.Add([]byte(`{"v":1,"chain":"c","seq":1,"kind":"checkpoint","checkpoint":{"sealed_seq":0}}` + "\n"))
	f.Add([]byte("{}\n{\"chain\":\"x\",\"kind\":\"chain-start\",\"start\":{\"keys\":[{\"kty\":\"OKP\"}],\"predecessor\":{}}}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		rep, err := audit.Verify(bytes.NewReader(data), audit.VerifyOptions{})
		if err != nil {
			return
		}
		_ = fmt.Sprint(rep.Problems, rep.Notes, rep.Unsealed())
	})
}
