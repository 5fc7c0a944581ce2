# The end-to-end suite (issue 3): the real daemons and clients on a private
# system bus. `make gotest` runs it too (it is a Go package); this target runs
# it alone, verbosely. Needs root.
.PHONY: e2e
e2e: deps build
	UPGRADE_BIN=$(BIN) $(GO) test -race -count=1 -timeout 10m -v ./e2e/
