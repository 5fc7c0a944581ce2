// The independent TUF client of the peer test (issue 16): tuf-js, the
// client of sigstore's JavaScript tools, refreshes the repository from the
// trusted metadata in METADATA_DIR (root.json at first) and downloads one
// target by its path. Prints the target's custom fields as JSON; exits 2
// with the error when it refuses the repository.
//
// usage: node peer.js METADATA_DIR BASE_URL TARGET OUT_FILE
'use strict';
const { Updater } = require('tuf-js');

async function main() {
  const [metadataDir, baseUrl, target, out] = process.argv.slice(2);
  const u = new Updater({ metadataDir, metadataBaseUrl: baseUrl, targetBaseUrl: baseUrl + 'targets/' });
  await u.refresh();
  const info = await u.getTargetInfo(target);
  if (!info) {
    throw new Error('no target ' + target);
  }
  await u.downloadTarget(info, out);
  process.stdout.write(JSON.stringify(info.custom) + '\n');
}

main().catch((e) => {
  process.stderr.write(`${e.name}: ${e.message}\n`);
  process.exit(2);
});
