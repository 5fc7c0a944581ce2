// Command upgrade-publish is the build-server side: keys, signing, turning
// a directory tree into a version of a static repository, serving it for
// tests and demos, and provisioning a first root from it (image builders).
// Each subcommand is one constructor (newXxxCommand) with its own flags.
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"laptop.org/upgrade/clidoc"
	"laptop.org/upgrade/engine"
	"laptop.org/upgrade/layout"
	"laptop.org/upgrade/publish"
	"laptop.org/upgrade/publish/export"
	"laptop.org/upgrade/repo"
	"laptop.org/upgrade/repo/sigkey"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	log.SetFlags(0)
	log.SetPrefix("upgrade-publish: ")
	code := clidoc.Execute(ctx, newRoot(), os.Args[1:], os.Stderr, nil)
	stop()
	os.Exit(code)
}

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:   "upgrade-publish",
		Short: "publish signed versions of an OS tree into a static repository",
		Long: `upgrade-publish is the release manager's tool: it makes signing keys, adds a directory
tree as a new signed version of a channel (objects, binary deltas, packs), re-signs the
index before it expires, serves a repository over HTTP for tests and demos, and
provisions a first root from a repository (image builders).`,
		Args: clidoc.NoArgs,
		RunE: func(*cobra.Command, []string) error { return clidoc.Usage("no command given") },
	}
	root.AddCommand(newKeygenCommand(), newAddCommand(), newResignCommand(), newProvisionCommand(), newServeCommand(), newExportCommand(), newRootCommand(), newTargetsCommand())
	clidoc.Prepare(root, clidoc.Docs{Section: "1"})
	return root
}

// signing are the flags of the commands that write a signed index.
type signing struct {
	repoDir, keyFile, channel string
	extraKeys                 []string
	ttl                       time.Duration
}

func (s *signing) flags(c *cobra.Command) {
	f := c.Flags()
	f.StringVar(&s.repoDir, "repo", "", "repository `DIR` (required)")
	f.StringVar(&s.keyFile, "key", "", "private key `FILE` to sign with (required); a new repository gives it every role")
	f.StringArrayVar(&s.extraKeys, "extra-key", nil, "further private key `FILE` (repeatable): each signs the roles the root lists it for")
	f.StringVar(&s.channel, "channel", "stable", "channel")
	f.DurationVar(&s.ttl, "ttl", publish.DefaultTimestampTTL, "timestamp validity; resign well before it ends")
	_ = c.MarkFlagRequired("repo")
	_ = c.MarkFlagRequired("key")
}

func (s *signing) options() (publish.Options, error) {
	k, err := sigkey.LoadPrivate(s.keyFile)
	if err != nil {
		return publish.Options{}, err
	}
	o := publish.Options{Repo: s.repoDir, Key: k, Channel: s.channel, TTL: s.ttl, Logf: log.Printf}
	for _, f := range s.extraKeys {
		k, err := sigkey.LoadPrivate(f)
		if err != nil {
			return publish.Options{}, err
		}
		o.Keys = append(o.Keys, k)
	}
	return o, nil
}

// maxNotes bounds release notes: they travel in the index, which every
// client downloads at every check.
const maxNotes = 64 << 10

func newAddCommand() *cobra.Command {
	var (
		s                     signing
		hardware, name, notes string
		version               uint64
		depth, spec           int
		best, strip, devices  bool
		targetsDraft          string
	)
	c := &cobra.Command{
		Use:   "add TREE",
		Short: "add a directory tree as a new signed version",
		Long: `add scans TREE, stores what the repository lacks (content-addressed objects, binary
deltas from the last --depth versions, packs) and publishes it as a new version in the
channel's signed index. A tree equal to the newest version publishes nothing.`,
		Args: clidoc.ExactArgs(1, "one TREE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o, err := s.options()
			if err != nil {
				return err
			}
			o.Hardware, o.Name, o.Version, o.DeltaDepth, o.Best = hardware, name, layout.Version(version), depth, best
			o.StripForbidden, o.AllowDevices, o.DeliverySpec, o.TargetsDraft = strip, devices, spec, targetsDraft
			if notes != "" {
				b, err := os.ReadFile(notes)
				if err != nil {
					return fmt.Errorf("release notes: %w", err)
				}
				if len(b) > maxNotes {
					return fmt.Errorf("release notes %s: %d bytes, at most %d", notes, len(b), maxNotes)
				}
				o.Notes = string(b)
			}
			res, err := publish.Add(cmd.Context(), args[0], o)
			if err != nil {
				return err
			}
			switch {
			case res.Unchanged:
				fmt.Printf("version %d unchanged (the tree equals it)\n", res.Version)
			case targetsDraft != "":
				fmt.Printf("version %d stored, its targets unsigned in %s: sign them with the targets key (targets sign), then targets publish\n", res.Version, targetsDraft)
			default:
				fmt.Printf("published version %d: %d entries, %d new objects, %d new deltas, %d bytes added\n", res.Version, res.Entries, res.NewObjects, res.NewDeltas, res.StoredBytes)
			}
			return nil
		},
	}
	s.flags(c)
	f := c.Flags()
	f.StringVar(&hardware, "hardware", "", "hardware class ('' = any)")
	f.StringVar(&name, "name", "", "release name shown to users (e.g. \"2026.12\")")
	f.StringVar(&notes, "notes", "", "release notes: a plain-text `FILE` shown by upgradectl check and status (clients before notes existed refuse such an index)")
	f.Uint64Var(&version, "version", 0, "version number (0 = newest + 1)")
	f.IntVar(&depth, "depth", 3, "make deltas from this many previous versions")
	f.IntVar(&spec, "delivery-spec", repo.DeliverySpecLean, "delivery list format: 2 (lean), or 1 while clients from before spec 2 remain (they refuse spec 2)")
	f.BoolVar(&best, "best", false, "smallest downloads: deltas and packs by the zstd and xz commands (slower; for releases)")
	f.BoolVar(&strip, "strip-forbidden", false, "leave out entries the clients' default policy refuses (device nodes) instead of refusing the tree")
	f.BoolVar(&devices, "allow-devices", false, "publish device nodes, for clients set to allow_devices = true")
	f.StringVar(&targetsDraft, "targets-draft", "", "leave the new targets unsigned in `FILE` for an offline targets key (then: targets sign, targets publish)")
	c.MarkFlagsMutuallyExclusive("strip-forbidden", "allow-devices")
	return c
}

