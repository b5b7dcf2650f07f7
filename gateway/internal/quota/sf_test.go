package quota

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"testing"
)

// A strict parser for Structured Field Lists (RFC 9651 §4.2.1), enough to
// check what the RateLimit fields must be, followed by the draft's own
// rules for the two fields.

type sfKind int

const (
	sfInteger sfKind = iota + 1
	sfDecimal
	sfString
	sfToken
	sfBytes
	sfBoolean
	sfInnerList
)

type sfParam struct {
	key string
	val sfBare
}

type sfBare struct {
	kind sfKind
	i    int64
	s    string // string, token, decimal text, byte sequence (decoded)
	b    bool
}

type sfItem struct {
	val    sfBare
	params []sfParam
}

func (it sfItem) param(key string) (sfBare, bool) {
	for _, p := range it.params {
		if p.key == key {
			return p.val, true
		}
	}
	return sfBare{}, false
}

type sfParser struct {
	s string
	i int
}

func (p *sfParser) eof() bool  { return p.i >= len(p.s) }
func (p *sfParser) peek() byte { return p.s[p.i] }

func (p *sfParser) errorf(format string, a ...any) error {
	return fmt.Errorf("at %d of %q: %s", p.i, p.s, fmt.Sprintf(format, a...))
}

func parseSFList(s string) ([]sfItem, error) {
	p := &sfParser{s: s}
	for !p.eof() && p.peek() == ' ' {
		p.i++
	}
	var out []sfItem
	for !p.eof() {
		it, err := p.itemOrInnerList()
		if err != nil {
			return nil, err
		}
		out = append(out, it)
		for !p.eof() && (p.peek() == ' ' || p.peek() == '\t') {
			p.i++
		}
		if p.eof() {
			return out, nil
		}
		if p.peek() != ',' {
			return nil, p.errorf("expected ','")
		}
		p.i++
		for !p.eof() && (p.peek() == ' ' || p.peek() == '\t') {
			p.i++
		}
		if p.eof() {
			return nil, p.errorf("trailing comma")
		}
	}
	return out, nil
}

func (p *sfParser) itemOrInnerList() (sfItem, error) {
	if !p.eof() && p.peek() == '(' {
		p.i++
		for {
			for !p.eof() && p.peek() == ' ' {
				p.i++
			}
			if p.eof() {
				return sfItem{}, p.errorf("unterminated inner list")
			}
			if p.peek() == ')' {
				p.i++
				params, err := p.params()
				return sfItem{val: sfBare{kind: sfInnerList}, params: params}, err
			}
			if _, err := p.item(); err != nil {
				return sfItem{}, err
			}
			if !p.eof() && p.peek() != ' ' && p.peek() != ')' {
				return sfItem{}, p.errorf("expected ' ' or ')' in inner list")
			}
		}
	}
	return p.item()
}

func (p *sfParser) item() (sfItem, error) {
	v, err := p.bare()
	if err != nil {
		return sfItem{}, err
	}
	params, err := p.params()
	return sfItem{val: v, params: params}, err
}

func (p *sfParser) params() ([]sfParam, error) {
	var out []sfParam
	for !p.eof() && p.peek() == ';' {
		p.i++
		for !p.eof() && p.peek() == ' ' {
			p.i++
		}
		key, err := p.key()
		if err != nil {
			return nil, err
		}
		val := sfBare{kind: sfBoolean, b: true}
		if !p.eof() && p.peek() == '=' {
			p.i++
			if val, err = p.bare(); err != nil {
				return nil, err
			}
		}
		for j := range out { // a later duplicate overwrites
			if out[j].key == key {
				out = append(out[:j], out[j+1:]...)
				break
			}
		}
		out = append(out, sfParam{key, val})
	}
	return out, nil
}

func (p *sfParser) key() (string, error) {
	start := p.i
	if p.eof() || !(isLower(p.peek()) || p.peek() == '*') {
		return "", p.errorf("key must start with lcalpha or '*'")
	}
	for !p.eof() && (isLower(p.peek()) || isDigit(p.peek()) || strings.IndexByte("_-.*", p.peek()) >= 0) {
		p.i++
	}
	return p.s[start:p.i], nil
}

