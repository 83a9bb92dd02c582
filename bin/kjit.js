#!/usr/bin/env -S node --max-semi-space-size=1
// The kjit command: a thin launcher for the compiled CLI in dist/.
//
// V8's young generation grows (to 32 MB) as objects survive scavenges and is
// never given back; kjit's host thread makes small, short-lived objects, so a
// 1 MB semi-space keeps a long-running kjit's resident memory flat (measured:
// +30 MB over a long `kjit bench stress` with the default, +3 MB with this).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const main = new URL('../dist/src/cli/main.js', import.meta.url);
if (!existsSync(fileURLToPath(main))) {
  process.stderr.write('kjit: not built yet: run `npm run setup` (installs LLVM 19, npm packages, builds TypeScript and IR)\n');
  process.exit(2);
}
const { main: run } = await import(main.href);
process.exitCode = await run(process.argv.slice(2));
