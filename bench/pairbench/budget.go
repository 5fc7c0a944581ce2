package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// budget is a cgroup that caps the CPU time of the client side of every
// contender (our upgrade, cp -al + rsync, ostree, casync), to stand for a
// slow laptop: a quota of 25 ms per 100 ms period is a quarter of one core,
// the class of CPU the XO had. Servers stay outside it, as they are other
// machines in use.
type budget struct {
	dir string // the cgroup's directory
}

// newBudget makes a cgroup allowing quota of one core: cgroup v2's cpu.max
// where the unified hierarchy has the cpu controller, else v1's
// cpu.cfs_quota_us (hybrid hosts such as this benchmark machine).
func newBudget(quota float64) (*budget, error) {
	const period = 100000
	q := strconv.Itoa(int(quota * period))
	name := fmt.Sprintf("pairbench-%d", os.Getpid())
	if ctl, err := os.ReadFile("/sys/fs/cgroup/cgroup.controllers"); err == nil && strings.Contains(" "+string(ctl)+" ", " cpu ") {
		dir := filepath.Join("/sys/fs/cgroup", name)
		// The root must delegate cpu to its children first.
		_ = os.WriteFile("/sys/fs/cgroup/cgroup.subtree_control", []byte("+cpu"), 0)
		if err := os.Mkdir(dir, 0755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(dir, "cpu.max"), []byte(q+" "+strconv.Itoa(period)), 0); err != nil {
			return nil, fmt.Errorf("cgroup v2 cpu.max: %w", err)
		}
		return &budget{dir: dir}, nil
	}
	dir := filepath.Join("/sys/fs/cgroup/cpu", name)
	if err := os.Mkdir(dir, 0755); err != nil {
		return nil, fmt.Errorf("no cgroup v2 cpu controller, and v1: %w", err)
	}
	for f, v := range map[string]string{"cpu.cfs_period_us": strconv.Itoa(period), "cpu.cfs_quota_us": q} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte(v), 0); err != nil {
			return nil, fmt.Errorf("cgroup v1 %s: %w", f, err)
		}
	}
	return &budget{dir: dir}, nil
}

// command runs name in the cgroup: a shell moves itself there and execs
// it, so the command and all its children are capped from their first
// instruction, and wait4's rusage still covers them.
func (b *budget) command(name string, args ...string) *exec.Cmd {
	sh := `echo $$ > "$0/cgroup.procs" && exec "$@"`
	return exec.Command("sh", append([]string{"-c", sh, b.dir, name}, args...)...)
}

// remove deletes the cgroup (its processes have all exited).
func (b *budget) remove() { os.Remove(b.dir) }

// clientBudget, when set, is the cgroup timed runs in.
var clientBudget *budget
