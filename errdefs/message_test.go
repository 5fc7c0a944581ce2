package errdefs

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestMessage(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{nil, ""},
		{fmt.Errorf("object x: %w: %w", ErrCorrupt, ErrCorrupt), "object x: corrupt data"},
		{fmt.Errorf("fetch: %v: %w", fmt.Errorf("get a: %w", ErrCorrupt), ErrCorrupt), "fetch: get a: corrupt data"},
		{errors.New("a: b: a"), "a: b: a"},
		{errors.New(strings.Repeat("x", 3*MaxMessage)), strings.Repeat("x", MaxMessage) + "…"},
	} {
		if got := Message(tc.err); got != tc.want {
			t.Errorf("Message(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

func TestQuote(t *testing.T) {
	if got, want := Quote("3\n", 8), `"3\n"`; got != want {
		t.Errorf("Quote = %s, want %s", got, want)
	}
	if got, want := Quote(strings.Repeat(" ", 1<<20)+"3", 4), `"    "… (1048577 bytes)`; got != want {
		t.Errorf("Quote = %s, want %s", got, want)
	}
}
