// Package initrd is the upgrade system's PID 1 in the initramfs: it mounts
// the root filesystem, picks the slot (boot counting, fallback, the firmware's
// command-line override) with package bootptr, points R/current at it, and
// switches to the real init.
//
// It exists so that the slot choice happens before anything runs from a slot:
// the running system's current never changes under it. It must never write
// anything in a slot, never write the boot pointer except to consume a trial
// try or record a fallback (a normal boot writes nothing), and never exit —
// PID 1 exiting panics the kernel, so every failure ends in a console message
// and a reboot, which is what lets boot counting fall back without a person.
//
// The work is a table of named steps (Plan), each error wrapped with its
// step's name so the console line says where the boot stopped.
package initrd

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"laptop.org/upgrade/bootptr"
)

// State is what the steps share. Prefix is "/" at boot; tests point it at a
// temp dir inside a private mount namespace to run the real steps.
type State struct {
	Prefix      string
	Console     io.Writer
	ReadCmdline func() (string, error) // nil: read Prefix/proc/cmdline
	Start       time.Time

	Cmdline    Cmdline
	RawCmdline string // as read, for the command line of a kexec
	RootDev    string
	RootFSType string
	// rootWritable says NewRoot is mounted read-write (see makeWritable).
	rootWritable bool
	// DeviceWait is the time find-root spent waiting for the root device
	// to appear: from the first scan's start to the start of the scan that
	// found it (zero when the first scan finds it). The boot-cost figure
	// subtracts it and nothing else.
	DeviceWait time.Duration
	Wait       DeviceWait // the details, for upgrade.timing
	Decision   bootptr.Decision
	Switch     *KernelSwitch // set by choose-kernel when the slot's kernel is not the running one
	Steps      []StepTime    // per finished step, for the console and the bench
	Modules    []ModuleTime  // per module, from load-modules
}

// StepTime is how long one step took.
type StepTime struct {
	Name string
	D    time.Duration
}

// NewRoot is where the root filesystem is mounted before the switch.
func (s *State) NewRoot() string { return filepath.Join(s.Prefix, "newroot") }

func (s *State) logf(format string, args ...any) {
	fmt.Fprintf(s.Console, "upgrade-init: "+format+"\n", args...)
}

func (s *State) since() time.Duration { return time.Since(s.Start) }

// Step is one named piece of the boot.
type Step struct {
	Name string
	Run  func(*State) error
}

func (st Step) String() string { return st.Name }

// Plan is the whole boot, in order. The namespace test runs it without the
// steps that only make sense in a real initramfs (see HostSafe).
func Plan() []Step {
	return []Step{
		{"mount-early", mountEarly},
		{"cmdline", readCmdline},
		{"load-modules", loadModules},
		{"find-root", findRoot},
		{"mount-root", mountRoot},
		{"choose-slot", chooseSlot},
		{"choose-kernel", chooseKernel},
		{"kexec", kexecKernel},
		{"set-current", setCurrent},
		{"move-mounts", moveMounts},
		{"remount-ro", remountReadOnly},
		{"switch-root", switchRoot},
		{"exec-init", execInit},
	}
}

// hostUnsafe names the steps a test on a developer's machine must leave out:
// loading modules changes the host kernel, kexec would reboot the host, and
// switch_root/exec would replace the test process.
var hostUnsafe = map[string]bool{"load-modules": true, "kexec": true, "switch-root": true, "exec-init": true}

// HostSafe is Plan without the steps that act on the whole machine.
func HostSafe() []Step {
	var steps []Step
	for _, st := range Plan() {
		if !hostUnsafe[st.Name] {
			steps = append(steps, st)
		}
	}
	return steps
}

// StepError says which step failed.
type StepError struct {
	Step string
	Err  error
}

func (e *StepError) Error() string { return "step " + e.Step + ": " + e.Err.Error() }
func (e *StepError) Unwrap() error { return e.Err }

// Run runs steps in order and stops at the first error.
func Run(s *State, steps []Step) error {
	for _, st := range steps {
		t0 := time.Now()
		if err := st.Run(s); err != nil {
			return &StepError{Step: st.Name, Err: err}
		}
		s.Steps = append(s.Steps, StepTime{st.Name, time.Since(t0)})
	}
	return nil
}

func readCmdline(s *State) error {
	read := s.ReadCmdline
	if read == nil {
		read = func() (string, error) {
			b, err := os.ReadFile(filepath.Join(s.Prefix, "proc", "cmdline"))
			return string(b), err
		}
	}
	line, err := read()
	if err != nil {
		return err
	}
	s.RawCmdline = strings.TrimSpace(line)
	s.Cmdline = ParseCmdline(s.RawCmdline)
	return nil
}
