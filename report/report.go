// Package report holds what a job reports as it runs and at its end:
// phase, progress and result. It is plain data, shared by the engine that
// runs a job (in a worker process) and by the daemon that relays it over
// D-Bus, so that the daemon can speak of a job without linking the engine.
package report

import (
	"laptop.org/upgrade/clone"
	"laptop.org/upgrade/layout"
)

// Phase is where a job is.
type Phase string

const (
	PhaseChecking    Phase = "checking"
	PhaseCloning     Phase = "cloning"
	PhaseDownloading Phase = "downloading"
	PhaseApplying    Phase = "applying"
	PhaseVerifying   Phase = "verifying"
	PhaseDone        Phase = "done"
)

// Progress is reported as a job moves; callers throttle it.
type Progress struct {
	Phase      Phase
	BytesDone  int64
	BytesTotal int64
	ItemsDone  int
	ItemsTotal int
}

// Percent of the whole job, weighting download by bytes.
func (p Progress) Percent() float64 {
	base := map[Phase]float64{PhaseChecking: 0, PhaseCloning: 2, PhaseDownloading: 10, PhaseApplying: 80, PhaseVerifying: 90, PhaseDone: 100}[p.Phase]
	span := map[Phase]float64{PhaseCloning: 8, PhaseDownloading: 70, PhaseApplying: 10, PhaseVerifying: 10}[p.Phase]
	frac := 0.0
	switch {
	case p.BytesTotal > 0:
		frac = float64(p.BytesDone) / float64(p.BytesTotal)
	case p.ItemsTotal > 0:
		frac = float64(p.ItemsDone) / float64(p.ItemsTotal)
	}
	if frac > 1 {
		frac = 1
	}
	return base + span*frac
}

// Source says where a file's content comes from.
type Source int

const (
	// Keep: the clone already holds the right inode (shared with the active slot).
	Keep Source = iota
	// Link: the content and metadata exist at another path of the active slot
	// (a moved or renamed file): hard-link it, no download.
	Link
	// Copy: the content exists locally but the metadata differs (mode, owner,
	// xattr): copy into a new inode, never chmod a shared one.
	Copy
	// Delta: patch a local base with a downloaded delta.
	Delta
	// Object: download the whole compressed object.
	Object
)

func (s Source) String() string {
	return [...]string{"keep", "link", "copy", "delta", "object"}[s]
}

// Result describes a finished (or planned) upgrade.
type Result struct {
	Slot          layout.Slot
	From, Version layout.Version
	Name, Notes   string // of Version, from the signed index
	Resumed       bool
	AlreadyReady  bool // the inactive slot already held and verified this version
	Counts        [Object + 1]int
	DownloadBytes int64 // planned (remaining) download
	Fetched       int64 // bytes received in this run
	NeedBytes     int64
	FreeBytes     int64
	NeedInodes    int64
	FreeInodes    int64
	Drift         []clone.Drift
	// Clone is what the clone did in this run (zero when a resumed job
	// found it done): it links only the files the target keeps.
	Clone clone.Result
}