func (p *sfParser) bare() (sfBare, error) {
	if p.eof() {
		return sfBare{}, p.errorf("missing bare item")
	}
	switch c := p.peek(); {
	case c == '-' || isDigit(c):
		return p.number()
	case c == '"':
		return p.str()
	case c == '*' || isAlpha(c):
		return p.token()
	case c == ':':
		return p.bytes()
	case c == '?':
		p.i++
		if p.eof() || (p.peek() != '0' && p.peek() != '1') {
			return sfBare{}, p.errorf("bad boolean")
		}
		v := p.peek() == '1'
		p.i++
		return sfBare{kind: sfBoolean, b: v}, nil
	default:
		return sfBare{}, p.errorf("unexpected %q", c)
	}
}

func (p *sfParser) number() (sfBare, error) {
	start := p.i
	if p.peek() == '-' {
		p.i++
	}
	if p.eof() || !isDigit(p.peek()) {
		return sfBare{}, p.errorf("number without digits")
	}
	digits, dot := 0, -1
	for !p.eof() {
		c := p.peek()
		if isDigit(c) {
			digits++
		} else if c == '.' && dot < 0 {
			if digits > 12 {
				return sfBare{}, p.errorf("decimal integer part too long")
			}
			dot = digits
		} else {
			break
		}
		p.i++
		if dot < 0 && digits > 15 {
			return sfBare{}, p.errorf("integer longer than 15 digits")
		}
	}
	text := p.s[start:p.i]
	if dot < 0 {
		v, err := strconv.ParseInt(text, 10, 64)
		if err != nil {
			return sfBare{}, p.errorf("%v", err)
		}
		return sfBare{kind: sfInteger, i: v}, nil
	}
	if frac := digits - dot; frac < 1 || frac > 3 {
		return sfBare{}, p.errorf("decimal with %d fraction digits", frac)
	}
	return sfBare{kind: sfDecimal, s: text}, nil
}

func (p *sfParser) str() (sfBare, error) {
	p.i++ // '"'
	var b strings.Builder
	for !p.eof() {
		c := p.peek()
		p.i++
		switch {
		case c == '\\':
			if p.eof() || (p.peek() != '"' && p.peek() != '\\') {
				return sfBare{}, p.errorf("bad escape")
			}
			b.WriteByte(p.peek())
			p.i++
		case c == '"':
			return sfBare{kind: sfString, s: b.String()}, nil
		case c < 0x20 || c > 0x7e:
			return sfBare{}, p.errorf("byte %#x in string", c)
		default:
			b.WriteByte(c)
		}
	}
	return sfBare{}, p.errorf("unterminated string")
}

func (p *sfParser) token() (sfBare, error) {
	start := p.i
	p.i++
	for !p.eof() && (isTchar(p.peek()) || p.peek() == ':' || p.peek() == '/') {
		p.i++
	}
	return sfBare{kind: sfToken, s: p.s[start:p.i]}, nil
}

