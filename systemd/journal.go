package systemd

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/coreos/go-systemd/v22/journal"
)

// UnderJournal reports whether stderr is connected to the journal
// (JOURNAL_STREAM names stderr's device and inode, as systemd sets it for
// StandardError=journal). A JOURNAL_STREAM inherited by a process whose
// stderr was redirected elsewhere does not count.
func UnderJournal() bool {
	ok, err := journal.StderrIsJournalStream()
	return err == nil && ok && journal.Enabled()
}

// NewLogHandler returns a slog handler that writes to the journal with every
// attribute as a field (job=3 → JOB=3) when stderr is the journal, and plain
// text lines to w otherwise (a terminal, a test, a pipe).
func NewLogHandler(w io.Writer, level slog.Leveler) slog.Handler {
	if UnderJournal() {
		return NewJournalHandler(journal.Send, level)
	}
	return slog.NewTextHandler(w, &slog.HandlerOptions{Level: level, ReplaceAttr: dropTime})
}

// dropTime leaves timestamps to whoever records the lines (journal, test
// runner); they only make plain output harder to read and compare.
func dropTime(groups []string, a slog.Attr) slog.Attr {
	if len(groups) == 0 && a.Key == slog.TimeKey {
		return slog.Attr{}
	}
	return a
}

// SendFunc is journal.Send's shape; tests pass a recorder.
type SendFunc func(message string, priority journal.Priority, vars map[string]string) error

// JournalHandler is a slog.Handler writing native journal entries. Fields
// are the attribute keys upper-cased with every other character turned into
// '_' (journald accepts only [A-Z0-9_], not starting with '_'), prefixed
// with their group names. SYSLOG_IDENTIFIER is the program name, so
// `journalctl -t upgraded JOB=3` finds one job's lines.
type JournalHandler struct {
	send   SendFunc
	level  slog.Leveler
	prefix string
	fields map[string]string
	ident  string

	mu         *sync.Mutex
	failLogged *bool
}

// NewJournalHandler returns a handler that sends through send.
func NewJournalHandler(send SendFunc, level slog.Leveler) *JournalHandler {
	if level == nil {
		level = slog.LevelInfo
	}
	return &JournalHandler{send: send, level: level, fields: map[string]string{},
		ident: filepath.Base(os.Args[0]), mu: &sync.Mutex{}, failLogged: new(bool)}
}

// Enabled implements slog.Handler.
func (h *JournalHandler) Enabled(_ context.Context, l slog.Level) bool {
	return l >= h.level.Level()
}

// Handle implements slog.Handler.
func (h *JournalHandler) Handle(_ context.Context, r slog.Record) error {
	vars := make(map[string]string, len(h.fields)+r.NumAttrs()+1)
	for k, v := range h.fields {
		vars[k] = v
	}
	r.Attrs(func(a slog.Attr) bool {
		addField(vars, h.prefix, a)
		return true
	})
	vars["SYSLOG_IDENTIFIER"] = h.ident
	err := h.send(r.Message, priority(r.Level), vars)
	if err != nil {
		// The journal is gone (journald restarting): say so once on
		// stderr, which systemd also collects.
		h.mu.Lock()
		first := !*h.failLogged
		*h.failLogged = true
		h.mu.Unlock()
		if first {
			fmt.Fprintf(os.Stderr, "journal: %v; message: %s\n", err, r.Message)
		}
	}
	return err
}

// WithAttrs implements slog.Handler.
func (h *JournalHandler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.fields = make(map[string]string, len(h.fields)+len(as))
	for k, v := range h.fields {
		c.fields[k] = v
	}
	for _, a := range as {
		addField(c.fields, h.prefix, a)
	}
	return &c
}

// WithGroup implements slog.Handler.
func (h *JournalHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	c := *h
	c.prefix = h.prefix + name + "_"
	return &c
}

func addField(vars map[string]string, prefix string, a slog.Attr) {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return
	}
	if a.Value.Kind() == slog.KindGroup {
		p := prefix
		if a.Key != "" {
			p += a.Key + "_"
		}
		for _, g := range a.Value.Group() {
			addField(vars, p, g)
		}
		return
	}
	if k := FieldName(prefix + a.Key); k != "" {
		vars[k] = a.Value.String()
	}
}

// FieldName turns an attribute key into a valid journal field name, or ""
// when nothing valid remains.
func FieldName(key string) string {
	b := []byte(strings.ToUpper(key))
	for i, c := range b {
		if !('A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			b[i] = '_'
		}
	}
	s := strings.TrimLeft(string(b), "_")
	if len(s) > 64 {
		s = s[:64]
	}
	return s
}

// priority maps slog levels onto syslog priorities.
func priority(l slog.Level) journal.Priority {
	switch {
	case l >= slog.LevelError:
		return journal.PriErr
	case l >= slog.LevelWarn:
		return journal.PriWarning
	case l >= slog.LevelInfo:
		return journal.PriInfo
	}
	return journal.PriDebug
}
