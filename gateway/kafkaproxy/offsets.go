package kafkaproxy

import (
	"context"
	"maps"
	"sync"
)

// MemoryOffsets is an OffsetStore in memory, for tests and single-process
// demos: offsets survive a Server restart that keeps the MemoryOffsets,
// not a process restart. The zero value is ready to use.
type MemoryOffsets struct {
	mu     sync.Mutex
	groups map[groupKey]map[TopicPartition]Committed
}

// Commit stores offsets.
func (m *MemoryOffsets) Commit(_ context.Context, partner, group string, offsets map[TopicPartition]Committed) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.groups == nil {
		m.groups = map[groupKey]map[TopicPartition]Committed{}
	}
	k := groupKey{partner, group}
	g := m.groups[k]
	if g == nil {
		g = map[TopicPartition]Committed{}
		m.groups[k] = g
	}
	maps.Copy(g, offsets)
	return nil
}

// Fetch returns a copy of a group's offsets.
func (m *MemoryOffsets) Fetch(_ context.Context, partner, group string) (map[TopicPartition]Committed, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[TopicPartition]Committed{}
	maps.Copy(out, m.groups[groupKey{partner, group}])
	return out, nil
}
