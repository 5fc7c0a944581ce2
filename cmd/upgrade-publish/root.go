package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"laptop.org/upgrade/clidoc"
	"laptop.org/upgrade/publish"
	"laptop.org/upgrade/repo"
	"laptop.org/upgrade/repo/sigkey"
)

// newRootCommand is the root ceremony: draft a root, sign it where each
// offline key lives, publish it once the thresholds are met.
func newRootCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "root",
		Short: "the key ceremony: draft, sign and publish a new TUF root",
		Long: `root manages the repository's TUF root, which names the keys of every role (root,
targets, snapshot, timestamp) and their thresholds. A change is a draft file: "root draft"
makes it (the next version, or version 1 of a new repository), "root sign" adds one
signature on the machine that holds that key (copy the draft there and back: the root
and targets keys stay offline), and "root publish" writes it into the repository once
the thresholds of the current root and of the draft are met, as clients check them.`,
		Args: clidoc.NoArgs,
		RunE: func(*cobra.Command, []string) error { return clidoc.Usage("no root command given") },
	}
	c.AddCommand(newRootDraftCommand(), newRootSignCommand(), newRootPublishCommand())
	return c
}

func newRootDraftCommand() *cobra.Command {
	var (
		dir, draft          string
		add, revoke, thresh []string
		ttl                 time.Duration
	)
	c := &cobra.Command{
		Use:   "draft",
		Short: "write the next root, with keys added, revoked and thresholds set, unsigned",
		Args:  clidoc.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			var ch publish.RootChange
			var err error
			if ch.Add, err = roleKeys(add); err != nil {
				return err
			}
			if ch.Revoke, err = roleKeys(revoke); err != nil {
				return err
			}
			if ch.Threshold, err = thresholds(thresh); err != nil {
				return err
			}
			ch.TTL = ttl
			r, err := publish.DraftRoot(dir, draft, ch, time.Now().UTC().Truncate(time.Second))
			if err != nil {
				return err
			}
			fmt.Printf("root %d drafted in %s; sign it with %d root keys (and the current root's threshold)\n", r.Signed.Version, draft, r.Signed.Roles["root"].Threshold)
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&dir, "repo", "", "repository `DIR` (required)")
	f.StringVar(&draft, "draft", "", "draft `FILE` to write (required)")
	f.StringArrayVar(&add, "add", nil, "list the public key `ROLE=PUBFILE` for ROLE (repeatable)")
	f.StringArrayVar(&revoke, "revoke", nil, "remove the key `ROLE=PUBFILE` from ROLE (repeatable)")
	f.StringArrayVar(&thresh, "threshold", nil, "`ROLE=N`, the signatures ROLE needs (repeatable)")
	f.DurationVar(&ttl, "ttl", publish.DefaultRootTTL, "validity of the new root")
	_ = c.MarkFlagRequired("repo")
	_ = c.MarkFlagRequired("draft")
	return c
}

func newRootSignCommand() *cobra.Command {
	var draft, key string
	c := &cobra.Command{
		Use:   "sign",
		Short: "add one key's signature to a root draft (on the machine that holds the key)",
		Args:  clidoc.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			k, err := sigkey.LoadPrivate(key)
			if err != nil {
				return err
			}
			if err := publish.SignDraft(draft, k); err != nil {
				return err
			}
			fmt.Printf("%s signed by key %s\n", draft, k.ID)
			return nil
		},
	}
	c.Flags().StringVar(&draft, "draft", "", "draft `FILE` (required)")
	c.Flags().StringVar(&key, "key", "", "private key `FILE` (required)")
	_ = c.MarkFlagRequired("draft")
	_ = c.MarkFlagRequired("key")
	return c
}

func newRootPublishCommand() *cobra.Command {
	var dir, draft string
	c := &cobra.Command{
		Use:   "publish",
		Short: "write a signed root draft into the repository, after the clients' checks",
		Args:  clidoc.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			r, err := publish.PublishRoot(dir, draft)
			if err != nil {
				return err
			}
			fmt.Printf("root %d published in %s\n", r.Signed.Version, dir)
			return nil
		},
	}
	c.Flags().StringVar(&dir, "repo", "", "repository `DIR` (required)")
	c.Flags().StringVar(&draft, "draft", "", "signed draft `FILE` (required)")
	_ = c.MarkFlagRequired("repo")
	_ = c.MarkFlagRequired("draft")
	return c
}

// roleKeys parses ROLE=PUBFILE arguments.
func roleKeys(args []string) (map[string][]repo.PublicKey, error) {
	out := map[string][]repo.PublicKey{}
	for _, a := range args {
		role, file, ok := strings.Cut(a, "=")
		if !ok || !validRole(role) {
			return nil, clidoc.Usage("%q: want ROLE=PUBFILE with ROLE one of %s", a, strings.Join(publish.Roles, ", "))
		}
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		k, err := sigkey.ParsePublic(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		out[role] = append(out[role], k)
	}
	return out, nil
}

// thresholds parses ROLE=N arguments.
func thresholds(args []string) (map[string]int, error) {
	out := map[string]int{}
	for _, a := range args {
		role, n, ok := strings.Cut(a, "=")
		v, err := strconv.Atoi(n)
		if !ok || !validRole(role) || err != nil || v < 1 {
			return nil, clidoc.Usage("%q: want ROLE=N with ROLE one of %s and N at least 1", a, strings.Join(publish.Roles, ", "))
		}
		out[role] = v
	}
	return out, nil
}

func validRole(r string) bool {
	for _, x := range publish.Roles {
		if r == x {
			return true
		}
	}
	return false
}

// newTargetsCommand releases a version whose targets key is offline:
// `add --targets-draft` leaves the targets unsigned, "targets sign" signs
// them where the key is, "targets publish" releases them.
func newTargetsCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "targets",
		Short: "sign a release's targets offline and publish them",
		Long: `targets completes a release made with "add --targets-draft FILE": "targets sign" adds the
offline targets key's signature to FILE on the machine that holds the key, and "targets
publish" checks the targets role's threshold and releases the version with the online
snapshot and timestamp keys (--key, --extra-key).`,
		Args: clidoc.NoArgs,
		RunE: func(*cobra.Command, []string) error { return clidoc.Usage("no targets command given") },
	}
	sign := newRootSignCommand()
	sign.Short = "add one key's signature to a targets draft (on the machine that holds the key)"
	c.AddCommand(sign, newTargetsPublishCommand())
	return c
}

func newTargetsPublishCommand() *cobra.Command {
	var (
		s     signing
		draft string
	)
	c := &cobra.Command{
		Use:   "publish",
		Short: "release signed targets drafted by add --targets-draft",
		Args:  clidoc.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			o, err := s.options()
			if err != nil {
				return err
			}
			if err := publish.PublishTargets(o, draft); err != nil {
				return err
			}
			fmt.Printf("targets of %s published in %s\n", draft, s.repoDir)
			return nil
		},
	}
	s.flags(c)
	c.Flags().StringVar(&draft, "draft", "", "signed targets draft `FILE` (required)")
	_ = c.MarkFlagRequired("draft")
	return c
}
