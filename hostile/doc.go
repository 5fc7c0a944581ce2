// Package hostile holds the tests that prove the product's invariants
// against an adversary and against the machine itself: crafted repositories
// and mirrors (every attack of The Update Framework's threat model plus the
// filesystem attacks specific to a tree), kill -9 across whole upgrades, power
// cuts in a VM, the order of fsyncs and renames, full disks and huge
// manifests. docs/security.md maps each threat to its defence and to the test
// here that fails when the defence is removed.
//
// The package has no code of its own: it exists so that these tests, which
// cut across every package, live in one place and run with `make test`.
package hostile
