package initrd

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// report prints what the boot cost, just before exec of the real init:
// the one line every boot prints, and with upgrade.timing on the command
// line a line per step and per module, which make bench-initrd parses.
//
// "ready" is measured from State.Start (the first statement of /init's
// main, after the Go runtime has started) to this call; the device wait
// (see State.DeviceWait) is reported and subtracted, nothing else is.
func (s *State) report(ready time.Duration) {
	s.logf("ready in %d ms (device wait %d ms, total %d ms)",
		(ready - s.DeviceWait).Milliseconds(), s.DeviceWait.Milliseconds(), ready.Milliseconds())
	var compact []string
	for _, st := range s.Steps {
		compact = append(compact, fmt.Sprintf("%s=%d", st.Name, st.D.Milliseconds()))
	}
	s.logf("step ms: %s", strings.Join(compact, " "))
	if !s.Cmdline.Timing {
		return
	}
	s.logf("timing ready %s device-wait %s total %s", ms(ready-s.DeviceWait), ms(s.DeviceWait), ms(ready))
	if d, err := s.preMain(); err != nil {
		s.logf("timing pre-main unknown: %v", err)
	} else {
		s.logf("timing pre-main %s", ms(d))
	}
	for _, st := range s.Steps {
		s.logf("step %s %s", st.Name, ms(st.D))
	}
	if s.Wait.Scans > 0 {
		s.logf("timing find-root scans %d uevents %v first miss %q", s.Wait.Scans, s.Wait.Uevents, s.Wait.FirstMiss)
	}
	for _, m := range s.Modules {
		s.logf("module %s round %d %s", m.File, m.Round, ms(m.D))
	}
}

// ms formats d in milliseconds with 0.01 ms resolution: the native steps
// take well under a millisecond each.
func ms(d time.Duration) string {
	return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000)
}

// kmsgRunInit is what the kernel logs just before it execs /init.
const kmsgRunInit = "Run /init as init process"

// preMain measures the time from the kernel's exec of /init to State.Start
// (ELF loading and the Go runtime's start), which no clock inside main can
// see. The kernel stamps its "Run /init" record and any record written to
// /dev/kmsg with one clock (both the TSC on x86); a marker written now,
// stamped by the kernel and read back, ties that clock to ours. Being
// descheduled between reading our clock and the write only adds time, so of
// a few markers the smallest figure is the truest. It reads kmsg, so it
// runs only with upgrade.timing, after "ready" has been taken.
func (s *State) preMain() (time.Duration, error) {
	if s.Prefix != "/" {
		return 0, fmt.Errorf("not the initramfs")
	}
	// Raw calls: an *os.File on kmsg would park a read in Go's poller
	// instead of returning EAGAIN at the end of the records.
	fd, err := unix.Open("/dev/kmsg", unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	markers := map[string]time.Duration{}
	for i := range 3 {
		marker := fmt.Sprintf("upgrade-init: clock %d", i)
		now := time.Now()
		if _, err := unix.Write(fd, []byte(marker+"\n")); err != nil {
			return 0, err
		}
		markers[marker] = now.Sub(s.Start)
	}
	return PreMainFromKmsg(kmsgReader(fd), markers)
}

type kmsgReader int

func (k kmsgReader) Read(b []byte) (int, error) {
	n, err := unix.Read(int(k), b)
	if err == nil && n == 0 {
		return 0, io.EOF
	}
	return n, err
}

// PreMainFromKmsg reads kmsg records ("prio,seq,usec,flags;text") until
// none is left. markers maps each marker's text to the time since
// State.Start just before it was written; the result is the smallest
// (marker's stamp - "Run /init"'s stamp - time since start).
func PreMainFromKmsg(r io.Reader, markers map[string]time.Duration) (time.Duration, error) {
	var run int64 = -1
	stamps := map[string]int64{}
	buf := make([]byte, 8192)
	for {
		n, err := r.Read(buf) // one record per read
		if err != nil {
			if errors.Is(err, unix.EPIPE) { // overwritten record: go on
				continue
			}
			break // EAGAIN: all read (or EOF in a test)
		}
		head, text, ok := strings.Cut(string(buf[:n]), ";")
		f := strings.Split(head, ",")
		if !ok || len(f) < 3 {
			continue
		}
		usec, err := strconv.ParseInt(f[2], 10, 64)
		if err != nil {
			continue
		}
		text, _, _ = strings.Cut(text, "\n")
		if strings.HasPrefix(text, kmsgRunInit) {
			run = usec
		} else if _, ok := markers[text]; ok {
			stamps[text] = usec
		}
	}
	if run < 0 || len(stamps) == 0 {
		return 0, fmt.Errorf("kmsg lacks %q or the markers (ring buffer wrapped?)", kmsgRunInit)
	}
	best := time.Duration(-1)
	for text, usec := range stamps {
		d := time.Duration(usec-run)*time.Microsecond - markers[text]
		if best < 0 || d < best {
			best = d
		}
	}
	if best < 0 {
		return 0, fmt.Errorf("kmsg clock and ours disagree (pre-main %v)", best)
	}
	return best, nil
}
