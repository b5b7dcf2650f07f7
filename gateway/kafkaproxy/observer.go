package kafkaproxy

import "time"

// Observer receives the front door's protocol events, for metrics. Calls
// come from connection goroutines, concurrently; they must be quick.
// Config.Observer nil: nothing is observed.
type Observer interface {
	// Connection is called with +1 when a connection is accepted and -1
	// when it ends.
	Connection(delta int)
	// Request is called when a request has been answered: its API key and
	// the time from its arrival to its response written (a Fetch's wait
	// for data included, as Kafka's request time).
	Request(apiKey int16, d time.Duration)
	// Login is called when a SASL login (or a KIP-368 re-authentication)
	// completes or fails.
	Login(mechanism string, reauth, ok bool)
	// ProtocolError is called when a connection is closed for breaking
	// the protocol (a malformed or oversized frame, an unknown API, a
	// request out of order).
	ProtocolError()
}

// noObserver is the Observer of a Config without one.
type noObserver struct{}

func (noObserver) Connection(int)               {}
func (noObserver) Request(int16, time.Duration) {}
func (noObserver) Login(string, bool, bool)     {}
func (noObserver) ProtocolError()               {}
