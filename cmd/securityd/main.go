// Command securityd is the security service: it holds the trusted keys,
// verifies slots against their signed manifests and alone writes the boot
// pointer. It uses no network at all; only root (and --allow-uid) may call it.
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/godbus/dbus/v5"
	"github.com/spf13/cobra"

	"laptop.org/upgrade/clidoc"
	"laptop.org/upgrade/dbusapi"
	"laptop.org/upgrade/layout"
	"laptop.org/upgrade/repo/sigkey"
	"laptop.org/upgrade/security"
	"laptop.org/upgrade/security/bus"
)

type flags struct {
	root, keys, allow string
	tries             int
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	log.SetFlags(0)
	log.SetPrefix("securityd: ")
	code := clidoc.Execute(ctx, newRoot(), os.Args[1:], os.Stderr, nil)
	stop()
	os.Exit(code)
}

func newRoot() *cobra.Command {
	var f flags
	cmd := &cobra.Command{
		Use:   "securityd",
		Short: "the security service: verifies slots and alone writes the boot pointer",
		Long: `securityd owns org.laptop.Security1 on the system bus. It holds its own trusted keys,
verifies a slot against its signed manifest, refuses anything not newer than the running
version, and alone writes the boot pointer (ROOT/var/lib/securityd/bootptr) that the
initrd reads. It uses no network. Only root and the uids given with --allow-uid may call
it (the bus policy says the same).`,
		Args: clidoc.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return run(cmd.Context(), f) },
	}
	fl := cmd.Flags()
	fl.SortFlags = false
	fl.StringVar(&f.root, "root", "/", "root prefix holding the slots")
	fl.StringVar(&f.keys, "keys", "", "directory of trusted *.pub keys (default ROOT/etc/upgrade/keys)")
	fl.IntVar(&f.tries, "tries", security.DefaultTries, "boots a new slot gets to reach boot-complete")
	fl.StringVar(&f.allow, "allow-uid", "", "comma-separated uids besides root that may call (the daemon's user)")
	clidoc.Prepare(cmd, clidoc.Docs{Section: "8"})
	return cmd
}

func run(ctx context.Context, f flags) error {
	root, keys, tries, allow := &f.root, &f.keys, &f.tries, &f.allow
	lr, err := layout.New(*root)
	if err != nil {
		return err
	}
	if *keys == "" {
		*keys = lr.KeysDir()
	} else if !filepath.IsAbs(*keys) {
		*keys, _ = filepath.Abs(*keys)
	}
	trusted, kr, err := sigkey.LoadTrust(lr.TrustedRootFile(), *keys)
	if err != nil {
		return err
	}
	var uids []uint32
	for _, f := range strings.FieldsFunc(*allow, func(r rune) bool { return r == ',' }) {
		n, err := strconv.ParseUint(f, 10, 32)
		if err != nil {
			return fmt.Errorf("--allow-uid %q: %w", f, err)
		}
		uids = append(uids, uint32(n))
	}
	conn, err := dbus.ConnectSystemBus()
	if err != nil {
		return fmt.Errorf("system bus: %w", err)
	}
	defer conn.Close()
	svc := &security.Service{Root: lr, TrustedRoot: trusted, Keys: kr, Tries: *tries, Logf: log.Printf}
	if _, err := bus.Export(conn, svc, uids); err != nil {
		return err
	}
	log.Printf("ready on %s (root %s, %d trusted keys)", dbusapi.SecurityName, lr.Dir, len(kr))
	<-ctx.Done()
	return nil
}
