package main

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/spf13/cobra"

	"laptop.org/upgrade/clidoc"
	"laptop.org/upgrade/dbusapi"
)

func plain(m map[string]dbus.Variant) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v.Value()
	}
	return out
}

func (c *cli) emit(v any) {
	b, _ := json.Marshal(v)
	fmt.Fprintln(c.out, string(b))
}

func str(m map[string]dbus.Variant, k string) string {
	if v, ok := m[k]; ok {
		return fmt.Sprint(v.Value())
	}
	return ""
}

func (c *cli) status(ctx context.Context) error {
	m, err := c.getAll(ctx)
	if err != nil {
		return err
	}
	if c.json {
		c.emit(plain(m))
		return nil
	}
	fmt.Fprintf(c.out, "state:        %s\n", str(m, "State"))
	fmt.Fprintf(c.out, "running:      version %s in slot %s\n", or(str(m, "CurrentVersion"), "?"), or(str(m, "BootedSlot"), "?"))
	fmt.Fprintf(c.out, "next boot:    slot %s (version %s)\n", or(str(m, "NextBootSlot"), "?"), or(str(m, "NextBootVersion"), "?"))
	if a := str(m, "AvailableVersion"); a != "" {
		fmt.Fprintf(c.out, "available:    version %s", a)
		if n := str(m, "AvailableName"); n != "" {
			fmt.Fprintf(c.out, " (%s)", n)
		}
		if dl, _ := m["DownloadBytes"].Value().(uint64); dl > 0 {
			fmt.Fprintf(c.out, ", download %s", human(dl))
		}
		fmt.Fprintln(c.out)
	}
	if ch := str(m, "Channel"); ch != "" {
		fmt.Fprintf(c.out, "channel:      %s\n", ch)
	}
	if lc, _ := m["LastCheck"].Value().(uint64); lc > 0 {
		fmt.Fprintf(c.out, "last check:   %s\n", time.Unix(int64(lc), 0).Format(time.RFC1123))
	}
	if j, st := str(m, "Job"), str(m, "State"); j != "0" && st != "idle" && st != "ready-to-reboot" {
		fmt.Fprintf(c.out, "job:          %s (%s%%)\n", j, str(m, "Progress"))
	}
	if e := str(m, "LastError"); e != "" {
		fmt.Fprintf(c.out, "last error:   %s\n              %s\n", strings.TrimPrefix(e, dbusapi.ErrorPrefix), str(m, "LastErrorMessage"))
	}
	if f := str(m, "BootFailure"); f != "" {
		fmt.Fprintf(c.out, "boot failure: %s\n", f)
	}
	if n := str(m, "ReleaseNotes"); n != "" && str(m, "AvailableVersion") != "" {
		fmt.Fprintf(c.out, "\nrelease notes of version %s:\n%s\n", str(m, "AvailableVersion"), indent(n))
	}
	return nil
}

func or(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

func (c *cli) check(ctx context.Context) error {
	var m map[string]dbus.Variant
	if err := c.act(ctx, "Check").Store(&m); err != nil {
		return err
	}
	upToDate, _ := m["up_to_date"].Value().(bool)
	ready, _ := m["ready_to_reboot"].Value().(bool)
	switch {
	case c.json:
		c.emit(plain(m))
	case upToDate:
		fmt.Fprintf(c.out, "up to date: version %s\n", str(m, "current_version"))
	case ready:
		fmt.Fprintf(c.out, "version %s is ready in slot %s and boots next; restart to use it (running %s)\n", release(m), str(m, "slot"), str(m, "current_version"))
	case m["already_ready"].Value() == true:
		fmt.Fprintf(c.out, "version %s is available (running %s) and already built in slot %s; `upgradectl apply` activates it without downloading\n", release(m), str(m, "current_version"), str(m, "slot"))
	default:
		dl, _ := m["download_bytes"].Value().(uint64)
		need, _ := m["need_bytes"].Value().(uint64)
		free, _ := m["free_bytes"].Value().(uint64)
		fmt.Fprintf(c.out, "version %s is available (running %s)\n", release(m), str(m, "current_version"))
		fmt.Fprintf(c.out, "download %s, needs %s on disk, %s free\n", human(dl), human(need), human(free))
	}
	if n := str(m, "release_notes"); n != "" && !c.json && !upToDate {
		fmt.Fprintf(c.out, "\nrelease notes:\n%s\n", indent(n))
	}
	// Exit 3 means "nothing to install": up to date, or the newer version
	// is built and boots next (only a restart is left).
	if upToDate || ready {
		return &clidoc.ExitError{Code: exitUpToDate, Err: fmt.Errorf("up to date"), Quiet: true}
	}
	return nil
}

// release is "3" or "3 (2026.12 spring)" when the index names it.
func release(m map[string]dbus.Variant) string {
	v := str(m, "available_version")
	if n := str(m, "available_name"); n != "" {
		return fmt.Sprintf("%s (%s)", v, n)
	}
	return v
}

func indent(s string) string {
	return "  " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n  ")
}

func rollbackCommand(c *cli) *cobra.Command {
	var boot bool
	cmd := &cobra.Command{
		Use:   "rollback",
		Short: "withdraw a pending upgrade, or boot the other slot next if it verifies",
		Long: `rollback goes back one step. If an upgrade is pending (built, boots next, never
booted) it is withdrawn: the running version boots next, as before the upgrade, and
nothing needs a restart. Otherwise the other slot boots next if it still verifies.`,
		Args: clidoc.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := c.connect(); err != nil {
				return err
			}
			return c.rollback(cmd.Context(), boot)
		},
	}
	cmd.Flags().BoolVar(&boot, "reboot", false, "restart the machine afterwards (when the other slot boots next)")
	return cmd
}

