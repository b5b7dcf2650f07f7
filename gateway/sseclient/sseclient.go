// Package sseclient parses text/event-stream responses as the WHATWG HTML
// standard's EventSource does: fields id, event, data and retry, comment
// lines, CR/LF/CRLF line ends, and the last-event-id rule (an id field
// persists across events until changed). It is used by sluice's tests and
// its load tool, and works for any SSE server.
package sseclient

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strconv"
)

// Event is one dispatched event.
type Event struct {
	ID    string // the last event ID in force when this event was dispatched
	Type  string // "message" when no event field was given
	Data  []byte // data lines joined with '\n'
	Retry int    // last retry hint in ms, 0 if none seen
}

// Reader reads events from a stream.
type Reader struct {
	br       *bufio.Reader
	lb       []byte // the current line, reused
	lastID   string
	lastTyp  string // interned event type
	retry    int
	Comments int // comment lines seen (heartbeats)
}

// NewReader reads events from r.
func NewReader(r io.Reader) *Reader { return &Reader{br: bufio.NewReaderSize(r, 64<<10)} }

// MaxLine bounds a single line, protecting the reader from a runaway server.
const MaxLine = 16 << 20

// ErrLineTooLong is returned for a line longer than MaxLine.
var ErrLineTooLong = errors.New("sseclient: line too long")

func (r *Reader) line() ([]byte, error) {
	buf := r.lb[:0]
	defer func() { r.lb = buf[:0] }()
	for {
		frag, err := r.br.ReadSlice('\n')
		buf = append(buf, frag...)
		if len(buf) > MaxLine {
			return nil, ErrLineTooLong
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			if err == io.EOF && len(buf) > 0 {
				return nil, io.ErrUnexpectedEOF // an unterminated line is not dispatched
			}
			return nil, err
		}
		break
	}
	buf = bytes.TrimSuffix(buf, []byte("\n"))
	buf = bytes.TrimSuffix(buf, []byte("\r"))
	// A lone CR also ends a line: split and process the rest next time.
	return buf, nil
}

// Next returns the next dispatched event. It returns io.EOF at the end of a
// stream (an event not terminated by a blank line is discarded, as in
// browsers).
func (r *Reader) Next() (Event, error) {
	var data []byte
	hasData := false
	typ := ""
	for {
		ln, err := r.line()
		if err != nil {
			return Event{}, err
		}
		// A lone CR also ends a line: walk the CR-separated pieces.
		for rest := ln; ; {
			l := rest
			cr := bytes.IndexByte(rest, '\r')
			if cr >= 0 {
				l = rest[:cr]
			}
			if len(l) == 0 {
				if hasData {
					if typ == "" {
						typ = "message"
					}
					return Event{ID: r.lastID, Type: typ, Data: data, Retry: r.retry}, nil
				}
				typ = ""
			} else {
				r.field(l, &typ, &data, &hasData)
			}
			if cr < 0 {
				break
			}
			rest = rest[cr+1:]
		}
	}
}

// field processes one non-empty line.
func (r *Reader) field(l []byte, typ *string, data *[]byte, hasData *bool) {
	if l[0] == ':' {
		r.Comments++
		return
	}
	name, value := l, []byte(nil)
	if i := bytes.IndexByte(l, ':'); i >= 0 {
		name, value = l[:i], l[i+1:]
		value = bytes.TrimPrefix(value, []byte(" "))
	}
	switch string(name) {
	case "event":
		if string(value) != r.lastTyp {
			r.lastTyp = string(value)
		}
		*typ = r.lastTyp
	case "data":
		if *hasData {
			*data = append(*data, '\n')
		}
		*data = append(*data, value...)
		*hasData = true
	case "id":
		if bytes.IndexByte(value, 0) < 0 && string(value) != r.lastID {
			r.lastID = string(value)
		}
	case "retry":
		if n, err := strconv.Atoi(string(value)); err == nil && n >= 0 {
			r.retry = n
		}
	}
}

// LastEventID is the id a reconnecting client sends as Last-Event-ID.
func (r *Reader) LastEventID() string { return r.lastID }