func (p *sfParser) bytes() (sfBare, error) {
	p.i++ // ':'
	end := strings.IndexByte(p.s[p.i:], ':')
	if end < 0 {
		return sfBare{}, p.errorf("unterminated byte sequence")
	}
	enc := p.s[p.i : p.i+end]
	p.i += end + 1
	dec, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		return sfBare{}, p.errorf("byte sequence: %v", err)
	}
	return sfBare{kind: sfBytes, s: string(dec)}, nil
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
func isLower(c byte) bool { return 'a' <= c && c <= 'z' }
func isAlpha(c byte) bool { return isLower(c) || ('A' <= c && c <= 'Z') }
func isTchar(c byte) bool {
	return isAlpha(c) || isDigit(c) || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// checkPolicyField applies draft-ietf-httpapi-ratelimit-headers-11 §3 to a
// RateLimit-Policy value and returns the policies by name.
func checkPolicyField(v string) (map[string]sfItem, error) {
	items, err := parseSFList(v)
	if err != nil {
		return nil, err
	}
	if len(items) == 0 {
		return nil, fmt.Errorf("RateLimit-Policy %q: empty list", v)
	}
	out := make(map[string]sfItem)
	for _, it := range items {
		if it.val.kind != sfString {
			return nil, fmt.Errorf("RateLimit-Policy %q: item is not a String", v)
		}
		q, ok := it.param("q")
		if !ok || q.kind != sfInteger || q.i < 0 {
			return nil, fmt.Errorf("RateLimit-Policy %q: q must be a non-negative Integer", v)
		}
		if w, ok := it.param("w"); ok && (w.kind != sfInteger || w.i <= 0) {
			return nil, fmt.Errorf("RateLimit-Policy %q: w must be a positive Integer", v)
		}
		if qu, ok := it.param("qu"); ok && (qu.kind != sfString || !registeredUnit(qu.s)) {
			return nil, fmt.Errorf("RateLimit-Policy %q: qu must be a registered unit String", v)
		}
		if pk, ok := it.param("pk"); ok && pk.kind != sfBytes {
			return nil, fmt.Errorf("RateLimit-Policy %q: pk must be a Byte Sequence", v)
		}
		out[it.val.s] = it
	}
	return out, nil
}

func registeredUnit(u string) bool {
	return u == "requests" || u == "content-bytes" || u == "concurrent-requests"
}

// checkRateLimitField applies §4 to a RateLimit value.
func checkRateLimitField(v string) (map[string]sfItem, error) {
	items, err := parseSFList(v)
	if err != nil {
		return nil, err
	}
	out := make(map[string]sfItem)
	for _, it := range items {
		if it.val.kind != sfString {
			return nil, fmt.Errorf("RateLimit %q: item is not a String", v)
		}
		r, ok := it.param("r")
		if !ok || r.kind != sfInteger || r.i < 0 {
			return nil, fmt.Errorf("RateLimit %q: r must be a non-negative Integer", v)
		}
		if tt, ok := it.param("t"); ok && (tt.kind != sfInteger || tt.i < 0) {
			return nil, fmt.Errorf("RateLimit %q: t must be a non-negative Integer", v)
		}
		if pk, ok := it.param("pk"); ok && pk.kind != sfBytes {
			return nil, fmt.Errorf("RateLimit %q: pk must be a Byte Sequence", v)
		}
		out[it.val.s] = it
	}
	return out, nil
}

// The checker itself must be able to fail.
func TestSFCheckers(t *testing.T) {
	for _, c := range []struct {
		note, policy, state string
		ok                  bool
	}{
		{"draft §3 example", `"burst";q=100;w=60,"daily";q=1000;w=86400`, `"default";r=50;t=30`, true},
		{"draft §3.2 with unit and key", `"peruser";q=65535;qu="content-bytes";w=10;pk=:sdfjLJUOUH==:`, `"default";r=999;pk=:dHJpYWwxMjEzMjM=:`, true},
		{"ours", `"records";q=2000;w=1, "bytes";q=1000000;qu="content-bytes";w=1`, `"records";r=0;t=1, "bytes";r=5;t=0`, true},
		{"policy name as a token", `records;q=1;w=1`, `"records";r=1`, false},
		{"decimal quota", `"records";q=1.5;w=1`, `"records";r=1`, false},
		{"negative quota", `"records";q=-1;w=1`, `"records";r=1`, false},
		{"missing q", `"records";w=1`, `"records";r=1`, false},
		{"zero window", `"records";q=1;w=0`, `"records";r=1`, false},
		{"unregistered unit", `"records";q=1;qu="records"`, `"records";r=1`, false},
		{"space before ';'", `"records" ;q=1`, `"records";r=1`, false},
		{"trailing comma", `"records";q=1,`, `"records";r=1`, false},
		{"16-digit integer", `"records";q=1000000000000000`, `"records";r=1`, false},
		{"uppercase key", `"records";Q=1`, `"records";r=1`, false},
		{"missing r", `"records";q=1`, `"records";t=1`, false},
		{"negative t", `"records";q=1`, `"records";r=1;t=-1`, false},
		{"control byte in string", `"rec` + "\x01" + `";q=1`, `"records";r=1`, false},
		{"empty policy", ``, `"records";r=1`, false},
	} {
		_, perr := checkPolicyField(c.policy)
		_, serr := checkRateLimitField(c.state)
		if got := perr == nil && serr == nil; got != c.ok {
			t.Errorf("%s: ok = %v (policy err %v, state err %v); want %v", c.note, got, perr, serr, c.ok)
		}
	}
}
