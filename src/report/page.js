/*
 * kjit report: the page's own script (plain browser JavaScript, inlined into
 * the report by src/report/html.ts after uPlot, d3 and d3-flame-graph).  It
 * reads the report's data from the JSON block #kjit-data and builds every
 * section from it; nothing is fetched.
 */
(function () {
  'use strict';
  const data = JSON.parse(document.getElementById('kjit-data').textContent);
  const $ = (sel) => document.querySelector(sel);

  /* ---- small helpers ------------------------------------------------------------ */

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = v;
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children.flat()) if (c !== null && c !== undefined && c !== false) e.append(c instanceof Node ? c : String(c));
    return e;
  }
  const fmt = (x, d = 1) => (x === null || x === undefined || Number.isNaN(x) ? '-' : Number(x).toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: 0 }));
  function si(x) {
    if (x === null || x === undefined) return '-';
    const a = Math.abs(x);
    if (a >= 1e9) return (x / 1e9).toFixed(2) + ' G';
    if (a >= 1e6) return (x / 1e6).toFixed(2) + ' M';
    if (a >= 1e3) return (x / 1e3).toFixed(1) + ' k';
    return fmt(x, 1);
  }
  const mib = (b) => (b === null || b === undefined ? '-' : (b / 1048576).toFixed(2) + ' MiB');
  function table(headers, rowsData, cls) {
    return el('table', { class: cls || 'grid' }, el('thead', {}, el('tr', {}, headers.map((h) => el('th', {}, h)))), el('tbody', {}, rowsData.map((r) => el('tr', {}, r.map((c) => el('td', {}, c))))));
  }
  const noData = (why) => el('p', { class: 'no-data' }, 'no data: ' + why);
  const bootName = (b) => `boot ${b.boot.id} (${b.boot.mode}, ${b.boot.workload})`;
  const EVENT_COLORS = { install: '#1a9850', rollback: '#d73027', revert: '#f46d43', evict: '#984ea3', sysctl: '#2166ac', phase: '#555555', patch: '#e6ab02', fault: '#000000', instrument: '#91bfdb', pgo: '#999999' };
  const BOOT_COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b'];
  const chartWidth = () => Math.max(480, Math.min(1200, document.querySelector('main').clientWidth - 40));

  /* ---- header ------------------------------------------------------------------- */

  $('#generated').textContent = `${data.db} · generated ${data.generated_at.replace('T', ' ').slice(0, 19)} UTC · ${data.boots.length} boot(s)`;
  $('#boots').append(
    table(
      ['boot', 'mode', 'workload', 'image', 'machine', 'started', 'seconds', 'ops/s', 'p99 latency', 'samples', 'status'],
      data.boots.map((b) => {
        const s = b.summary || {};
        return [
          String(b.boot.id),
          b.boot.mode,
          b.boot.workload,
          b.boot.image,
          b.boot.machine_class,
          b.boot.started_at.replace('T', ' ').slice(0, 19),
          fmt(b.boot.seconds, 1),
          s.ops_per_sec !== undefined ? si(s.ops_per_sec) : '-',
          s.latency_us ? fmt(s.latency_us.p99, 1) + ' us' : '-',
          fmt(b.boot.samples, 0),
          b.boot.status,
        ];
      }),
    ),
  );

  /* ---- timeline ----------------------------------------------------------------- */

  /** Event markers over a uPlot chart: one DOM element each (hover shows what happened). */
  function markerPlugin(events) {
    return {
      hooks: {
        draw: [
          (u) => {
            u.over.querySelectorAll('.event-marker').forEach((m) => m.remove());
            for (const e of events) {
              const left = u.valToPos(e.at_s, 'x');
              if (!(left >= 0 && left <= u.over.clientWidth + 1)) continue;
              u.over.append(
                el('div', {
                  class: `event-marker event-${e.kind}`,
                  style: `left:${left}px;background:${EVENT_COLORS[e.kind] || '#999'}`,
                  title: `${fmt(e.at_s, 2)} s · ${e.kind}: ${e.text}`,
                  'data-kind': e.kind,
                }),
              );
            }
          },
        ],
      },
    };
  }

  function lineChart(target, o) {
    const opts = {
      width: chartWidth(),
      height: o.height || 200,
      title: o.title,
      scales: { x: { time: false }, ...(o.scales || {}) },
      axes: [
        { label: 'seconds into the run', labelSize: 20 },
        { label: o.yLabel, size: 70, values: (u, vals) => vals.map(o.yFormat || si) },
        ...(o.y2 ? [{ scale: o.y2.scale, side: 1, label: o.y2.label, size: 60, grid: { show: false }, values: (u, vals) => vals.map(o.y2.format || si) }] : []),
      ],
      series: [{ label: 't (s)', value: (u, v) => (v === null ? '-' : fmt(v, 2)) }, ...o.series],
      plugins: o.events ? [markerPlugin(o.events)] : [],
      legend: { live: true },
    };
    return new uPlot(opts, o.data, target);
  }

  function timelineCard(b, i) {
    const card = el('div', { class: 'card timeline-card', 'data-boot': b.boot.id }, el('h3', {}, bootName(b)));
    const t = b.timeline;
    if (!t || !t.points.length) {
      card.append(noData('this boot has no timeline (stored by a kjit that did not record one, or it ran for less than a second)'));
      return card;
    }
    const P = t.points;
    const x = P.map((p) => p.t_s);
    const s = b.summary || {};
    const rj = s.rejit || {};
    card.append(
      el(
        'p',
        { class: 'facts' },
        `${si(s.ops_per_sec)} ops/s over ${fmt(s.seconds, 1)} s`,
        rj.peak_ops_per_sec ? ` · peak ${si(rj.peak_ops_per_sec)} ops/s` : '',
        rj.time_to_95pct_peak_s !== null && rj.time_to_95pct_peak_s !== undefined ? ` · 95% of peak from ${fmt(rj.time_to_95pct_peak_s, 1)} s` : '',
        rj.compile_ms_total ? ` · ${fmt(rj.compile_ms_total / 1000, 2)} s compiling` : '',
        ` · ${t.events.length} event(s) marked`,
      ),
    );
    const thr = el('div', { class: 'chart throughput-chart' });
    card.append(thr);
    lineChart(thr, {
      title: 'throughput (operations per second, 1 s windows) with events',
      yLabel: 'ops/s',
      data: [x, P.map((p) => p.ops_per_sec)],
      series: [{ label: 'ops/s', stroke: BOOT_COLORS[i % BOOT_COLORS.length], width: 1.5, value: (u, v) => si(v) }],
      events: t.events,
    });
    const kinds = [...new Set(t.events.map((e) => e.kind))];
    card.append(el('p', { class: 'legend' }, kinds.map((k) => el('span', { class: 'chip' }, el('i', { style: `background:${EVENT_COLORS[k]}` }), `${k} (${t.events.filter((e) => e.kind === k).length})`))));
    const hasLat = P.some((p) => p.p50_us !== null);
    const lat = el('div', { class: 'chart latency-chart' });
    card.append(lat);
    if (hasLat) {
      lineChart(lat, {
        title: 'latency of the operations completed in each second (from scheduled arrival), us',
        yLabel: 'us',
        yFormat: (v) => fmt(v, 1),
        data: [x, P.map((p) => p.p50_us), P.map((p) => p.p99_us)],
        series: [
          { label: 'p50', stroke: '#2c7bb6', width: 1.2, value: (u, v) => fmt(v, 1) + ' us' },
          { label: 'p99', stroke: '#d7191c', width: 1.2, value: (u, v) => fmt(v, 1) + ' us' },
        ],
        events: t.events,
        height: 170,
      });
    } else lat.append(noData('no latency was recorded per second'));
    const res = el('div', { class: 'chart resources-chart' });
    card.append(res);
    const hasCpu = P.some((p) => p.compile_cpu !== null || p.main_cpu !== null);
    lineChart(res, {
      title: 'JIT code in use (MiB) and JIT CPU (share of one CPU)',
      yLabel: 'MiB',
      yFormat: (v) => fmt(v, 2),
      scales: { cpu: { range: [0, Math.max(1, ...P.map((p) => Math.max(p.compile_cpu || 0, p.main_cpu || 0)))] } },
      y2: { scale: 'cpu', label: 'CPU', format: (v) => Math.round(v * 100) + '%' },
      data: [x, P.map((p) => (p.code_bytes === null ? null : p.code_bytes / 1048576)), P.map((p) => p.compile_cpu), P.map((p) => p.main_cpu)],
      series: [
        { label: 'code in use', stroke: '#7b3294', width: 1.5, value: (u, v) => (v === null ? '-' : fmt(v, 2) + ' MiB') },
        { label: 'compile server CPU', scale: 'cpu', stroke: '#e66101', width: 1.2, value: (u, v) => (v === null ? '-' : Math.round(v * 100) + '%') },
        { label: 'main thread CPU', scale: 'cpu', stroke: '#fdb863', width: 1.2, value: (u, v) => (v === null ? '-' : Math.round(v * 100) + '%') },
      ],
      events: t.events,
      height: 170,
    });
    const hasGrant = P.some((p) => p.grant_bytes !== null && p.grant_bytes !== undefined);
    if (hasGrant) {
      const grant = el('div', { class: 'chart budget-chart' });
      card.append(grant);
      lineChart(grant, {
        title: 'memory budget the kernel grants the JIT, and what the JIT uses of it (MiB)',
        yLabel: 'MiB',
        yFormat: (v) => fmt(v, 1),
        data: [x, P.map((p) => (p.grant_bytes == null ? null : p.grant_bytes / 1048576)), P.map((p) => (p.budget_used_bytes == null ? null : p.budget_used_bytes / 1048576))],
        series: [
          { label: 'granted', stroke: '#1a9641', width: 1.5, value: (u, v) => (v === null ? '-' : fmt(v, 1) + ' MiB') },
          { label: 'used (code + compile server)', stroke: '#d7191c', width: 1.2, value: (u, v) => (v === null ? '-' : fmt(v, 1) + ' MiB') },
        ],
        events: t.events,
        height: 150,
      });
    }
    card.append(
      el(
        'p',
        { class: 'note' },
        `process RSS ${mib(Math.min(...P.map((p) => p.rss_bytes)))} to ${mib(Math.max(...P.map((p) => p.rss_bytes)))}. `,
        hasGrant ? '' : 'memory budget granted: no data — this boot negotiated no budget with the kernel (only re-JIT modes do). ',
        hasCpu ? '' : ' JIT CPU: no data — this boot had no compile server (no re-JIT).',
        ' Main-thread CPU includes the sampler\u2019s drain and the policy, not only linking and installing.',
      ),
    );
    const evList = el('details', { class: 'events' }, el('summary', {}, `${t.events.length} event(s)`));
    evList.append(table(['at', 'kind', 'what'], t.events.map((e) => [fmt(e.at_s, 2) + ' s', e.kind, e.text])));
    card.append(evList);
    return card;
  }

  const tl = $('#timeline');
  if (data.boots.length > 1) {
    const withPoints = data.boots.filter((b) => b.timeline && b.timeline.points.length);
    if (withPoints.length > 1) {
      const overlay = el('div', { class: 'card' }, el('h3', {}, 'throughput of the boots compared'));
      const c = el('div', { class: 'chart overlay-chart' });
      overlay.append(c);
      tl.append(overlay);
      lineChart(c, {
        title: 'operations per second, 1 s windows',
        yLabel: 'ops/s',
        data: uPlot.join(withPoints.map((b) => [b.timeline.points.map((p) => p.t_s), b.timeline.points.map((p) => p.ops_per_sec)])),
        series: withPoints.map((b, i) => ({ label: bootName(b), stroke: BOOT_COLORS[data.boots.indexOf(b) % BOOT_COLORS.length], width: 1.5, spanGaps: true, value: (u, v) => si(v) })),
      });
    }
  }
  data.boots.forEach((b, i) => tl.append(timelineCard(b, i)));

  /* ---- flame graphs ------------------------------------------------------------- */

  function drawFlame(target, tree, o) {
    target.textContent = '';
    const total = tree.value || 1;
    const chart = flamegraph
      .default()
      .width(chartWidth())
      .cellHeight(18)
      .transitionDuration(250)
      .minFrameSize(1)
      .title('')
      .setLabelHandler(o.label || ((d) => `${d.data.name}: ${fmt((d.data.value / total) * 100, 2)}% of samples (${d.data.value})`));
    if (o.details) chart.setDetailsElement(o.details);
    if (o.differential) chart.setColorMapper(flamegraph.colorMapper.differentialColorMapper);
    d3.select(target).datum(tree).call(chart);
    return chart;
  }

  const flame = $('#flame');
  if (!data.boots.length || !data.boots.some((b) => b.flame.value > 0)) flame.append(noData('no boot here has sampled stacks (sampling was off)'));
  else {
    const select = el('select', { id: 'flame-boot' }, data.boots.map((b, i) => el('option', { value: i, selected: i === data.boots.length - 1 }, bootName(b))));
    const details = el('div', { class: 'details', id: 'flame-details' }, 'hover a frame for its share of the samples; click it to zoom');
    const graph = el('div', { id: 'flame-graph', class: 'flame' });
    const cover = el('p', { class: 'note' });
    let chart = null;
    const show = () => {
      const b = data.boots[Number(select.value)];
      graph.dataset.boot = b.boot.id;
      cover.textContent = b.flame.value
        ? `${fmt(b.flame.value, 0)} samples; the stored hot paths (the ${fmt(b.flame_covered, 0)} samples of the boot\u2019s hottest whole chains) are drawn, the rest is [other chains]. Callers below, callees above.`
        : 'no samples in this boot.';
      chart = b.flame.value ? drawFlame(graph, b.flame, { details }) : null;
      if (!chart) graph.replaceChildren(noData('sampling was off in this boot'));
    };
    select.addEventListener('change', show);
    flame.append(el('p', { class: 'controls' }, 'boot ', select, ' ', el('button', { id: 'flame-reset', onclick: () => chart && chart.resetZoom() }, 'reset zoom')), details, graph, cover);
    show();
  }

  const diff = $('#diff');
  if (!data.diff) diff.append(noData('one boot only: give two with --boot A --boot B (the report compares the last two)'));
  else {
    const d = data.diff;
    const details = el('div', { class: 'details', id: 'diff-details' }, 'hover a frame: its share before and after');
    const graph = el('div', { id: 'diff-graph', class: 'flame' });
    diff.append(
      el('p', {}, `boot ${d.current}\u2019s frames, coloured by the change of their share of samples since boot ${d.base}: `, el('span', { class: 'grew' }, 'red grew'), ', ', el('span', { class: 'shrank' }, 'blue shrank'), '. Frames only in the older boot are not drawn (see the table).'),
      details,
      graph,
    );
    const total = d.tree.value || 1;
    drawFlame(graph, d.tree, {
      details,
      differential: true,
      label: (n) => `${n.data.name}: ${fmt(n.data.before_pct, 2)}% -> ${fmt((n.data.value / total) * 100, 2)}% of samples (${n.data.delta >= 0 ? '+' : ''}${n.data.delta} samples)`,
    });
    diff.append(
      el('h3', {}, 'largest changes of self share'),
      table(
        ['function', `boot ${d.base}`, `boot ${d.current}`, 'change'],
        d.self_changes.map((c) => [c.function, fmt(c.before_pct, 2) + '%', fmt(c.after_pct, 2) + '%', (c.after_pct >= c.before_pct ? '+' : '') + fmt(c.after_pct - c.before_pct, 2) + ' pt']),
      ),
    );
  }

  /* ---- compile log ---------------------------------------------------------------- */

  const cl = $('#compile-log');
  for (const b of data.boots) {
    cl.append(el('h3', {}, bootName(b)));
    if (!b.compile_log.length) {
      cl.append(noData(b.online ? 'nothing was compiled in this boot' : `mode ${b.boot.mode} compiles nothing while it runs (live patches would show here)`));
      continue;
    }
    cl.append(
      table(
        ['at', 'function', 'version', 'tier', 'reason', 'compile', 'code', 'outcome', 'why'],
        b.compile_log.map((c) => [
          c.at_s === null ? '-' : fmt(c.at_s, 2) + ' s',
          c.function,
          c.version === null ? '-' : 'v' + c.version,
          c.tier,
          c.reason,
          c.compile_ms === null ? '-' : fmt(c.compile_ms, 0) + ' ms',
          c.code_bytes === null ? '-' : fmt(c.code_bytes, 0) + ' B',
          el('span', { class: `outcome outcome-${c.outcome}` }, c.outcome),
          c.why || '',
        ]),
        'grid compile-log',
      ),
    );
  }

  /* ---- per function ------------------------------------------------------------- */

  function functionEntry(f) {
    const body = el('div', { class: 'fn-body' });
    body.append(el('p', { class: 'why' }, el('b', {}, 'why: '), f.why.why, f.why.at_s !== null ? ` (at ${fmt(f.why.at_s, 2)} s)` : ''));
    if (f.versions.length) body.append(el('h4', {}, 'versions'), table(['version', 'tier', 'code', 'state'], f.versions.map((v) => ['v' + v.version, v.tier, v.code_bytes === null ? '-' : fmt(v.code_bytes, 0) + ' B', v.state])));
    if (f.speedups.length)
      body.append(
        el('h4', {}, 'measured speedup (interleaved check of each set of versions it was in)'),
        table(['at', 'speedup', 'kept', 'verdict', 'versions in the set'], f.speedups.map((s) => [fmt(s.at_s, 2) + ' s', (s.speedup >= 0 ? '+' : '') + fmt(s.speedup * 100, 2) + '%', s.keep ? 'yes' : 'no', s.reason, String(s.with)])),
      );
    const p = f.profile;
    if (p) {
      body.append(el('h4', {}, `profile: exact counts (${p.windows} window(s), ${fmt(p.window_ms, 0)} ms, ${fmt(p.entry, 0)} calls)`));
      if (p.hot_branches.length) body.append(table(['branch site', 'executions', 'successors taken'], p.hot_branches.map((b) => ['#' + b.site, fmt(b.executions, 0), b.successors_pct.map((x) => x + '%').join(' / ')])));
      if (p.icalls.length)
        body.append(
          el('p', {}, 'indirect calls: the recorded targets go to LLVM as value profiles; its indirect-call promotion turns the dominant ones into guarded direct calls'),
          table(['call site', 'calls', 'targets'], p.icalls.map((s) => ['#' + s.site, fmt(s.total, 0), s.targets.map((t) => `${t.function} ${t.pct}%`).join(', ')])),
        );
    }
    if (f.decisions.length) body.append(el('h4', {}, 'decisions (each change of the policy\u2019s mind)'), table(['at', 'decision', 'reason', 'numbers'], f.decisions.map((d) => [d.at_s === null ? '-' : fmt(d.at_s, 2) + ' s', d.kind, d.reason, Object.entries(d.numbers).map(([k, v]) => `${k}=${typeof v === 'number' ? fmt(v, 3) : v}`).join(' ')])));
    if (f.compiles.length) body.append(el('h4', {}, 'compiles'), table(['at', 'version', 'tier', 'ms', 'outcome', 'why'], f.compiles.map((c) => [c.at_s === null ? '-' : fmt(c.at_s, 2) + ' s', c.version === null ? '-' : 'v' + c.version, c.tier, c.compile_ms === null ? '-' : fmt(c.compile_ms, 0), c.outcome, c.why || ''])));
    return el(
      'details',
      { class: 'fn', 'data-fn': f.name, 'data-state': f.why.state },
      el('summary', {}, el('code', {}, f.name), ' ', el('span', { class: `state state-${f.why.state}` }, f.why.state), ` self ${fmt(f.self_pct, 2)}% · total ${fmt(f.total_pct, 2)}% — `, el('span', { class: 'why-short' }, f.why.why)),
      body,
    );
  }

  const fns = $('#functions');
  data.boots.forEach((b, i) => {
    const box = el('details', { class: 'boot-functions', open: i === data.boots.length - 1 }, el('summary', {}, `${bootName(b)}: ${b.functions.length} function(s)`));
    if (!b.functions.length) box.append(noData('no function was sampled, decided on or compiled'));
    for (const f of b.functions) box.append(functionEntry(f));
    fns.append(box);
  });

  /* ---- benchmarks --------------------------------------------------------------- */

  function cell(v) {
    if (Array.isArray(v) && v.length === 2 && v.every((x) => typeof x === 'number')) return `[${fmt(v[0], 3)}, ${fmt(v[1], 3)}]`;
    if (typeof v === 'number') return Math.abs(v) >= 1000 ? fmt(v, 0) : fmt(v, 3);
    if (typeof v === 'boolean') return v ? 'yes' : 'no';
    if (v === null || v === undefined) return '-';
    return typeof v === 'object' ? JSON.stringify(v) : String(v);
  }
  const bench = $('#bench');
  if (!data.bench.length) bench.append(noData('no benchmark results: pass kjit bench ... --out FILE.json reports with --bench FILE.json (add --save-bench to keep them in the store)'));
  for (const r of data.bench) {
    const rep = r.report || {};
    const env = rep.env || {};
    bench.append(el('h3', {}, `${r.suite} · ${String(r.date).slice(0, 19).replace('T', ' ')} · ${r.source}`), el('p', { class: 'note' }, `commit ${env.commit || '-'} · ${env.cpu || '-'} (${env.llvm_cpu || '-'}) · node ${env.node || '-'}`));
    const rowsOf = Array.isArray(rep.rows) ? rep.rows : null;
    if (rowsOf && rowsOf.length) {
      const keys = [...new Set(rowsOf.flatMap((x) => Object.keys(x)))].filter((k) => rowsOf.some((x) => x[k] !== null && (typeof x[k] !== 'object' || (Array.isArray(x[k]) && x[k].length === 2 && x[k].every((y) => typeof y === 'number')))));
      bench.append(table(keys, rowsOf.map((x) => keys.map((k) => cell(x[k]))), 'grid bench-rows'));
    }
    const extra = Object.entries(rep).filter(([k, v]) => /ratio|geomean|overhead/.test(k) && v !== null && k !== 'rows');
    for (const [k, v] of extra) {
      if (v && typeof v === 'object' && !Array.isArray(v)) bench.append(el('p', {}, el('b', {}, k + ': '), Object.entries(v).map(([m, g]) => `${m} ${g && typeof g === 'object' ? `${cell(g.ratio)} ${cell(g.ci95)}` : cell(g)}`).join(' · ')));
      else bench.append(el('p', {}, el('b', {}, k + ': '), cell(v)));
    }
  }
  document.body.dataset.ready = 'true';
})();
