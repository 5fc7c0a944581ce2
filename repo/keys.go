package repo

import "laptop.org/upgrade/repo/sigkey"

// The key types are package sigkey's (the daemon links it without TUF).
type (
	PublicKey  = sigkey.PublicKey
	PrivateKey = sigkey.PrivateKey
	Keyring    = sigkey.Keyring
)
