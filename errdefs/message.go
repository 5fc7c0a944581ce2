package errdefs

import (
	"strconv"
	"strings"
)

// MaxMessage bounds an error message that leaves the process (a D-Bus
// reply, LastErrorMessage, the history): a caller's 1 MiB argument must not
// come back as a 1 MiB error.
const MaxMessage = 2048

// Message is err's text for a person: a segment repeated by wrapping
// ("corrupt data: corrupt data", when a wrapped error already ends with its
// class and the wrapper names the class again) is said once, and the whole
// is cut at MaxMessage bytes.
func Message(err error) string {
	if err == nil {
		return ""
	}
	parts := strings.Split(err.Error(), ": ")
	out := parts[:1]
	for _, p := range parts[1:] {
		if p == out[len(out)-1] {
			continue
		}
		out = append(out, p)
	}
	msg := strings.Join(out, ": ")
	if len(msg) > MaxMessage {
		msg = strings.ToValidUTF8(msg[:MaxMessage], "") + "…"
	}
	return msg
}

// Quote is s quoted for an error message, cut to at most n bytes of s: an
// operand from outside (a version string, an option's name) is shown, never
// echoed whole.
func Quote(s string, n int) string {
	if len(s) <= n {
		return strconv.Quote(s)
	}
	return strconv.Quote(strings.ToValidUTF8(s[:n], "")) + "… (" + strconv.Itoa(len(s)) + " bytes)"
}
