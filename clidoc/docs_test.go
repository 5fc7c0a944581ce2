//go:build clidoc

package clidoc

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDocs: the hidden docs command writes a page per command and the
// extra pages, and bash completion.
func TestDocs(t *testing.T) {
	var ran []string
	root := tree(&ran)
	dir := t.TempDir()
	if code := Execute(context.Background(), root, []string{"__docs", "--man", dir, "--completion", filepath.Join(dir, "bc")}, os.Stderr, nil); code != 0 {
		t.Fatalf("code %d", code)
	}
	for _, f := range []string{"man1/tool.1", "man1/tool-do.1", "bc/tool"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil || len(b) == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
	page, _ := os.ReadFile(filepath.Join(dir, "man1/tool-do.1"))
	if !strings.Contains(string(page), "a number") {
		t.Errorf("tool-do.1 lacks the flag's help:\n%s", page)
	}
}
