// Command vmguest is the init of confine's VM test: on the kernel under
// test it lays out a probe root, runs the confinement probe in a confined
// child (probe.Run), prints the kernel's Landlock ABI and the outcome on
// the console, and powers off.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"

	ll "github.com/landlock-lsm/go-landlock/landlock/syscall"
	"golang.org/x/sys/unix"

	"laptop.org/upgrade/confine/internal/probe"
)

const childEnv = "CONFINE_PROBE_DIR"

func main() {
	abi, abiErr := ll.LandlockGetABIVersion()
	if d := os.Getenv(childEnv); d != "" {
		got, err := probe.Run(d, abi)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		json.NewEncoder(os.Stdout).Encode(got)
		return
	}
	fmt.Printf("confine-guest: abi=%d err=%v\n", abi, abiErr)
	if err := run(); err != nil {
		fmt.Printf("confine-guest: error: %v\n", err)
	}
	unix.Sync()
	unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
}

// run probes on the root filesystem the initrd mounted (ext4, as a
// laptop's), or on a tmpfs if it came up read-only.
func run() error {
	d := "/probe"
	if err := os.MkdirAll(d+"/x", 0755); err != nil {
		if err := unix.Mount("probe", d, "tmpfs", 0, "mode=0755"); err != nil {
			return fmt.Errorf("no writable %s: %w", d, err)
		}
		fmt.Println("confine-guest: probing on a tmpfs")
	}
	if err := probe.MakeRoot(d); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), childEnv+"="+d)
	cmd.Stderr = os.Stdout
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("confined child: %v", err)
	}
	fmt.Printf("confine-guest: result=%s", out)
	return nil
}
