package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"laptop.org/upgrade/clidoc"
	"laptop.org/upgrade/repo/sigkey"
)

// defaultKeyDir keeps secret keys out of whatever directory the release
// manager happens to be in (a checkout, a shared build tree).
func defaultKeyDir() string {
	d, err := os.UserConfigDir()
	if err != nil {
		return ""
	}
	return filepath.Join(d, "upgrade-publish", "keys")
}

func newKeygenCommand() *cobra.Command {
	var out, name string
	c := &cobra.Command{
		Use:   "keygen",
		Short: "make a new Ed25519 key pair: NAME.key (secret) and NAME.pub",
		Long: `keygen makes a new Ed25519 signing key pair in --out (default
$XDG_CONFIG_HOME/upgrade-publish/keys, that is ~/.config/upgrade-publish/keys): NAME.key,
readable by its owner only, signs; NAME.pub goes into every client's trusted keys
(/etc/upgrade/keys). An existing key is never overwritten.`,
		Args: clidoc.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if out == "" {
				return clidoc.Usage("no home directory for the default --out; give --out DIR")
			}
			return keygen(out, name)
		},
	}
	c.Flags().StringVar(&out, "out", defaultKeyDir(), "directory for the new keys")
	c.Flags().StringVar(&name, "name", "", "key file name (default: the key id)")
	return c
}

func keygen(dir, name string) error {
	k, err := sigkey.GenerateKey()
	if err != nil {
		return err
	}
	if name == "" {
		name = k.ID
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	priv, pub := filepath.Join(dir, name+".key"), filepath.Join(dir, name+".pub")
	for _, p := range []string{priv, pub} {
		if _, err := os.Lstat(p); err == nil {
			return fmt.Errorf("%s exists; keygen never overwrites a key (choose another --name or --out)", p)
		}
	}
	if err := create(priv, sigkey.MarshalPrivate(k), 0o600); err != nil {
		return err
	}
	if err := create(pub, sigkey.MarshalPublic(k.Public()), 0o644); err != nil {
		return err
	}
	fmt.Printf("key %s: secret %s, public %s\n", k.ID, priv, pub)
	return nil
}

// create writes a new file, failing if one appeared meanwhile.
func create(path string, b []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if errors.Is(err, os.ErrExist) {
		return fmt.Errorf("%s exists; keygen never overwrites a key", path)
	}
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
