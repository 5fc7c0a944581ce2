package daemon

import (
	"encoding/json"
	"errors"
	"os"
	"time"

	"laptop.org/upgrade/layout"
	"laptop.org/upgrade/report"
)

// State is the daemon's phase as clients see it (property State): one
// type with the engine's phases, which a running job reports as they are,
// and the daemon's own around them.
type State = report.Phase

const (
	StateIdle          State = "idle"
	StateChecking            = report.PhaseChecking
	StateCloning             = report.PhaseCloning
	StateDownloading         = report.PhaseDownloading
	StateApplying            = report.PhaseApplying
	StateVerifying           = report.PhaseVerifying
	StateActivating    State = "activating"
	StateReadyToReboot State = "ready-to-reboot"
	StateRollingBack   State = "rolling-back"
)

// busy reports whether the daemon works in state st (a job, a check, a
// rollback) rather than waits.
func busy(st State) bool { return st != StateIdle && st != StateReadyToReboot }

// installedVersion is the version slot holds, "" when it holds none.
func installedVersion(r layout.Root, slot layout.Slot) string {
	v, err := r.InstalledVersion(slot)
	if err != nil {
		return ""
	}
	return v.String()
}

// Status is the daemon's whole state as clients see it, as one snapshot
// (daemon/bus publishes it as the properties of org.laptop.Upgrade1).
type Status struct {
	State            State
	Job              uint32
	Progress         uint32
	BytesDone        uint64
	BytesTotal       uint64
	CurrentVersion   string
	AvailableVersion string
	TargetVersion    string
	BootedSlot       string
	NextBootSlot     string
	NextBootVersion  string
	LastCheck        uint64
	LastError        string
	LastErrorMessage string
	BootFailure      string
	Drift            []string
	// Of AvailableVersion, from the signed index at the last check.
	AvailableName string
	ReleaseNotes  string
	DownloadBytes uint64 // still to download for it (0 when staged)
	Channel       string // the channel followed (SetChannel, else the config)
}

// HistoryEntry is one finished job.
type HistoryEntry struct {
	Job      uint32    `json:"job"`
	Version  string    `json:"version"`
	Success  bool      `json:"success"`
	Error    string    `json:"error_name,omitempty"`
	Message  string    `json:"message,omitempty"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	Fetched  int64     `json:"fetched"`
	Resumed  bool      `json:"resumed,omitempty"`
}

// Running is the job in progress, persisted so a restart resumes it.
type Running struct {
	Job     uint32         `json:"job"`
	Version layout.Version `json:"version"`
	Opts    JobOpts        `json:"opts"`
	Started time.Time      `json:"started"`
	Fetched int64          `json:"fetched"`
}

// persisted is the daemon's durable state (R/var/lib/upgrade/daemon.json).
type persisted struct {
	NextJob          uint32  `json:"next_job"`
	LastCheck        uint64  `json:"last_check"`
	AvailableVersion string  `json:"available_version"`
	Available        Release `json:"available,omitempty"`
	// Channel is the channel set with SetChannel ("" = the config's).
	Channel          string         `json:"channel,omitempty"`
	LastError        string         `json:"last_error"`
	LastErrorMessage string         `json:"last_error_message"`
	Running          *Running       `json:"running,omitempty"`
	History          []HistoryEntry `json:"history"`
}

// Release describes AvailableVersion as the last check saw it.
type Release struct {
	Name          string `json:"name,omitempty"`
	Notes         string `json:"notes,omitempty"`
	DownloadBytes uint64 `json:"download_bytes,omitempty"`
}

const maxHistory = 50

func loadPersisted(path string) (persisted, error) {
	var p persisted
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return persisted{NextJob: 1}, nil
	}
	if err != nil {
		return p, err
	}
	if err := json.Unmarshal(b, &p); err != nil {
		// Corrupt state must not keep the daemon down; history is lost.
		return persisted{NextJob: 1}, nil
	}
	if p.NextJob == 0 {
		p.NextJob = 1
	}
	return p, nil
}
