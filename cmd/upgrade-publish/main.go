// Command upgrade-publish is the build-server side: keys, signing, turning
// a directory tree into a version of a static repository, serving it for
// tests and demos, and provisioning a first root from it (image builders).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"laptop.org/upgrade/engine"
	"laptop.org/upgrade/layout"
	"laptop.org/upgrade/publish"
	"laptop.org/upgrade/publish/export"
	"laptop.org/upgrade/repo"
)

const usage = `usage: upgrade-publish COMMAND [flags]

commands:
  keygen    --out DIR [--name NAME]            new Ed25519 key pair: NAME.key (secret), NAME.pub
  add       --repo DIR --key FILE [--channel C] [--hardware H] [--name N] [--version V] [--best]
            [--strip-forbidden | --allow-devices] TREE
  resign    --repo DIR --key FILE [--channel C]    refresh serial and expiry of the index
  provision --root R --mirror URL --keys DIR [--channel C] [--version V]
  serve     --repo DIR [--listen [::1]:8080]     serve a repository over HTTP (cache headers set)
  export    --repo DIR --keys DIR --to DIR [--versions V,...] [--from V,...|all]
            copy what machines at --from need for --versions (default: the newest, for any machine)
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log.SetFlags(0)
	log.SetPrefix("upgrade-publish: ")
	if err := run(ctx, os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		log.Fatal(err)
	}
}

type mirrors []string

func (m *mirrors) String() string     { return strings.Join(*m, ",") }
func (m *mirrors) Set(s string) error { *m = append(*m, s); return nil }

func run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage)
		return flag.ErrHelp
	}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(os.Stderr, usage) }
	var (
		out      = fs.String("out", ".", "directory for new keys")
		name     = fs.String("name", "", "key file name / version name")
		repoDir  = fs.String("repo", "", "repository directory")
		keyFile  = fs.String("key", "", "private key file")
		channel  = fs.String("channel", "stable", "channel")
		hardware = fs.String("hardware", "", "hardware class ('' = any)")
		version  = fs.Uint64("version", 0, "version number (0 = next / newest)")
		depth    = fs.Int("depth", 3, "make deltas from this many previous versions")
		best     = fs.Bool("best", false, "smallest downloads: deltas and packs by the zstd and xz commands (slower; for releases)")
		ttl      = fs.Duration("ttl", 30*24*time.Hour, "index validity")
		root     = fs.String("root", "", "root prefix to provision")
		keysDir  = fs.String("keys", "", "directory of trusted *.pub keys")
		listen   = fs.String("listen", "[::1]:8080", "address to serve on")
		strip    = fs.Bool("strip-forbidden", false, "add: leave out entries the clients' policy refuses (device nodes)")
		to       = fs.String("to", "", "export: destination directory (a USB stick)")
		versions = fs.String("versions", "", "export: versions to carry, e.g. 2,3 (default: the newest)")
		from     = fs.String("from", "all", "export: versions the machines run (0 = none), or all")
		devices  = fs.Bool("allow-devices", false, "add: publish device nodes, for clients with allow_devices = true")
		mirror   mirrors
	)
	fs.Var(&mirror, "mirror", "mirror URL (repeatable)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	switch args[0] {
	case "keygen":
		return keygen(*out, *name)
	case "add", "resign":
		if *repoDir == "" || *keyFile == "" {
			return fmt.Errorf("%s needs --repo and --key", args[0])
		}
		k, err := repo.LoadPrivate(*keyFile)
		if err != nil {
			return err
		}
		o := publish.Options{Repo: *repoDir, Key: k, Channel: *channel, Hardware: *hardware, Name: *name, Version: *version, DeltaDepth: *depth, Best: *best, TTL: *ttl, Logf: log.Printf, StripForbidden: *strip, AllowDevices: *devices}
		if args[0] == "resign" {
			return publish.Resign(o)
		}
		if fs.NArg() != 1 {
			return fmt.Errorf("add needs exactly one TREE")
		}
		res, err := publish.Add(ctx, fs.Arg(0), o)
		if err != nil {
			return err
		}
		if res.Unchanged {
			fmt.Printf("version %d unchanged (the tree equals it)\n", res.Version)
		} else {
			fmt.Printf("published version %d: %d entries, %d new objects, %d new deltas, %d bytes added\n", res.Version, res.Entries, res.NewObjects, res.NewDeltas, res.StoredBytes)
		}
		return nil
	case "provision":
		if *root == "" || len(mirror) == 0 || *keysDir == "" {
			return fmt.Errorf("provision needs --root, --mirror and --keys")
		}
		kr, err := repo.LoadKeyring(*keysDir)
		if err != nil {
			return err
		}
		lr, err := layout.New(*root)
		if err != nil {
			return err
		}
		cfg := &engine.Config{Root: lr, Mirrors: mirror, Channel: *channel, Hardware: *hardware, Keys: kr, Logf: log.Printf}
		res, err := engine.Provision(ctx, cfg, *version)
		if err != nil {
			return err
		}
		fmt.Printf("provisioned %s: slot a holds version %d (%d bytes fetched)\n", lr.Dir, res.Version, res.Fetched)
		return nil
	case "export":
		return export.Run(ctx, export.Flags{Repo: *repoDir, Keys: *keysDir, To: *to, Versions: *versions, From: *from}, os.Stdout)
	case "serve":
		if *repoDir == "" {
			return fmt.Errorf("serve needs --repo")
		}
		return serve(ctx, *repoDir, *listen)
	}
	fs.Usage()
	return fmt.Errorf("unknown command %q", args[0])
}

func keygen(dir, name string) error {
	k, err := repo.GenerateKey()
	if err != nil {
		return err
	}
	if name == "" {
		name = k.ID
	}
	if err := os.MkdirAll(dir, 0755); err != nil {
		return err
	}
	priv := filepath.Join(dir, name+".key")
	if err := os.WriteFile(priv, repo.MarshalPrivate(k), 0600); err != nil {
		return err
	}
	pub := filepath.Join(dir, name+".pub")
	if err := os.WriteFile(pub, repo.MarshalPublic(k.Public()), 0644); err != nil {
		return err
	}
	fmt.Printf("key %s: secret %s, public %s\n", k.ID, priv, pub)
	return nil
}
