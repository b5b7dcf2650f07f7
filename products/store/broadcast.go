package store

import (
	"context"
	"sync"
)

// maxPending is how many undelivered changes a subscriber may have before
// they are replaced by one ChangeResync.
const maxPending = 1024

// broadcaster fans changes out to the subscribers of one Store. Each
// subscriber has a goroutine that forwards its queue to its channel, so a
// slow reader never blocks Publish or other readers; a reader too far
// behind gets ChangeResync instead of its backlog. The broadcaster owns the
// forwarding goroutines and waits for them in close.
type broadcaster struct {
	mu     sync.Mutex
	subs   map[*subscriber]struct{}
	closed bool
	done   chan struct{} // closed by close
	wg     sync.WaitGroup
}

type subscriber struct {
	mu      sync.Mutex
	pending []Change
	wake    chan struct{} // capacity 1
}

func newBroadcaster() *broadcaster {
	return &broadcaster{subs: map[*subscriber]struct{}{}, done: make(chan struct{})}
}

// subscribe returns a channel of every change published from now until ctx
// ends or the broadcaster closes; then the channel is closed.
func (b *broadcaster) subscribe(ctx context.Context) (<-chan Change, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, ErrClosed
	}
	s := &subscriber{wake: make(chan struct{}, 1)}
	b.subs[s] = struct{}{}
	out := make(chan Change)
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		defer close(out)
		defer func() {
			b.mu.Lock()
			delete(b.subs, s)
			b.mu.Unlock()
		}()
		for {
			select {
			case <-s.wake:
			case <-ctx.Done():
				return
			case <-b.done:
				return
			}
			for {
				s.mu.Lock()
				if len(s.pending) == 0 {
					s.mu.Unlock()
					break
				}
				c := s.pending[0]
				s.pending = s.pending[1:]
				s.mu.Unlock()
				select {
				case out <- c:
				case <-ctx.Done():
					return
				case <-b.done:
					return
				}
			}
		}
	}()
	return out, nil
}

// publish queues c for every subscriber.
func (b *broadcaster) publish(c Change) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for s := range b.subs {
		s.mu.Lock()
		if len(s.pending) >= maxPending {
			s.pending = append(s.pending[:0], Change{Kind: ChangeResync})
		} else {
			s.pending = append(s.pending, c)
		}
		s.mu.Unlock()
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

// close ends every subscription and waits for the forwarding goroutines.
func (b *broadcaster) close() {
	b.mu.Lock()
	if !b.closed {
		b.closed = true
		close(b.done)
	}
	b.mu.Unlock()
	b.wg.Wait()
}
