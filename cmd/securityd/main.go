// Command securityd is the security service: it holds the trusted keys,
// verifies slots against their signed manifests and alone writes the boot
// pointer. It uses no network at all; only root (and --allow-uid) may call it.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"github.com/godbus/dbus/v5"

	"laptop.org/upgrade/dbusapi"
	"laptop.org/upgrade/internal/lowprio"
	"laptop.org/upgrade/layout"
	"laptop.org/upgrade/repo"
	"laptop.org/upgrade/security"
)

// The main goroutine keeps the main thread, so that no verify worker
// (lowprio.Background) lands there and runs at normal priority.
func init() { runtime.LockOSThread() }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log.SetFlags(0)
	log.SetPrefix("securityd: ")
	if err := run(ctx); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context) error {
	root := flag.String("root", "/", "root prefix holding the slots")
	keys := flag.String("keys", "", "directory of trusted *.pub keys (default ROOT/etc/upgrade/keys)")
	tries := flag.Int("tries", security.DefaultTries, "boots a new slot gets to reach boot-complete")
	allow := flag.String("allow-uid", "", "comma-separated uids besides root that may call (the daemon's user)")
	flag.Parse()
	lowprio.Enable() // verification yields to the desktop
	lr, err := layout.New(*root)
	if err != nil {
		return err
	}
	if *keys == "" {
		*keys = lr.KeysDir()
	} else if !filepath.IsAbs(*keys) {
		*keys, _ = filepath.Abs(*keys)
	}
	kr, err := repo.LoadKeyring(*keys)
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
	svc := &security.Service{Root: lr, Keys: kr, Tries: *tries, Logf: log.Printf}
	if _, err := dbusapi.ExportSecurity(conn, svc, uids); err != nil {
		return err
	}
	log.Printf("ready on %s (root %s, %d trusted keys)", dbusapi.SecurityName, lr.Dir, len(kr))
	<-ctx.Done()
	return nil
}
