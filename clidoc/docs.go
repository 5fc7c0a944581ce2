//go:build clidoc

package clidoc

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/cpuguy83/go-md2man/v2/md2man"
	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"

	"laptop.org/upgrade/version"
)

func init() { docsCommand = newDocsCommand }

// newDocsCommand is hidden: `make install` runs `BINARY __docs --man DIR
// --completion DIR` on a build with the tag clidoc, so the pages and
// completion come from the binary's own command tree.
func newDocsCommand(root *cobra.Command, d Docs) *cobra.Command {
	var man, completion string
	c := &cobra.Command{
		Use:    "__docs",
		Short:  "write man pages and shell completion (used by make install)",
		Hidden: true,
		Args:   NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if man != "" {
				if err := WriteMan(root, d, man); err != nil {
					return err
				}
			}
			if completion != "" {
				if err := os.MkdirAll(completion, 0o755); err != nil {
					return err
				}
				return root.GenBashCompletionFileV2(filepath.Join(completion, root.Name()), true)
			}
			return nil
		},
	}
	c.Flags().StringVar(&man, "man", "", "write man pages into `DIR`/manN")
	c.Flags().StringVar(&completion, "completion", "", "write the bash completion into `DIR`")
	return c
}

// date is the pages' date: SOURCE_DATE_EPOCH for reproducible builds.
func date() *time.Time {
	t := time.Now()
	if s, err := strconv.ParseInt(os.Getenv("SOURCE_DATE_EPOCH"), 10, 64); err == nil {
		t = time.Unix(s, 0).UTC()
	}
	return &t
}

// WriteMan writes root's pages (one per command) into dir/manN and the
// extra pages into the section their file name ends in.
func WriteMan(root *cobra.Command, d Docs, dir string) error {
	sec := filepath.Join(dir, "man"+d.Section)
	if err := os.MkdirAll(sec, 0o755); err != nil {
		return err
	}
	root.DisableAutoGenTag = true
	h := &doc.GenManHeader{Section: d.Section, Source: "laptop-upgrade " + version.Version, Manual: "Dual-slot upgrades", Date: date()}
	if err := doc.GenManTree(root, h, sec); err != nil {
		return fmt.Errorf("man pages: %w", err)
	}
	if d.Extra == nil {
		return nil
	}
	for name, md := range d.Extra() {
		ext := filepath.Ext(name)
		sub := filepath.Join(dir, "man"+ext[1:])
		if err := os.MkdirAll(sub, 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(sub, name), md2man.Render([]byte(md)), 0o644); err != nil {
			return err
		}
	}
	return nil
}
