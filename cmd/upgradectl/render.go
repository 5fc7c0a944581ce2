package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/godbus/dbus/v5"
	"golang.org/x/sys/unix"
)

// renderer draws progress: a bar on a terminal, a line per change of phase
// (and every 10 %) otherwise, JSON lines with --json.
type renderer struct {
	c         *cli
	job       uint32
	tty       bool
	width     func() int // the terminal's columns, asked at every frame (it may be resized)
	staged    bool       // --download-only: the job ends staged, not booting next
	lastState string
	lastPct   uint32
	lastBytes uint64
	lastT     time.Time
	rate      float64
	drawn     bool
}

func newRenderer(c *cli, job uint32) *renderer {
	fd := int(c.out.Fd())
	_, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	width := func() int {
		ws, err := unix.IoctlGetWinsize(fd, unix.TIOCGWINSZ)
		if err != nil || ws.Col == 0 {
			return 80
		}
		return int(ws.Col)
	}
	return &renderer{c: c, job: job, tty: err == nil && !c.json, width: width, lastT: time.Now()}
}

// ours: the snapshot taken before the job started still describes the
// previous job (its "100% ready-to-reboot"); nothing is drawn until the
// daemon reports this job.
func (r *renderer) ours(m map[string]dbus.Variant) bool {
	j, _ := m["Job"].Value().(uint32)
	return j == r.job
}

func (r *renderer) update(m map[string]dbus.Variant) {
	if !r.ours(m) {
		return
	}
	state := str(m, "State")
	pct, _ := m["Progress"].Value().(uint32)
	done, _ := m["BytesDone"].Value().(uint64)
	total, _ := m["BytesTotal"].Value().(uint64)
	now := time.Now()
	if dt := now.Sub(r.lastT).Seconds(); dt > 0.2 && done >= r.lastBytes {
		inst := float64(done-r.lastBytes) / dt
		r.rate = 0.7*r.rate + 0.3*inst
		r.lastBytes, r.lastT = done, now
	}
	switch {
	case r.c.json:
		if state != r.lastState || pct != r.lastPct {
			r.c.emit(map[string]any{"event": "progress", "job": r.job, "state": state, "progress": pct, "bytes_done": done, "bytes_total": total})
		}
	case r.tty:
		line := barLine(r.width(), state, pct, done, total, r.rate)
		// \r, the line, then clear to the end: a shorter line leaves
		// nothing of the longer one before it.
		fmt.Fprintf(r.c.out, "\r%s\x1b[K", line)
		r.drawn = true
	default:
		if state == "idle" && r.lastState == "" {
			break
		}
		if state != r.lastState || pct/10 != r.lastPct/10 {
			fmt.Fprintf(r.c.out, "job %d: %s %d%%", r.job, state, pct)
			if total > 0 && state == "downloading" {
				fmt.Fprintf(r.c.out, " (%s of %s)", human(done), human(total))
			}
			fmt.Fprintln(r.c.out)
		}
	}
	r.lastState, r.lastPct = state, pct
}

// barLine is one frame of the progress bar, at most width-1 columns (a
// line that fills the last column wraps on some terminals): the bar
// shrinks first, then the details are dropped.
func barLine(width int, state string, pct uint32, done, total uint64, rate float64) string {
	detail := ""
	if total > 0 && state == "downloading" {
		detail = fmt.Sprintf(" %s/%s %s/s", human(done), human(total), human(uint64(rate)))
		if rate > 0 && total > done {
			detail += " ETA " + (time.Duration(float64(total-done)/rate) * time.Second / time.Second * time.Second).String()
		}
	}
	max := width - 1
	text := fmt.Sprintf(" %3d%% %s", pct, state)
	bar := max - len(text) - len(detail) - 2
	if bar > 30 {
		bar = 30
	}
	if bar < 10 {
		detail = ""
		bar = min(30, max-len(text)-2)
	}
	line := text + detail
	if bar >= 5 {
		fill := int(pct) * bar / 100
		line = "[" + strings.Repeat("#", fill) + strings.Repeat(".", bar-fill) + "]" + line
	}
	if len(line) > max && max > 0 {
		line = line[:max]
	}
	return line
}

func (r *renderer) finishLine() {
	if r.drawn {
		fmt.Fprintln(r.c.out)
		r.drawn = false
	}
}

func (r *renderer) finished(ok bool, name, msg string, m map[string]dbus.Variant) {
	r.finishLine()
	if r.c.json {
		r.c.emit(map[string]any{"event": "finished", "job": r.job, "success": ok, "error_name": name, "message": msg, "next_boot_slot": str(m, "NextBootSlot"), "next_boot_version": str(m, "NextBootVersion")})
		return
	}
	switch {
	case !ok:
		fmt.Fprintf(r.c.out, "job %d failed: %s\n", r.job, msg)
	case r.staged || str(m, "NextBootSlot") == str(m, "BootedSlot"):
		// Built but not booting next: a download-only job (also when
		// followed with watch).
		fmt.Fprintf(r.c.out, "job %d finished: version %s is staged; `upgradectl apply` makes it the next boot\n", r.job, str(m, "TargetVersion"))
	default:
		fmt.Fprintf(r.c.out, "job %d finished: version %s is ready in slot %s; restart to use it\n", r.job, or(str(m, "NextBootVersion"), str(m, "TargetVersion")), str(m, "NextBootSlot"))
	}
}
