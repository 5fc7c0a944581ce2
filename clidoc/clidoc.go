// Package clidoc is the command-line glue every binary shares: one way to
// run a cobra command tree (exit codes, usage errors, --version) and one
// way to turn the same definitions into man pages and shell completion, so
// that help, man pages and completion can never disagree.
//
// The page writer (cobra/doc, md2man and their markdown and YAML parsers)
// is only in binaries built with the tag clidoc, which `make install` builds
// to write the pages: the binaries it installs run without that code and
// its package initialisation.
package clidoc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"laptop.org/upgrade/clidoc/plain"
	"laptop.org/upgrade/version"
)

// Docs says where a binary's pages go.
type Docs struct {
	Section string // man section of the binary: "1" for tools, "8" for daemons
	// Extra pages from other definitions (upgraded.conf(5) from the config
	// parser's key table): file name ("upgraded.conf.5") -> markdown.
	Extra func() map[string]string
}

// docsCommand makes the hidden __docs command; docs.go sets it in a build
// with the tag clidoc.
var docsCommand func(root *cobra.Command, d Docs) *cobra.Command

// Exit codes shared by every binary: 2 is a bad command line.
const (
	ExitOK    = plain.ExitOK
	ExitFail  = plain.ExitFail
	ExitUsage = plain.ExitUsage
)

// ExitError carries a specific exit code out of a command.
type ExitError struct {
	Code int
	Err  error
	// Quiet: the command already told the user; print nothing more.
	Quiet bool
}

func (e *ExitError) Error() string { return e.Err.Error() }
func (e *ExitError) Unwrap() error { return e.Err }

// Usage marks err as a command-line mistake (exit 2, usage shown).
func Usage(format string, a ...any) error {
	return &usageError{fmt.Errorf(format, a...)}
}

type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// ranError marks an error returned by a command's own RunE: everything
// else cobra returns (unknown command, bad flag, wrong number of
// arguments) is a usage error.
type ranError struct{ err error }

func (e *ranError) Error() string { return e.err.Error() }
func (e *ranError) Unwrap() error { return e.err }

// Prepare sets what every binary shares on a finished command tree: the
// version, quiet cobra errors (Execute prints them once), flag errors as
// usage errors, and the hidden docs command. Call it before Execute.
func Prepare(root *cobra.Command, docs Docs) {
	root.Version = version.Version
	root.SetVersionTemplate("{{.Name}} {{.Version}}\n")
	root.SilenceErrors, root.SilenceUsage = true, true
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err} })
	// `completion` works but stays out of help and man pages: make install
	// installs the bash completion itself.
	root.CompletionOptions.HiddenDefaultCmd = true
	if docsCommand != nil {
		root.AddCommand(docsCommand(root, docs))
	}
	walk(root, func(c *cobra.Command) {
		if c.RunE == nil {
			return
		}
		run := c.RunE
		c.RunE = func(c *cobra.Command, args []string) error {
			if err := run(c, args); err != nil {
				return &ranError{err}
			}
			return nil
		}
	})
}

func walk(c *cobra.Command, f func(*cobra.Command)) {
	f(c)
	for _, s := range c.Commands() {
		walk(s, f)
	}
}

// Execute runs root with args and returns the exit code: errors are
// printed once as "name: message", usage errors with the command's usage
// and code 2, an *ExitError with its own code. codeFor maps other errors
// from a command (nil: 1).
func Execute(ctx context.Context, root *cobra.Command, args []string, stderr io.Writer, codeFor func(error) int) int {
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return ExitOK
	}
	var ran *ranError
	if !errors.As(err, &ran) {
		// Unknown commands and flags, wrong arguments: cobra's or ours.
		fmt.Fprintf(stderr, "%s: %v\n", root.Name(), err)
		if cmd != nil {
			fmt.Fprintf(stderr, "\n%s", cmd.UsageString())
		}
		return ExitUsage
	}
	err = ran.err
	var ue *usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "%s: %v\n\n%s", root.Name(), err, cmd.UsageString())
		return ExitUsage
	}
	code := ExitFail
	var ee *ExitError
	if errors.As(err, &ee) {
		code = ee.Code
		if ee.Quiet {
			return code
		}
	} else if codeFor != nil {
		code = codeFor(err)
	}
	fmt.Fprintf(stderr, "%s: %v\n", root.Name(), err)
	return code
}

// Main is Execute on os.Args with os.Exit.
func Main(ctx context.Context, root *cobra.Command, codeFor func(error) int) {
	os.Exit(Execute(ctx, root, os.Args[1:], os.Stderr, codeFor))
}

// ExactArgs is cobra.ExactArgs with a message that names the arguments.
func ExactArgs(n int, what string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) != n {
			return Usage("want %s, got %d argument(s)", what, len(args))
		}
		return nil
	}
}

// NoArgs refuses any argument, naming it (cobra's says "unknown command").
func NoArgs(c *cobra.Command, args []string) error {
	if len(args) > 0 && c.HasAvailableSubCommands() {
		return Usage("unknown command %q for %s", args[0], c.CommandPath())
	}
	if len(args) > 0 {
		return Usage("%s takes no arguments (got %q)", c.CommandPath(), args[0])
	}
	return nil
}

// FromPlain is c as a cobra command, prepared: what the docs build (tag
// clidoc) of a binary whose command line is a plain.Command runs, so that its
// man page and completion come from the same flag set as its --help.
func FromPlain(c *plain.Command, docs Docs) *cobra.Command {
	root := &cobra.Command{Use: c.Name, Short: c.Short, Long: c.Long, Args: NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return c.Run(cmd.Context()) }}
	root.Flags().SortFlags = false
	root.Flags().AddFlagSet(c.Flags)
	Prepare(root, docs)
	return root
}
