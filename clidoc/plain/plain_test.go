package plain

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
)

// TestExecute: mistakes exit 2 with the usage and never run; --help and
// --version print on stdout; a failure is printed once and exits 1.
func TestExecute(t *testing.T) {
	for _, tc := range []struct {
		args           []string
		code           int
		ran            bool
		stdout, stderr string // each must contain this
	}{
		{nil, 0, true, "", ""},
		{[]string{"--n", "3"}, 0, true, "", ""},
		{[]string{"--fail"}, 1, true, "", "tool: it failed\n"},
		{[]string{"--help"}, 0, false, "Tool does things.\n\nUsage:\n  tool [flags]", ""},
		{[]string{"-h"}, 0, false, "--n int", ""},
		{[]string{"--version"}, 0, false, "tool ", ""},
		{[]string{"extra"}, 2, false, "", `tool: tool takes no arguments (got "extra")`},
		{[]string{"--bogus"}, 2, false, "", "unknown flag: --bogus"},
		{[]string{"--n", "x"}, 2, false, "", "invalid argument"},
		{[]string{"-v"}, 0, true, "", ""}, // the command's own -v, not --version
	} {
		var ran bool
		var fail bool
		c := New("tool", "does things", "Tool does things.", func(context.Context) error {
			ran = true
			if fail {
				return errors.New("it failed")
			}
			return nil
		})
		c.Flags.Int("n", 0, "a number")
		c.Flags.BoolVar(&fail, "fail", false, "fail")
		c.Flags.BoolP("verbose", "v", false, "more")
		var out, errb bytes.Buffer
		code := c.Execute(context.Background(), tc.args, &out, &errb)
		if code != tc.code || ran != tc.ran || !strings.Contains(out.String(), tc.stdout) || !strings.Contains(errb.String(), tc.stderr) {
			t.Errorf("%q: code %d ran %v stdout %q stderr %q; want code %d ran %v, stdout with %q, stderr with %q",
				tc.args, code, ran, out.String(), errb.String(), tc.code, tc.ran, tc.stdout, tc.stderr)
		}
		if tc.code == ExitUsage && (!strings.Contains(errb.String(), "Usage:") || strings.Contains(errb.String(), "Tool does things")) {
			t.Errorf("%q: a mistake shows the usage, not the description: %q", tc.args, errb.String())
		}
		if tc.code == ExitFail && strings.Count(errb.String(), "it failed") != 1 {
			t.Errorf("%q: the error is printed %d times", tc.args, strings.Count(errb.String(), "it failed"))
		}
	}
}
