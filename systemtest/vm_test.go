package systemtest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// bootTimeout bounds one qemu run: a Debian boot under TCG on a loaded
// 2-core machine takes one to two minutes, a whole upgrade a few more.
const bootTimeout = 20 * time.Minute

// env is what `make systemtest` hands the tests.
type env struct {
	image string // build/image
	bin   string // make build's bin/
	port  string // the port the guest's upgraded.conf names
}

// getEnv returns the environment; without UPGRADE_SYSTEMTEST the test skips
// (plain go test ./...), with it anything missing is a failure.
func getEnv(t *testing.T) env {
	t.Helper()
	if os.Getenv("UPGRADE_SYSTEMTEST") == "" {
		t.Skip("system test: run `make systemtest` (needs make image, the kernel, the initrd and qemu)")
	}
	e := env{image: os.Getenv("UPGRADE_IMAGE_DIR"), bin: os.Getenv("UPGRADE_BIN"), port: os.Getenv("UPGRADE_IMAGE_PORT")}
	if e.port == "" {
		t.Fatal("UPGRADE_SYSTEMTEST set but UPGRADE_IMAGE_PORT is empty")
	}
	for _, p := range []string{filepath.Join(e.image, ".done"), filepath.Join(e.bin, "upgrade-publish")} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("UPGRADE_SYSTEMTEST set but %v (make systemtest builds it)", err)
		}
	}
	for _, tool := range []string{"qemu-system-x86_64", "mkfs.ext4"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s: %v (make deps installs it)", tool, err)
		}
	}
	return e
}

// machine is one scenario's computer: a root disk provisioned at a version
// and what its firmware loads at every power-on, for ever: the kernel and
// initrd of the version it was provisioned with (build/image/boot-vN). A
// slot carrying another kernel is reached by the initrd's kexec
// (docs/boot.md, Kernels).
type machine struct {
	disk, kernel, initrd string
}

// machine returns a machine with a private copy of build/image/disk-vN.img.
func (e env) machine(t *testing.T, n int) machine {
	t.Helper()
	img := filepath.Join(t.TempDir(), fmt.Sprintf("disk-v%d.img", n))
	run(t, "cp", "--sparse=always", filepath.Join(e.image, fmt.Sprintf("disk-v%d.img", n)), img)
	boot := filepath.Join(e.image, fmt.Sprintf("boot-v%d", n))
	return machine{disk: img, kernel: filepath.Join(boot, "vmlinuz"), initrd: filepath.Join(boot, "initrd.img")}
}

// release is the kernel release version n carries (uname -r in its slot).
func (e env) release(t *testing.T, n int) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(e.image, fmt.Sprintf("boot-v%d", n), "release"))
	must(t, err)
	r := strings.TrimSpace(string(b))
	if r == "" {
		t.Fatalf("boot-v%d/release is empty", n)
	}
	return r
}

// boot is the outcome of one qemu run.
type boot struct {
	console string
	lines   []string // what the guest's script printed after "ST: "
	took    time.Duration
	// shutdown is how long qemu ran after the script ended: the guest's
	// poweroff or reboot until qemu exits.
	shutdown time.Duration
	// preClock is how long qemu ran before the running kernel's clock
	// started: qemu's start to the guest's "system ... at UPTIME s" line,
	// less UPTIME. A kexec adds the first kernel's whole boot to it.
	preClock time.Duration
}

// value returns the last "ST: val KEY=VALUE" the script printed.
func (b *boot) value(t *testing.T, key string) string {
	t.Helper()
	v, found := "", false
	for _, l := range b.lines {
		if s, ok := strings.CutPrefix(l, "val "+key+"="); ok {
			v, found = s, true
		}
	}
	if !found {
		t.Fatalf("the guest printed no %s\n%s", key, strings.Join(b.lines, "\n"))
	}
	return v
}

var (
	endRE    = regexp.MustCompile(`SYSTEMTEST-END rc=(\d+)`)
	systemRE = regexp.MustCompile(`ST: system \S+ at ([\d.]+) s`)
)

// boot boots m with script as the agent's run.sh; then is what the agent
// does afterwards (poweroff or reboot; qemu runs with -no-reboot, so both
// end it). The script's own checks decide: every "ST: FAIL" line and a
// non-zero exit fail the test.
func (e env) boot(t *testing.T, name string, m machine, script, then string) *boot {
	t.Helper()
	return e.bootOpts(t, name, m, script, then, opts{})
}

// opts are the unusual boots. With cutOn set, qemu is killed (SIGKILL: a
// power cut, the disk opened with cache=none) as soon as the console shows
// cutOn, and the boot is judged by the test alone. With reboots, a reset
// (a panic, a reboot) starts the machine again, the firmware loading the
// same kernel and initrd, until the agent's poweroff ends qemu: the script
// runs in the first boot that reaches the agent.
type opts struct {
	cutOn   string
	reboots bool
}

