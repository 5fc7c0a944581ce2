package e2e

import (
	"testing"

	"laptop.org/upgrade/internal/testtree"
)

// snapshot records every entry under dir (internal/testtree.Snapshot).
func snapshot(t *testing.T, dir string) map[string]testtree.Node {
	return testtree.Snapshot(t, dir, nil)
}
