package engine

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"laptop.org/upgrade/atomicfile"
	"laptop.org/upgrade/digest"
	"laptop.org/upgrade/layout"
)

// Journal records the job in progress so that a kill -9 or a power cut
// resumes instead of starting over: a cloned slot is not cloned again, and
// downloads continue from the staging directory.
type Journal struct {
	Job      uint32         `json:"job"`
	Slot     layout.Slot    `json:"slot"`
	Version  layout.Version `json:"version"`
	Manifest digest.Digest  `json:"manifest"`
	Phase    Phase          `json:"phase"`
	Started  time.Time      `json:"started"`
	Updated  time.Time      `json:"updated"`
	// Cloned is set once the clone of the active slot into Slot finished.
	Cloned bool `json:"cloned"`
	// Fetched counts bytes received over all runs of this job.
	Fetched int64 `json:"fetched"`
}

// LoadJournal reads the journal; (nil, nil) when there is none.
func LoadJournal(r layout.Root) (*Journal, error) {
	b, err := os.ReadFile(r.JournalFile())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var j Journal
	if err := json.Unmarshal(b, &j); err != nil {
		// A torn journal cannot happen (atomic writes), but a corrupt one
		// must not wedge upgrades: start over.
		return nil, nil
	}
	return &j, nil
}

// Save writes the journal durably.
func (j *Journal) Save(r layout.Root) error {
	j.Updated = time.Now().UTC()
	b, err := json.MarshalIndent(j, "", " ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(r.JournalFile()), 0755); err != nil {
		return err
	}
	return atomicfile.Write(r.JournalFile(), b, 0644)
}

// ClearJournal removes the journal (job finished or abandoned).
func ClearJournal(r layout.Root) error {
	err := os.Remove(r.JournalFile())
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("clear journal: %w", err)
	}
	return atomicfile.SyncDir(filepath.Dir(r.JournalFile()))
}