func (e env) bootOpts(t *testing.T, name string, m machine, script, then string, o opts) *boot {
	t.Helper()
	cutOn := o.cutOn
	dir := t.TempDir()
	agent := filepath.Join(dir, "agent")
	must(t, os.MkdirAll(agent, 0o755))
	must(t, os.WriteFile(filepath.Join(agent, "run.sh"), []byte(guestLib+script), 0o755))
	must(t, os.WriteFile(filepath.Join(agent, "then"), []byte(then+"\n"), 0o644))
	agentImg := filepath.Join(dir, "agent.img")
	run(t, "mkfs.ext4", "-q", "-F", "-d", agent, agentImg, "4M")

	// The console also goes to a file as it arrives, to follow a slow boot.
	log := filepath.Join(os.TempDir(), "systemtest-"+strings.ReplaceAll(t.Name(), "/", "-")+"-"+name+".log")
	f, err := os.Create(log)
	must(t, err)
	defer f.Close()
	ctx, cancel := context.WithTimeout(context.Background(), bootTimeout)
	defer cancel()
	out := syncBuf{file: f, cutOn: cutOn, cut: make(chan struct{})}
	cache := "unsafe"
	if cutOn != "" {
		cache = "none"
	}
	// Two vCPUs on one TCG thread: with a thread per vCPU (qemu's default
	// for x86 on x86), a guest kernel that patches its own code (static
	// keys: int3, then the new bytes) on one vCPU was seen, once in CI,
	// to have the other execute the stale int3 after the patch had ended:
	// "Oops: int3" in sched_clock_cpu right after the kexec into v2's
	// kernel, and a panic. The guest keeps its two CPUs, which qemu now
	// runs in turn on one host thread (the other VM tests boot one CPU).
	args := []string{"-nographic", "-m", "1024", "-smp", "2", "-accel", "tcg,thread=single",
		"-kernel", m.kernel, "-initrd", m.initrd,
		"-drive", "file=" + m.disk + ",format=raw,if=virtio,cache=" + cache,
		"-drive", "file=" + agentImg + ",format=raw,if=virtio,readonly=on",
		"-netdev", "user,id=n0,ipv4=off,ipv6=on", "-device", "virtio-net-pci,netdev=n0",
		"-append", "console=ttyS0 panic=-1 quiet root=LABEL=osimage-root rw init=/usr/lib/osimage/init"}
	if !o.reboots {
		args = append(args, "-no-reboot")
	}
	cmd := exec.CommandContext(ctx, "qemu-system-x86_64", args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	start := time.Now()
	must(t, cmd.Start())
	go func() {
		select {
		case <-out.cut:
			cmd.Process.Kill()
		case <-ctx.Done():
		}
	}()
	err = cmd.Wait()
	if cutOn != "" {
		b := &boot{console: out.String(), took: time.Since(start)}
		b.lines = guestLines(b.console)
		if !strings.Contains(b.console, cutOn) {
			t.Fatalf("%s: qemu ended before %q (console in %s)\n%s", name, cutOn, log, importantLines(b.console))
		}
		t.Logf("%s: power cut at %q after %.0f s", name, cutOn, b.took.Seconds())
		return b
	}
	b := &boot{console: out.String(), took: time.Since(start)}
	if !out.endAt.IsZero() {
		b.shutdown = time.Since(out.endAt)
	}
	if sys := systemRE.FindStringSubmatch(b.console); sys != nil && !out.systemAt.IsZero() {
		up, _ := strconv.ParseFloat(sys[1], 64)
		b.preClock = out.systemAt.Sub(start) - time.Duration(up*float64(time.Second))
	}
	b.lines = guestLines(b.console)
	t.Logf("%s: qemu ran %.0f s", name, b.took.Seconds())
	if ctx.Err() != nil {
		t.Fatalf("%s: qemu did not end within %v (console in %s)\n%s", name, bootTimeout, log, tail(b.console))
	}
	if err != nil {
		t.Fatalf("%s: qemu: %v (console in %s)\n%s", name, err, log, tail(b.console))
	}
	var fails []string
	for _, l := range b.lines {
		if strings.HasPrefix(l, "FAIL") {
			fails = append(fails, l)
		}
	}
	end := endRE.FindStringSubmatch(b.console)
	if len(fails) > 0 || end == nil || end[1] != "0" {
		t.Fatalf("%s: the guest's checks failed (console in %s):\n%s\n--- initrd and guest lines:\n%s",
			name, log, strings.Join(fails, "\n"), importantLines(b.console))
	}
	return b
}

// guestLines returns what the script printed after "ST: ", in order.
func guestLines(console string) []string {
	var ls []string
	for _, l := range strings.Split(console, "\n") {
		if i := strings.Index(l, "ST: "); i >= 0 {
			ls = append(ls, strings.TrimRight(l[i+4:], "\r"))
		}
	}
	return ls
}

// importantLines keeps the initrd's, the agent's and the kernel's alarms.
func importantLines(console string) string {
	var keep []string
	for _, l := range strings.Split(console, "\n") {
		for _, mark := range []string{"upgrade-init:", "ST: ", "SYSTEMTEST", "osimage-init", "Kernel panic", "EXT4-fs error", "Failed to start", "Failed to execute"} {
			if i := strings.Index(l, mark); i >= 0 {
				keep = append(keep, strings.TrimSpace(l[i:]))
				break
			}
		}
	}
	return strings.Join(keep, "\n")
}

func tail(s string) string {
	if len(s) > 4000 {
		s = s[len(s)-4000:]
	}
	return s
}

type syncBuf struct {
	mu    sync.Mutex
	b     bytes.Buffer
	file  *os.File
	endAt time.Time // when SYSTEMTEST-END arrived: the agent's poweroff or reboot starts
	// systemAt is when the script's first line ("ST: system ... at
	// UPTIME s") arrived.
	systemAt time.Time
	cutOn    string // closes cut when this arrives
	cut      chan struct{}
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.file.Write(p)
	from := max(0, s.b.Len()-len("SYSTEMTEST-END"))
	n, err := s.b.Write(p)
	if s.endAt.IsZero() && bytes.Contains(s.b.Bytes()[from:], []byte("SYSTEMTEST-END")) {
		s.endAt = time.Now()
	}
	if s.systemAt.IsZero() && bytes.Contains(s.b.Bytes()[from:], []byte("ST: system ")) {
		s.systemAt = time.Now()
	}
	if s.cutOn != "" && bytes.Contains(s.b.Bytes()[max(0, from-len(s.cutOn)):], []byte(s.cutOn)) {
		s.cutOn = ""
		close(s.cut)
	}
	return n, err
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
