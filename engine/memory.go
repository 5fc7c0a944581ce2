package engine

import (
	"math"
	"runtime/debug"
	"sync"
)

// JobMemoryLimit is the Go runtime's soft memory limit while a job runs,
// plus jobBytesPerEntry for every manifest entry the job holds, unless the
// process set one itself (GOMEMLIMIT or debug.SetMemoryLimit). A job's live
// heap is far below what it allocates on the way, and the limit has the
// collector run earlier instead of letting the heap double; it is soft and
// scaled by the tree, so a large tree never makes the collector run without
// end. Figures: bench/results.md, "Memory of a job".
var JobMemoryLimit int64 = 14 << 20

// jobBytesPerEntry is what a manifest entry costs while a job runs (the
// entry in two manifests, its share of the plan and the delivery list).
const jobBytesPerEntry = 500

var memMu sync.Mutex
var memJobs int
var memPrev int64
var tightened int // tighten calls not undone yet
var tightPrev int // GOGC before the first of them

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

// bigGCPercent is the collector's GOGC while a large delta applies
// (tighten): its base's resident pages come on top of the heap then.
const bigGCPercent = 50

// tighten has the collector keep the heap closer to its live size (GOGC
// bigGCPercent) until the returned function is called, if a job is
// running (limitMemory), and returns the heap's free pages to the system.
// The heap otherwise grows to twice its live part between collections,
// about 10 MB more at a Go pair's peak; a lower memory limit for the
// whole job bought the same peak with four times the collections.
func tighten() func() {
	memMu.Lock()
	if memJobs == 0 {
		memMu.Unlock()
		return func() {}
	}
	if tightened++; tightened == 1 {
		tightPrev = debug.SetGCPercent(bigGCPercent)
		if tightPrev < bigGCPercent {
			debug.SetGCPercent(tightPrev) // the process asked for tighter itself
		}
	}
	memMu.Unlock()
	// The pages a collection frees stay resident until the scavenger
	// returns them, slowly: return them now.
	debug.FreeOSMemory()
	return func() {
		memMu.Lock()
		defer memMu.Unlock()
		if tightened--; tightened == 0 {
			debug.SetGCPercent(tightPrev)
		}
	}
}
