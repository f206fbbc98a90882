// Copies the players' minified browser builds and the page into dist/.
// Run after `npm install` (or `npm ci`): `npm run build`.
import { copyFileSync, mkdirSync, rmSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, 'dist');

// [source relative to this folder, name in dist/]
const files = [
  ['node_modules/hls.js/dist/hls.min.js', 'hls.min.js'],
  // dashjs 5 ships UMD builds under dist/modern/umd (dist/legacy/umd for old browsers);
  // dash.all includes the protection (EME / ClearKey) controller.
  ['node_modules/dashjs/dist/modern/umd/dash.all.min.js', 'dash.all.min.js'],
  ['node_modules/shaka-player/dist/shaka-player.compiled.js', 'shaka-player.compiled.js'],
  ['index.html', 'index.html'],
  ['player.js', 'player.js'],
];

rmSync(dist, { recursive: true, force: true });
mkdirSync(dist, { recursive: true });
for (const [from, to] of files) {
  const src = join(here, from);
  try {
    statSync(src);
  } catch {
    console.error(`build: missing ${from} (run npm install / npm ci in infra/player first)`);
    process.exit(1);
  }
  copyFileSync(src, join(dist, to));
  console.log(`dist/${to}  (${statSync(join(dist, to)).size} bytes)`);
}