func newResignCommand() *cobra.Command {
	var s signing
	c := &cobra.Command{
		Use:   "resign",
		Short: "refresh the channel's timestamp and snapshot",
		Long: `resign signs new timestamp and snapshot metadata (TUF's online roles) with a new
version and expiry (--ttl, a day by default); no version is added or removed. Run it
well before the timestamp expires (every 4 hours from a timer, for the 1-day default):
clients refuse an expired timestamp. --key must hold the snapshot and timestamp roles.`,
		Args: clidoc.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			o, err := s.options()
			if err != nil {
				return err
			}
			return publish.Resign(o)
		},
	}
	s.flags(c)
	return c
}

func newProvisionCommand() *cobra.Command {
	var (
		root, keys, channel, hardware string
		mirrors                       []string
		version                       uint64
	)
	c := &cobra.Command{
		Use:   "provision",
		Short: "make a first root: slot a holding a version from a repository",
		Args:  clidoc.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			kr, err := sigkey.LoadKeyring(keys)
			if err != nil {
				return err
			}
			lr, err := layout.New(root)
			if err != nil {
				return err
			}
			cfg := &engine.Config{Root: lr, Mirrors: mirrors, Channel: channel, Hardware: hardware, Keys: kr, Logf: log.Printf}
			res, err := engine.Provision(cmd.Context(), cfg, layout.Version(version))
			if err != nil {
				return err
			}
			fmt.Printf("provisioned %s: slot a holds version %d (%d bytes fetched)\n", lr.Dir, res.Version, res.Fetched)
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&root, "root", "", "root prefix to provision (required)")
	f.StringArrayVar(&mirrors, "mirror", nil, "mirror URL (repeatable; required)")
	f.StringVar(&keys, "keys", "", "directory of trusted *.pub keys (required)")
	f.StringVar(&channel, "channel", "stable", "channel")
	f.StringVar(&hardware, "hardware", "", "hardware class ('' = any)")
	f.Uint64Var(&version, "version", 0, "version to install (0 = newest)")
	for _, r := range []string{"root", "mirror", "keys"} {
		_ = c.MarkFlagRequired(r)
	}
	return c
}

func newServeCommand() *cobra.Command {
	var repoDir, listen string
	c := &cobra.Command{
		Use:   "serve",
		Short: "serve a repository over HTTP (tests, demos), with cache headers set",
		Args:  clidoc.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return serve(cmd.Context(), repoDir, listen)
		},
	}
	c.Flags().StringVar(&repoDir, "repo", "", "repository `DIR` (required)")
	c.Flags().StringVar(&listen, "listen", "[::1]:8080", "address to serve on")
	_ = c.MarkFlagRequired("repo")
	return c
}

func newExportCommand() *cobra.Command {
	var f export.Flags
	c := &cobra.Command{
		Use:   "export",
		Short: "copy what machines need for some versions into a directory (a USB stick)",
		Long: `export writes a self-contained repository subset into --to: the signed index as it is,
and the manifests, delivery lists, objects, deltas and packs that machines running the
--from versions need to reach the --versions. Every file is checked against its signed
digest as it is copied. Machines then use the directory as a file:// mirror
(docs/deploying.md, "USB").`,
		Args: clidoc.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return export.Run(cmd.Context(), f, os.Stdout)
		},
	}
	fl := c.Flags()
	fl.StringVar(&f.Repo, "repo", "", "repository `DIR` (required)")
	fl.StringVar(&f.Keys, "keys", "", "`DIR` of trusted *.pub keys, to check the index (required)")
	fl.StringVar(&f.To, "to", "", "destination `DIR`, e.g. a mounted USB stick (required)")
	fl.StringVar(&f.Versions, "versions", "", "versions to carry, e.g. 2,3 (default: the newest)")
	fl.StringVar(&f.From, "from", "all", "versions the machines run (0 = none: provisioning), or all")
	for _, n := range []string{"repo", "keys", "to"} {
		_ = c.MarkFlagRequired(n)
	}
	return c
}
