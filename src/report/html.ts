/**
 * @fileoverview The report as one self-contained HTML file: the data as a
 * JSON block, and every script and style it needs inlined (uPlot for the
 * timelines, d3 and d3-flame-graph for the flame graphs, read from
 * node_modules when the report is written; the page's own page.js and
 * page.css).  Its Content-Security-Policy allows no fetch of any kind, so
 * it works offline and provably loads nothing.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import { ExitCode, KjitError } from '../errors.js';
import { ROOT } from '../paths.js';
import type { ReportData } from './data.js';

/** The libraries inlined, in load order (d3-flame-graph's UMD build expects d3 as a global). */
export const REPORT_ASSETS = {
  scripts: ['node_modules/uplot/dist/uPlot.iife.min.js', 'node_modules/d3/dist/d3.min.js', 'node_modules/d3-flame-graph/dist/d3-flamegraph.umd.min.js', 'src/report/page.js'],
  styles: ['node_modules/uplot/dist/uPlot.min.css', 'src/report/page.css'],
};

function asset(rel: string): string {
  const path = join(ROOT, rel);
  if (!existsSync(path)) throw new KjitError(`the report needs ${rel}, which is missing`, 'run npm ci (or npm run setup) in the kjit directory', ExitCode.FAILURE);
  return readFileSync(path, 'utf8');
}

/** Text inside <script>: a literal `</script` would end the element early. */
const scriptText = (js: string) => js.replace(/<\/(script)/gi, '<\\/$1');

const escapeHtml = (s: string) => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);

export function renderReport(data: ReportData): string {
  const title = `kjit report: ${data.boots.map((b) => `boot ${b.boot.id} (${b.boot.mode}, ${b.boot.workload})`).join(' vs ') || 'benchmarks'}`;
  const json = JSON.stringify(data).replace(/</g, '\\u003c');
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
${REPORT_ASSETS.styles.map((s) => `<style>\n${asset(s)}\n</style>`).join('\n')}
</head>
<body>
<header>
<h1>${escapeHtml(title)}</h1>
<p id="generated"></p>
<nav><a href="#s-boots">boots</a><a href="#s-timeline">timeline</a><a href="#s-flame">flame graph</a><a href="#s-diff">differential</a><a href="#s-compile-log">compile log</a><a href="#s-functions">functions: why</a><a href="#s-bench">benchmarks</a></nav>
</header>
<main>
<section id="s-boots"><h2>Boots</h2><div id="boots"></div></section>
<section id="s-timeline"><h2>Timeline: throughput, latency, memory and JIT CPU, with installs, rollbacks, reverts, evictions, sysctl changes and phases marked</h2><div id="timeline"></div></section>
<section id="s-flame"><h2>Flame graph of the sampled stacks</h2><div id="flame"></div></section>
<section id="s-diff"><h2>Differential flame graph</h2><div id="diff"></div></section>
<section id="s-compile-log"><h2>Compile log</h2><div id="compile-log"></div></section>
<section id="s-functions"><h2>Per function: versions, profile, measured speedup, and why it was or was not optimized</h2><div id="functions"></div></section>
<section id="s-bench"><h2>Benchmark results</h2><div id="bench"></div></section>
</main>
<script type="application/json" id="kjit-data">${json}</script>
${REPORT_ASSETS.scripts.map((s) => `<script>\n${scriptText(asset(s))}\n</script>`).join('\n')}
</body>
</html>
`;
}
