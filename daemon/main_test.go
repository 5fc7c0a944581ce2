package daemon_test

import (
	"context"
	"os"
	"testing"

	"laptop.org/upgrade/daemon/worker"
	"laptop.org/upgrade/daemon/worker/serve"
	"laptop.org/upgrade/engine"
	"laptop.org/upgrade/internal/testrepo"
)

// workerEnv makes the test binary a worker: the daemon's jobs run in real
// worker processes, as upgraded's do.
const workerEnv = "DAEMON_TEST_WORKER"

func TestMain(m *testing.M) {
	if os.Getenv(workerEnv) == "1" {
		os.Exit(serve.Main(context.Background()))
	}
	code := m.Run()
	testrepo.Cleanup()
	os.Exit(code)
}

// runner starts the test binary as the worker.
func runner() *worker.Runner {
	return &worker.Runner{Path: os.Args[0], Env: append(os.Environ(), workerEnv+"=1")}
}

// settings are cfg as a worker receives them.
func settings(cfg *engine.Config) worker.Settings {
	return worker.Settings{Root: cfg.Root.Dir, Mirrors: cfg.Mirrors, Channel: cfg.Channel, Hardware: cfg.Hardware, Keys: cfg.Keys, Policy: cfg.Policy}
}
