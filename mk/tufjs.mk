# The peer test of issue 16: tuf-js, an independent TUF client, must accept
# what upgrade-publish publishes (across a timestamp refresh and a root
# rotation) and refuse the attacks. npm ci installs the tuf-js version of
# interop/tufjs/package-lock.json beside the test; the Go test carries the
# build tag tufjs so that `go test ./...` does not need node.
.PHONY: test-tufjs
interop/tufjs/node_modules/.package-lock.json: interop/tufjs/package-lock.json
	@command -v npm >/dev/null || { echo "test-tufjs needs npm (scripts/deps.d/tufjs.txt)"; exit 1; }
	cd interop/tufjs && npm ci --no-audit --no-fund
test-tufjs: interop/tufjs/node_modules/.package-lock.json
	$(GO) test -tags tufjs -count=1 -v ./interop/tufjs/

TEST_EXTRA += test-tufjs
