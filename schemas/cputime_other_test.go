//go:build !linux

package schemas

import "time"

// threadCPU is not available here; benchmarks then omit cpu-ns/record.
func threadCPU() time.Duration { return 0 }
