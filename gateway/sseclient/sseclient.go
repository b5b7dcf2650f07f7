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
	lastID   string
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
	var buf []byte
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
		for _, l := range bytes.Split(ln, []byte("\r")) {
			if len(l) == 0 {
				if !hasData {
					typ = ""
					continue
				}
				if typ == "" {
					typ = "message"
				}
				return Event{ID: r.lastID, Type: typ, Data: data, Retry: r.retry}, nil
			}
			if l[0] == ':' {
				r.Comments++
				continue
			}
			name, value := l, []byte(nil)
			if i := bytes.IndexByte(l, ':'); i >= 0 {
				name, value = l[:i], l[i+1:]
				value = bytes.TrimPrefix(value, []byte(" "))
			}
			switch string(name) {
			case "event":
				typ = string(value)
			case "data":
				if hasData {
					data = append(data, '\n')
				}
				data = append(data, value...)
				hasData = true
			case "id":
				if bytes.IndexByte(value, 0) < 0 {
					r.lastID = string(value)
				}
			case "retry":
				if n, err := strconv.Atoi(string(value)); err == nil && n >= 0 {
					r.retry = n
				}
			}
		}
	}
}

// LastEventID is the id a reconnecting client sends as Last-Event-ID.
func (r *Reader) LastEventID() string { return r.lastID }