func (c *cli) rollback(ctx context.Context, boot bool) error {
	before, err := c.getAll(ctx)
	if err != nil {
		return err
	}
	var slot, version string
	if err := c.act(ctx, "Rollback").Store(&slot, &version); err != nil {
		return err
	}
	// Withdrawn: the slot that boots next is the running one.
	withdrawn := slot == str(before, "BootedSlot")
	switch {
	case c.json:
		c.emit(map[string]any{"next_boot_slot": slot, "version": version, "withdrawn": withdrawn})
	case withdrawn:
		fmt.Fprintf(c.out, "the pending upgrade to version %s was withdrawn; the running version %s (slot %s) stays and boots next; no restart needed\n", or(str(before, "NextBootVersion"), "?"), version, slot)
	default:
		fmt.Fprintf(c.out, "next boot: slot %s (version %s); restart to use it\n", slot, version)
	}
	if boot && !withdrawn {
		return reboot(ctx)
	}
	return nil
}

func applyCommand(c *cli) *cobra.Command {
	var o upgradeOpts
	cmd := &cobra.Command{
		Use:   "apply [VERSION]",
		Short: "make a version staged by `upgrade --download-only` the next boot",
		Long: `apply activates a version that ` + "`upgradectl upgrade --download-only`" + ` built and
verified earlier: the security service verifies it again and makes it the next boot.
Nothing is downloaded; a version that is not staged is refused. Without VERSION,
the staged one.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			version := ""
			if len(args) == 1 {
				version = args[0]
			}
			if err := c.connect(); err != nil {
				return err
			}
			return c.startJob(cmd.Context(), "Apply", []any{version}, o)
		},
	}
	cmd.Flags().BoolVar(&o.noWait, "no-wait", false, "start the job and return")
	cmd.Flags().BoolVar(&o.boot, "reboot", false, "restart the machine when the version is ready")
	return cmd
}

func (c *cli) history(ctx context.Context) error {
	var hs []map[string]dbus.Variant
	if err := c.obj.CallWithContext(ctx, dbusapi.UpgradeInterface+".History", 0).Store(&hs); err != nil {
		return err
	}
	for _, h := range hs {
		if c.json {
			c.emit(plain(h))
			continue
		}
		ok, _ := h["success"].Value().(bool)
		fin, _ := h["finished"].Value().(uint64)
		fetched, _ := h["fetched"].Value().(uint64)
		res := "ok"
		if !ok {
			res = strings.TrimPrefix(str(h, "error_name"), dbusapi.ErrorPrefix) + ": " + str(h, "message")
		}
		fmt.Fprintf(c.out, "job %-4s %s  version %-6s %8s  %s\n", str(h, "job"), time.Unix(int64(fin), 0).Format("2006-01-02 15:04"), str(h, "version"), human(fetched), res)
	}
	return nil
}

func human(n uint64) string {
	units := []string{"B", "kB", "MB", "GB", "TB"}
	f := float64(n)
	i := 0
	for f >= 1000 && i < len(units)-1 {
		f /= 1000
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%d B", n)
	}
	return fmt.Sprintf("%.1f %s", f, units[i])
}

func sortedKeys(m map[string]dbus.Variant) []string {
	k := make([]string, 0, len(m))
	for x := range m {
		k = append(k, x)
	}
	sort.Strings(k)
	return k
}
