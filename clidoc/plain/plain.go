// Package plain runs a command without subcommands on pflag alone: the
// resident daemon's command line. cobra links text/template (and keeps its
// code resident in every process that starts it) for help templates a
// daemon does not need; the docs build (tag clidoc) still makes the man
// page and completion from the same flag set through cobra (see
// clidoc.FromPlain), so help, pages and completion cannot disagree.
//
// It keeps clidoc's conventions: exit 2 and the usage for a command-line
// mistake, "NAME: error" once on stderr and exit 1 for a failure, --help
// and --version on stdout.
package plain

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/pflag"

	"laptop.org/upgrade/version"
)

// Exit codes shared by every binary (clidoc uses the same).
const (
	ExitOK    = 0
	ExitFail  = 1
	ExitUsage = 2
)

// Command is a command line without subcommands or arguments.
type Command struct {
	Name  string // the binary's name
	Short string // one line, for the man page's NAME
	Long  string // what --help prints first
	Flags *pflag.FlagSet
	Run   func(context.Context) error
}

// New returns a command whose flag set is ready for its definitions.
func New(name, short, long string, run func(context.Context) error) *Command {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SortFlags = false
	return &Command{Name: name, Short: short, Long: long, Flags: fs, Run: run}
}

// Usage is the synopsis and the flags, as cobra prints them after a
// command-line mistake.
func (c *Command) Usage() string {
	return fmt.Sprintf("Usage:\n  %s [flags]\n\nFlags:\n%s", c.Name, c.flagsWithStandard().FlagUsages())
}

// Help is the --help text: the long description, then the usage.
func (c *Command) Help() string {
	if c.Long == "" {
		return c.Usage()
	}
	return strings.TrimSpace(c.Long) + "\n\n" + c.Usage()
}

// flagsWithStandard is the command's flags plus --help and --version, as
// help shows them.
func (c *Command) flagsWithStandard() *pflag.FlagSet {
	fs := pflag.NewFlagSet(c.Name, pflag.ContinueOnError)
	fs.SortFlags = false
	fs.AddFlagSet(c.Flags)
	// As cobra does, the short forms only where the command left them free.
	short := func(l string) string {
		if fs.ShorthandLookup(l) != nil {
			return ""
		}
		return l
	}
	fs.BoolP("help", short("h"), false, "help for "+c.Name)
	fs.BoolP("version", short("v"), false, "version for "+c.Name)
	return fs
}

// Execute parses args, runs the command and returns the exit code.
func (c *Command) Execute(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := c.flagsWithStandard()
	fs.SetOutput(io.Discard) // errors are reported below, once
	usage := func(err error) int {
		fmt.Fprintf(stderr, "%s: %v\n\n%s", c.Name, err, c.Usage())
		return ExitUsage
	}
	if err := fs.Parse(args); err != nil {
		return usage(err)
	}
	if h, _ := fs.GetBool("help"); h {
		fmt.Fprint(stdout, c.Help())
		return ExitOK
	}
	if v, _ := fs.GetBool("version"); v {
		fmt.Fprintf(stdout, "%s %s\n", c.Name, version.Version)
		return ExitOK
	}
	if fs.NArg() > 0 {
		return usage(fmt.Errorf("%s takes no arguments (got %q)", c.Name, fs.Arg(0)))
	}
	if err := c.Run(ctx); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", c.Name, err)
		return ExitFail
	}
	return ExitOK
}
