package confine_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"testing"

	"github.com/google/go-cmp/cmp"
	ll "github.com/landlock-lsm/go-landlock/landlock/syscall"

	"laptop.org/upgrade/confine"
	"laptop.org/upgrade/confine/internal/probe"
	"laptop.org/upgrade/layout"
)

// helperEnv makes the test binary the confined helper: Landlock cannot be
// lifted, so the operations run in a child process of their own.
const helperEnv = "CONFINE_TEST_HELPER"

// execEnv makes the confined helper run the operations in a child it
// starts, as the daemon starts its workers: confined by inheritance only.
const execEnv = "CONFINE_TEST_EXEC"

// TestMain runs the confined child of TestConfinement when asked to.
func TestMain(m *testing.M) {
	switch os.Getenv(execEnv) {
	case "parent":
		if err := probe.Confine(os.Getenv(helperEnv)); err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			os.Exit(2)
		}
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), execEnv+"=child")
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			os.Exit(2)
		}
		os.Exit(0)
	case "child":
		abi, _ := ll.LandlockGetABIVersion()
		json.NewEncoder(os.Stdout).Encode(probe.RunOps(os.Getenv(helperEnv), abi))
		os.Exit(0)
	}
	if d := os.Getenv(helperEnv); d != "" {
		abi, _ := ll.LandlockGetABIVersion()
		got, err := probe.Run(d, abi)
		if err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			os.Exit(2)
		}
		json.NewEncoder(os.Stdout).Encode(got)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestConfinement: in a confined child process, an upgrade's operations
// succeed and every write to the running slot, to the rest of the root and
// outside it fails (probe.Ops lists them). Runs on any kernel with Landlock
// ABI 2 or later and fails, not skips, without; TestConfinementVM runs the
// same on the Debian cloud kernel (ABI 2).
func TestConfinement(t *testing.T) {
	for _, tc := range []struct{ name, exec string }{
		{"self", ""},
		// upgraded confines itself before it starts any job's worker
		// (upgraded worker, by fork and execve): the worker is confined
		// by inheritance alone.
		{"inherited across exec", "parent"},
	} {
		t.Run(tc.name, func(t *testing.T) { testConfinement(t, tc.exec) })
	}
}

func testConfinement(t *testing.T, mode string) {
	abi, err := ll.LandlockGetABIVersion()
	if err != nil || abi < confine.MinABI {
		t.Fatalf("this kernel has no Landlock ABI >= %d (%d, %v): the confinement cannot be tested here; make confine-vmtest runs it on Debian's kernel", confine.MinABI, abi, err)
	}
	d := t.TempDir()
	if err := probe.MakeRoot(d); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), helperEnv+"="+d, execEnv+"="+mode)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helper: %v\n%s", err, out)
	}
	var got probe.Outcome
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("helper output: %v\n%s", err, out)
	}
	if diff := cmp.Diff(probe.Want(abi), got); diff != "" {
		t.Errorf("operations under confinement, Landlock ABI %d (-want +got):\n%s", abi, diff)
	}
	// The running slot is as it was.
	if b, err := os.ReadFile(d + "/root/a/usr/bin/tool"); err != nil || string(b) != "x\n" {
		t.Errorf("active slot's file: %q, %v", b, err)
	}
}

func TestParseMode(t *testing.T) {
	for _, s := range []string{"off", "auto", "required"} {
		if m, err := confine.ParseMode(s); err != nil || string(m) != s {
			t.Errorf("ParseMode(%q) = %q, %v", s, m, err)
		}
	}
	if _, err := confine.ParseMode("yes"); err == nil {
		t.Error("ParseMode(yes): no error")
	}
}

// TestForDaemon: the rules follow current; a broken root gets no slot.
func TestForDaemon(t *testing.T) {
	type rules struct {
		Write, Names, LinkFrom []string
		NoSlot                 bool
	}
	for _, tc := range []struct {
		name  string
		setup func(d string) error
		want  func(d string) rules
	}{
		{"running a", func(d string) error { return nil }, func(d string) rules {
			return rules{Write: []string{d + "/root/var/lib/upgrade"}, Names: []string{d + "/root/b"}, LinkFrom: []string{d + "/root/a"}}
		}},
		{"running b", func(d string) error {
			os.Remove(d + "/root/current")
			return os.Symlink("b", d+"/root/current")
		}, func(d string) rules {
			return rules{Write: []string{d + "/root/var/lib/upgrade"}, Names: []string{d + "/root/a"}, LinkFrom: []string{d + "/root/b"}}
		}},
		{"inactive slot missing: created", func(d string) error { return os.RemoveAll(d + "/root/b") }, func(d string) rules {
			return rules{Write: []string{d + "/root/var/lib/upgrade"}, Names: []string{d + "/root/b"}, LinkFrom: []string{d + "/root/a"}}
		}},
		{"current missing", func(d string) error { return os.Remove(d + "/root/current") }, func(d string) rules {
			return rules{Write: []string{d + "/root/var/lib/upgrade"}, NoSlot: true}
		}},
		{"inactive slot is a symlink", func(d string) error {
			if err := os.RemoveAll(d + "/root/b"); err != nil {
				return err
			}
			return os.Symlink("/", d+"/root/b")
		}, func(d string) rules {
			return rules{Write: []string{d + "/root/var/lib/upgrade"}, NoSlot: true}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := t.TempDir()
			if err := probe.MakeRoot(d); err != nil {
				t.Fatal(err)
			}
			if err := tc.setup(d); err != nil {
				t.Fatal(err)
			}
			r, err := confine.ForDaemon(layout.Root{Dir: d + "/root"})
			if err != nil {
				t.Fatal(err)
			}
			got := rules{r.Write, r.Names, r.LinkFrom, r.NoSlot != nil}
			if diff := cmp.Diff(tc.want(d), got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if st, err := os.Lstat(d + "/root/b"); tc.name == "inactive slot missing: created" && (err != nil || !st.IsDir()) {
				t.Errorf("slot b not created: %v", err)
			}
		})
	}
}
