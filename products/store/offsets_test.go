package store

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestGroupOffsets: commits upsert per partition (last wins), are
// namespaced by partner and group, survive reopening the database, are
// read back sorted, and a batch is all or nothing (an invalid entry writes
// nothing). Concurrent commits of one group, in different partition
// orders, neither deadlock nor lose a write.
func TestGroupOffsets(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dsn string) {
		s := openStore(t, dsn)
		ctx := t.Context()
		at := time.Date(2026, 11, 25, 10, 0, 0, 123456000, time.UTC)
		s.now = func() time.Time { return at }

		got, err := s.GroupOffsets(ctx, "mvno-a", "billing")
		if err != nil || len(got) != 0 {
			t.Fatalf("unknown group: %+v, %v; want none and no error", got, err)
		}
		if err := s.CommitOffsets(ctx, "mvno-a", "billing", nil); err != nil {
			t.Fatalf("empty commit: %v", err)
		}
		if err := s.CommitOffsets(ctx, "mvno-a", "billing", []GroupOffset{
			{Topic: "fraud-alerts", Partition: 0, Offset: 7},
			{Topic: "cdr", Partition: 2, Offset: 120, Metadata: "m2"},
			{Topic: "cdr", Partition: 0, Offset: 100},
		}); err != nil {
			t.Fatal(err)
		}
		// The same group id of another partner, and another group.
		if err := s.CommitOffsets(ctx, "mvno-b", "billing", []GroupOffset{{Topic: "cdr", Partition: 0, Offset: 5}}); err != nil {
			t.Fatal(err)
		}
		if err := s.CommitOffsets(ctx, "mvno-a", "other", []GroupOffset{{Topic: "cdr", Partition: 0, Offset: 1}}); err != nil {
			t.Fatal(err)
		}
		// A later commit overwrites one partition and keeps the others.
		at = at.Add(time.Second)
		if err := s.CommitOffsets(ctx, "mvno-a", "billing", []GroupOffset{{Topic: "cdr", Partition: 0, Offset: 150, Metadata: "again"}}); err != nil {
			t.Fatal(err)
		}
		want := []string{"cdr/0=150 again", "cdr/2=120 m2", "fraud-alerts/0=7 "}
		check := func(st Store, note string) {
			t.Helper()
			got, err := st.GroupOffsets(ctx, "mvno-a", "billing")
			if err != nil {
				t.Fatal(err)
			}
			var have []string
			for _, o := range got {
				have = append(have, fmt.Sprintf("%s/%d=%d %s", o.Topic, o.Partition, o.Offset, o.Metadata))
			}
			if strings.Join(have, ",") != strings.Join(want, ",") {
				t.Fatalf("%s: offsets %v, want %v", note, have, want)
			}
			if !got[0].CommittedAt.Equal(at) || !got[1].CommittedAt.Equal(at.Add(-time.Second)) {
				t.Fatalf("%s: committed at %v and %v, want %v and %v", note, got[0].CommittedAt, got[1].CommittedAt, at, at.Add(-time.Second))
			}
		}
		check(s, "after commits")
		if got, _ := s.GroupOffsets(ctx, "mvno-b", "billing"); len(got) != 1 || got[0].Offset != 5 {
			t.Fatalf("mvno-b's group of the same name: %+v", got)
		}
		if got, _ := s.GroupOffsets(ctx, "mvno-a", "other"); len(got) != 1 || got[0].Offset != 1 {
			t.Fatalf("mvno-a's other group: %+v", got)
		}

		// All or nothing: a batch with an invalid entry changes nothing.
		for _, tc := range []struct {
			note    string
			partner string
			group   string
			offsets []GroupOffset
		}{
			{"negative partition", "mvno-a", "billing", []GroupOffset{{Topic: "cdr", Partition: 0, Offset: 999}, {Topic: "cdr", Partition: -1}}},
			{"empty topic", "mvno-a", "billing", []GroupOffset{{Topic: "cdr", Partition: 0, Offset: 999}, {Topic: ""}}},
			{"metadata too long", "mvno-a", "billing", []GroupOffset{{Topic: "cdr", Partition: 0, Offset: 999}, {Topic: "cdr", Partition: 1, Metadata: strings.Repeat("x", 4097)}}},
			{"duplicate partition", "mvno-a", "billing", []GroupOffset{{Topic: "cdr", Partition: 0, Offset: 999}, {Topic: "cdr", Partition: 0, Offset: 998}}},
			{"empty group", "mvno-a", "", []GroupOffset{{Topic: "cdr", Partition: 0, Offset: 999}}},
			{"bad partner", "Not A Partner", "billing", []GroupOffset{{Topic: "cdr", Partition: 0, Offset: 999}}},
		} {
			if err := s.CommitOffsets(ctx, tc.partner, tc.group, tc.offsets); !errors.Is(err, ErrInvalid) {
				t.Errorf("%s: err %v, want ErrInvalid", tc.note, err)
			}
		}
		if _, err := s.GroupOffsets(ctx, "mvno-a", ""); !errors.Is(err, ErrInvalid) {
			t.Errorf("GroupOffsets of an empty group: err %v, want ErrInvalid", err)
		}
		check(s, "after refused batches")

		// Concurrent commits of one group in opposite partition orders.
		var wg sync.WaitGroup
		errs := make(chan error, 20)
		for i := range 20 {
			wg.Go(func() {
				batch := []GroupOffset{{Topic: "cdr", Partition: 10, Offset: int64(i)}, {Topic: "cdr", Partition: 11, Offset: int64(i)}}
				if i%2 == 1 {
					batch[0], batch[1] = batch[1], batch[0]
				}
				errs <- s.CommitOffsets(ctx, "mvno-c", "race", batch)
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("concurrent commit: %v", err)
			}
		}
		got, err = s.GroupOffsets(ctx, "mvno-c", "race")
		if err != nil || len(got) != 2 || got[0].Offset != got[1].Offset {
			t.Fatalf("after concurrent commits: %+v, %v; want both partitions at the same batch's offset", got, err)
		}

		// Committed offsets survive reopening the database.
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		check(openStore(t, dsn), "after reopening")
	})
}
