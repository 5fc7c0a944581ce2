package clidoc

import (
	"bytes"
	"context"
	"errors"
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
