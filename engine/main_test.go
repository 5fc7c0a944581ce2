package engine_test

import (
	"os"
	"testing"

	"laptop.org/upgrade/internal/testrepo"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testrepo.Cleanup()
	os.Exit(code)
}
