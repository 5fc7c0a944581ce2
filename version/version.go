// Package version holds the release every binary reports with --version.
// It imports nothing, so that init (PID 1 of the initrd) can report it
// without the command-line library the other binaries use.
package version

// Version is set by make build: -ldflags -X laptop.org/upgrade/version.Version=...
var Version = "dev"
