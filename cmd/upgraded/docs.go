//go:build clidoc

package main

import (
	"context"
	"os"

	"laptop.org/upgrade/clidoc"
	"laptop.org/upgrade/clidoc/plain"
	"laptop.org/upgrade/daemon"
)

// The docs build writes upgraded(8) and its completion from the same flag
// set through cobra, and upgraded.conf(5) from the config parser's table.
func init() {
	docsMain = func(ctx context.Context, c *plain.Command) int {
		root := clidoc.FromPlain(c, clidoc.Docs{Section: "8", Extra: func() map[string]string {
			return map[string]string{"upgraded.conf.5": daemon.ConfigManual()}
		}})
		return clidoc.Execute(ctx, root, os.Args[1:], os.Stderr, nil)
	}
}
