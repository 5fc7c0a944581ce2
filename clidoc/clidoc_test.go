package clidoc

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

func tree(ran *[]string) *cobra.Command {
	root := &cobra.Command{Use: "tool", Args: NoArgs, RunE: func(*cobra.Command, []string) error { return Usage("no command given") }}
	var n int
	sub := &cobra.Command{Use: "do [X]", Args: cobra.MaximumNArgs(1), RunE: func(_ *cobra.Command, a []string) error {
		*ran = append(*ran, strings.Join(a, ","))
		switch strings.Join(a, "") {
		case "fail":
			return errors.New("it failed")
		case "three":
			return &ExitError{Code: 3, Err: errors.New("nothing")}
		}
		return nil
	}}
	sub.Flags().IntVar(&n, "n", 0, "a number")
	root.AddCommand(sub)
	Prepare(root, Docs{Section: "1"})
	return root
}

// TestExecute: usage mistakes exit 2 with the usage, a command's failure
// 1 or its own code, and the command never runs on a usage mistake.
func TestExecute(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		code   int
		ran    bool
		stderr string
	}{
		{[]string{"do"}, 0, true, ""},
		{[]string{"do", "--n", "3", "x"}, 0, true, ""},
		{[]string{"do", "x", "--n", "3"}, 0, true, ""}, // flags after arguments
		{[]string{}, 2, false, "no command given"},
		{[]string{"bogus"}, 2, false, `unknown command "bogus"`},
		{[]string{"do", "a", "b"}, 2, false, "accepts at most 1 arg"},
		{[]string{"do", "--bogus"}, 2, false, "unknown flag: --bogus"},
		{[]string{"do", "--n", "x"}, 2, false, "invalid argument"},
		{[]string{"do", "fail"}, 1, true, "tool: it failed"},
		{[]string{"do", "three"}, 3, true, "tool: nothing"},
		{[]string{"--version"}, 0, false, ""},
		{[]string{"do", "--help"}, 0, false, ""},
	} {
		var ran []string
		var stderr bytes.Buffer
		root := tree(&ran)
		root.SetOut(&bytes.Buffer{})
		code := Execute(context.Background(), root, tc.args, &stderr, nil)
		if code != tc.code || (len(ran) > 0) != tc.ran || !strings.Contains(stderr.String(), tc.stderr) {
			t.Errorf("%q: code %d ran %v stderr %q; want code %d ran %v stderr with %q", tc.args, code, ran, stderr.String(), tc.code, tc.ran, tc.stderr)
		}
		if tc.code == 2 && !strings.Contains(stderr.String(), "Usage:") {
			t.Errorf("%q: no usage on stderr: %q", tc.args, stderr.String())
		}
	}
}

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
