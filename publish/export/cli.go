package export

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"laptop.org/upgrade/errdefs"
	"laptop.org/upgrade/repo/sigkey"
)

// Flags are the export subcommand's arguments as given.
type Flags struct {
	Repo, Keys, To string
	Versions, From string // ParseVersions lists
}

// Run is `upgrade-publish export`: it exports and tells the operator what
// the disk is good for, and until when.
func Run(ctx context.Context, f Flags, w io.Writer) error {
	if f.Repo == "" || f.Keys == "" || f.To == "" {
		return fmt.Errorf("export needs --repo, --keys and --to: %w", errdefs.ErrInvalidArgument)
	}
	o := Options{Repo: f.Repo, To: f.To}
	var err error
	if o.Root, o.Keys, err = sigkey.LoadTrust(filepath.Join(f.Keys, "root.json"), f.Keys); err != nil {
		return err
	}
	if o.Versions, err = ParseVersions(f.Versions); err != nil {
		return err
	}
	if o.From, err = ParseVersions(f.From); err != nil {
		return err
	}
	res, err := Export(ctx, o)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "exported versions %v to %s: %d files, %d bytes; laptops accept it until %s\n",
		res.Versions, f.To, res.Files, res.Bytes, res.Expires.Local().Format(time.RFC1123))
	if !res.Newest {
		fmt.Fprintf(w, "note: the index's newest version is not on the disk: laptops must ask for one of %v\n", res.Versions)
	}
	return nil
}
