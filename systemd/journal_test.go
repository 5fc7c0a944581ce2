package systemd

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/coreos/go-systemd/v22/journal"
	"github.com/google/go-cmp/cmp"
)

type entry struct {
	Msg  string
	Prio journal.Priority
	Vars map[string]string
}

func TestJournalHandler(t *testing.T) {
	var got []entry
	h := NewJournalHandler(func(m string, p journal.Priority, v map[string]string) error {
		got = append(got, entry{m, p, v})
		return nil
	}, slog.LevelInfo)
	h.ident = "upgraded"
	l := slog.New(h)
	l.Debug("hidden")
	l.With("job", 3).Info("phase", "phase", "downloading", "version", "2", "bytes-done", int64(4096))
	l.WithGroup("net").Warn("link lost", "if", "veth0")
	l.Error("failed", slog.Group("err", "name", "Network"), "_x", "y")
	want := []entry{
		{"phase", journal.PriInfo, map[string]string{"JOB": "3", "PHASE": "downloading", "VERSION": "2", "BYTES_DONE": "4096", "SYSLOG_IDENTIFIER": "upgraded"}},
		{"link lost", journal.PriWarning, map[string]string{"NET_IF": "veth0", "SYSLOG_IDENTIFIER": "upgraded"}},
		{"failed", journal.PriErr, map[string]string{"ERR_NAME": "Network", "X": "y", "SYSLOG_IDENTIFIER": "upgraded"}},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("entries (-want +got):\n%s", d)
	}
}

func TestFieldName(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"job", "JOB"}, {"bytes.done", "BYTES_DONE"}, {"__x", "X"}, {"", ""}, {"ü", ""}, {"a1", "A1"},
	} {
		if got := FieldName(tc.in); got != tc.want {
			t.Errorf("FieldName(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestPlainWithoutJournal: outside systemd (and with a JOURNAL_STREAM that
// does not name our stderr) the log is plain text.
func TestPlainWithoutJournal(t *testing.T) {
	for _, js := range []string{"", "1:2"} {
		t.Setenv("JOURNAL_STREAM", js)
		var b bytes.Buffer
		slog.New(NewLogHandler(&b, slog.LevelInfo)).Info("ready", "job", 1)
		if got := b.String(); !strings.Contains(got, "msg=ready job=1") || strings.Contains(got, "time=") {
			t.Fatalf("JOURNAL_STREAM=%q: got %q", js, got)
		}
	}
}
