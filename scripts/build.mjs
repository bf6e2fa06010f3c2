#!/usr/bin/env node
/**
 * `npm run build`: compiles src/ to dist/ with tsc (tsconfig.build.json) and copies the files the code reads
 * at run time beside it (the dashboard, the Lua scripts, the spool worker's boot file), so dist/ mirrors src/
 * and every `new URL('./…', import.meta.url)` resolves the same in both. schemas/ stays at the root: the
 * migrator finds it two levels up from dist/migrate/ exactly as from src/migrate/.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const src = path.join(root, 'src');
const dist = path.join(root, 'dist');

rmSync(dist, { recursive: true, force: true });
const tsc = spawnSync(process.execPath, [path.join(root, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json'], {
  cwd: root,
  stdio: 'inherit',
});
if (tsc.status !== 0) process.exit(tsc.status ?? 1);

/** Every file under src/ that is not TypeScript is an asset the code reads at run time. */
function copyAssets(dir) {
  let copied = 0;
  for (const name of readdirSync(dir)) {
    const from = path.join(dir, name);
    if (statSync(from).isDirectory()) copied += copyAssets(from);
    else if (!name.endsWith('.ts')) {
      cpSync(from, path.join(dist, path.relative(src, from)));
      copied += 1;
    }
  }
  return copied;
}
const assets = copyAssets(src);
// bin/herald runs dist/ only when this stamp is there: a half-written dist/ (a failed build) is never run.
writeFileSync(path.join(dist, 'BUILD'), `${new Date().toISOString()}\n`);
console.log(`build: dist/ compiled, ${assets} assets copied`);
