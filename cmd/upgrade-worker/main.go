// Command upgrade-worker runs one job of the upgrade daemon: upgraded
// starts it for each upgrade and each check, writes the request to its
// stdin and reads its events from descriptor 3 (package
// daemon/worker). It is a binary of its own so that the daemon, which
// stays resident, links neither the engine nor the network code; it is
// not meant to be run by hand.
package main

import (
	"context"
	"log"
	"log/slog"
	"os"

	"laptop.org/upgrade/daemon/worker/serve"
	"laptop.org/upgrade/systemd"
)

func main() {
	log.SetFlags(0)
	log.SetPrefix("upgrade-worker: ")
	if systemd.UnderJournal() {
		// The daemon's stderr, and so the journal's stream, is ours.
		slog.SetDefault(slog.New(systemd.NewLogHandler(os.Stderr, slog.LevelInfo)))
		log.SetPrefix("")
	}
	if len(os.Args) > 1 {
		log.Print("takes no arguments: upgraded starts it, with the job on stdin and an event pipe on descriptor 3")
		os.Exit(2)
	}
	// PID 1 of nothing and a daemon of nothing: serve.Main cancels the job
	// on SIGTERM and when the daemon's end of stdin closes.
	os.Exit(serve.Main(context.Background()))
}
