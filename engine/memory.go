package engine

import (
	"math"
	"runtime/debug"
	"sync"
)

// JobMemoryLimit is the Go runtime's soft memory limit while a job runs,
// unless the process set one itself (GOMEMLIMIT or debug.SetMemoryLimit),
// plus jobBytesPerEntry for every entry of the manifests the job holds. An
// upgrade's live heap is ~20-30 MiB for a 15k-file tree (two manifests, the
// delivery list, a frame of delta output, a pack's decoder window) but it
// allocates hundreds of MiB on the way; with the default GOGC alone the
// heap grew to twice the live set and the resident set past 90 MiB. The
// limit makes the collector run earlier instead (about twice as often: a
// few percent of CPU). It is soft, and scaled by the tree's size, so that
// a larger tree does not make the collector run without end. The delta
// frame buffers live outside the heap (delta/framebuf.go) and outside this
// limit: it was 16 MiB while they were garbage on the heap, and the
// collector then ran ~60 times in a 2 s upgrade of the Go pair; with them
// out it runs ~17 times under 14 MiB, at the same peak resident set.
var JobMemoryLimit int64 = 14 << 20

// jobBytesPerEntry is what a manifest entry costs while a job runs (the
// entry in two manifests, its share of the plan and the delivery list).
const jobBytesPerEntry = 500

var memMu sync.Mutex
var memJobs int
var memPrev int64

// limitMemory applies the job memory limit for a job holding manifests of
// entries entries in all, for the duration of the job; the returned
// function undoes it when the last concurrent job ends and gives the freed
// memory back to the system (an idle daemon stays small).
func limitMemory(entries int) func() {
	memMu.Lock()
	defer memMu.Unlock()
	if memJobs == 0 {
		memPrev = debug.SetMemoryLimit(-1)
		if memPrev == math.MaxInt64 && JobMemoryLimit > 0 {
			debug.SetMemoryLimit(JobMemoryLimit + jobBytesPerEntry*int64(entries))
		}
	}
	memJobs++
	return func() {
		memMu.Lock()
		defer memMu.Unlock()
		if memJobs--; memJobs == 0 {
			debug.SetMemoryLimit(memPrev)
			debug.FreeOSMemory()
		}
	}
}
