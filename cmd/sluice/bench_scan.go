package main

import (
	"bufio"
	"bytes"
	"io"

	"github.com/sluicehq/sluice/gateway/sseclient"
)

// eventSource is what a fan-out subscriber reads events from.
type eventSource interface {
	// next returns the next dispatched event's type and data; both are valid
	// until the following call.
	next() (typ, data []byte, err error)
}

// leanScanner dispatches SSE events like an EventSource (fields event and
// data, multi-line data joined with '\n', comments, LF and CRLF line ends;
// a lone CR as line end is not supported: sluice never writes one) but
// without allocating per event, so that a thousand subscribers in the bench
// process leave the CPUs to the gateway. sseclient allocates several times
// per event (see BenchmarkSSEParse); --fanout-parser sseclient uses it anyway.
type leanScanner struct {
	br   *bufio.Reader
	typ  []byte
	data []byte
	long []byte // a line longer than the read buffer
}

func newLeanScanner(r io.Reader) *leanScanner {
	return &leanScanner{br: bufio.NewReaderSize(r, 64<<10), typ: make([]byte, 0, 32), data: make([]byte, 0, 1024)}
}

var messageType = []byte("message")

func (s *leanScanner) line() ([]byte, error) {
	ln, err := s.br.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		s.long = append(s.long[:0], ln...)
		for err == bufio.ErrBufferFull {
			ln, err = s.br.ReadSlice('\n')
			s.long = append(s.long, ln...)
			if len(s.long) > sseclient.MaxLine {
				return nil, sseclient.ErrLineTooLong
			}
		}
		ln = s.long
	}
	if err != nil {
		if err == io.EOF && len(ln) > 0 {
			return nil, io.ErrUnexpectedEOF
		}
		return nil, err
	}
	ln = ln[:len(ln)-1]
	if n := len(ln); n > 0 && ln[n-1] == '\r' {
		ln = ln[:n-1]
	}
	return ln, nil
}

func (s *leanScanner) next() ([]byte, []byte, error) {
	s.typ, s.data = s.typ[:0], s.data[:0]
	hasData := false
	for {
		ln, err := s.line()
		if err != nil {
			return nil, nil, err
		}
		if len(ln) == 0 {
			if !hasData {
				s.typ = s.typ[:0]
				continue
			}
			if len(s.typ) == 0 {
				s.typ = append(s.typ, messageType...)
			}
			return s.typ, s.data, nil
		}
		if ln[0] == ':' {
			continue
		}
		name, value := ln, []byte(nil)
		if i := bytes.IndexByte(ln, ':'); i >= 0 {
			name, value = ln[:i], ln[i+1:]
			if len(value) > 0 && value[0] == ' ' {
				value = value[1:]
			}
		}
		switch string(name) { // no allocation: the compiler compares in place
		case "event":
			s.typ = append(s.typ[:0], value...)
		case "data":
			if hasData {
				s.data = append(s.data, '\n')
			}
			s.data = append(s.data, value...)
			hasData = true
		}
	}
}

// sseclientSource adapts gateway/sseclient to eventSource.
type sseclientSource struct{ r *sseclient.Reader }

func (s sseclientSource) next() ([]byte, []byte, error) {
	ev, err := s.r.Next()
	if err != nil {
		return nil, nil, err
	}
	return []byte(ev.Type), ev.Data, nil
}
