package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"

	"github.com/spf13/cobra"
)

func channelCommand(c *cli) *cobra.Command {
	return &cobra.Command{
		Use:   "channel [NAME]",
		Short: "show the channel, or switch to channel NAME",
		Long: `channel shows the channel the daemon follows (stable, beta, ...). With NAME it switches:
the daemon remembers the choice across restarts (it overrides the channel of
upgraded.conf), and the next check or upgrade reads NAME's signed index. Each channel
keeps its own anti-rollback serial, so switching back and forth is safe. Switching
needs an administrator (polkit action org.laptop.upgrade.rollback); an empty NAME
("") returns to the channel of upgraded.conf.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := c.connect(); err != nil {
				return err
			}
			ctx := cmd.Context()
			if len(args) == 1 {
				if err := c.call(ctx, "SetChannel", args[0]); err != nil {
					return err
				}
			}
			return c.showChannel(ctx)
		},
	}
}

func (c *cli) showChannel(ctx context.Context) error {
	m, err := c.getAll(ctx)
	if err != nil {
		return err
	}
	if c.json {
		c.emit(map[string]any{"channel": str(m, "Channel")})
		return nil
	}
	fmt.Fprintf(c.out, "channel: %s\n", str(m, "Channel"))
	return nil
}

// rebootCommand restarts the machine as an admin would: systemctl honours
// inhibitors and asks polkit (with its own text agent) if it must.
var rebootCommand = []string{"systemctl", "reboot"}

func reboot(ctx context.Context) error {
	fmt.Fprintln(os.Stderr, "upgradectl: restarting")
	cmd := exec.CommandContext(ctx, rebootCommand[0], rebootCommand[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("restart (%v): %w", rebootCommand, err)
	}
	return nil
}
