// The cooperative scheduler (issue 8), the parts apart from the PGO policy:
// the token bucket and the job queue with fake time, the compile-time
// model, the stats object; and the compile server's priority, pinning,
// memory limit and deaths (retried once, then blacklisted) with a real server.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { REFERENCE } from '../dist/src/kernel/image.js';
import { prepareBoot, type PreparedBoot } from '../dist/src/kernel/run.js';
import { affinityOf, SCHED_IDLE, SCHED_OTHER, schedulerPolicy } from '../dist/src/native/libc.js';
import { CompileTimeModel, MODEL_PARAMS } from '../dist/src/scheduler/compile-model.js';
import { classifyDeath, CompileServer, CompileServerError, type CompileServerOptions, unitKey } from '../dist/src/scheduler/compile-server.js';
import { threadIds } from '../dist/src/scheduler/proc.js';
import { type JobKind, JobQueue, type JobSpec, QUEUE_PARAMS } from '../dist/src/scheduler/queue.js';
import { JitCpuMeter, schedulerStats } from '../dist/src/scheduler/stats.js';
import { niceForShare, shareAtNice, TokenBucket } from '../dist/src/scheduler/token-bucket.js';

describe('the token bucket', () => {
  it('lifts a starved server while it has tokens and drops it when they are spent', () => {
    const b = new TokenBucket(0, { minShare: 0.02, capacityMs: 10, liftAtMs: 5 });
    /* full at start: a job gets its burst at once */
    expect(b.step(0, 0, true)).toMatchObject({ lift: true, reason: 'starved' });
    /* lifted, it runs 6 ms in 20 ms: 10 + 0.4 - 6 */
    expect(b.step(20, 6, true).lift).toBe(true);
    expect(b.tokensMs).toBeCloseTo(4.4);
    /* it spends the rest, and a little more (owed): back to SCHED_IDLE */
    expect(b.step(40, 12, true)).toMatchObject({ lift: false, reason: 'spent' });
    expect(b.tokensMs).toBeCloseTo(-1.2);
  });

  it('has hysteresis: after a drop it lifts again only once liftAtMs is earned back', () => {
    const b = new TokenBucket(0, { minShare: 0.02, capacityMs: 10, liftAtMs: 5 });
    b.step(0, 0, true);
    b.step(10, 100, true); /* spent everything and owes the most it may: -10 */
    expect(b.lifted).toBe(false);
    expect(b.tokensMs).toBe(-10);
    /* starved at SCHED_IDLE: no CPU; 0.02 ms earned per ms */
    expect(b.step(200, 100, true)).toMatchObject({ lift: false, reason: 'within-share' });
    expect(b.step(759, 100, true).lift).toBe(false); /* -10 + 0.02 x 749 = 4.98 ms */
    expect(b.step(761, 100, true)).toMatchObject({ lift: true, reason: 'starved' }); /* 5.02 ms */
    expect(b.lifts).toBe(2);
  });

  it('counts CPU the server got at SCHED_IDLE (idle time) toward its share: no lift when it already has it', () => {
    const b = new TokenBucket(0, { minShare: 0.02, capacityMs: 10, liftAtMs: 5 });
    b.step(0, 0, true);
    b.step(20, 20, true); /* spent */
    for (let t = 40, cpu = 40; t <= 2000; t += 20, cpu += 20) expect(b.step(t, cpu, true).lift).toBe(false);
  });

  it('averages the minimum share over a long run against a busy core', () => {
    /* simulate: lifted at nice 17 against one nice-0 thread it gets 2.2%, at SCHED_IDLE 0.3% */
    const b = new TokenBucket(0, { minShare: 0.02 });
    let cpu = 0;
    b.step(0, 0, true);
    for (let t = 20; t <= 600_000; t += 20) {
      cpu += 20 * (b.lifted ? shareAtNice(niceForShare(0.02)) : 3 / (3 + 1024));
      b.step(t, cpu, true);
    }
    expect(cpu / 600_000).toBeGreaterThan(0.019);
    expect(cpu / 600_000).toBeLessThan(0.0215);
  });

  it('charges what a lifted server overspent as debt, earned back before the next lift; CPU from idle time is never owed', () => {
    const b = new TokenBucket(0, { minShare: 0.02, capacityMs: 10, liftAtMs: 5 });
    b.step(0, 0, true);
    b.step(20, 16, true); /* lifted, overspent: 10 + 0.4 - 16 */
    expect(b.tokensMs).toBeCloseTo(-5.6);
    expect(b.lifted).toBe(false);
    b.step(520, 16, true); /* +10 */
    expect(b.tokensMs).toBeCloseTo(4.4);
    expect(b.lifted).toBe(false);
    b.step(540, 1000, true); /* at SCHED_IDLE, a whole idle core: owes nothing */
    expect(b.tokensMs).toBe(0);
  });

  it('says when its decision could next change, so the mechanism does not poll at 50 Hz', () => {
    const b = new TokenBucket(0, { minShare: 0.02, capacityMs: 100, liftAtMs: 5 });
    b.step(0, 0, true);
    b.step(20, 20, true); /* lifted, ran a whole core: 80.4 ms left */
    expect(b.nextStepInMs(true)).toBeCloseTo(80.4 / 0.98);
    b.step(100, 21, true); /* starved even lifted (1.25%): checks seldom */
    expect(b.nextStepInMs(true)).toBe(500);
    b.step(200, 200, true); /* spent: lift again once 5 ms are earned back */
    expect(b.lifted).toBe(false);
    expect(b.nextStepInMs(true)).toBe(500);
    expect(b.nextStepInMs(false)).toBe(500);
    const c = new TokenBucket(0, { minShare: 0.5, capacityMs: 100, liftAtMs: 5 });
    c.step(0, 0, true);
    c.step(10, 105.5, true); /* -0.5: 5.5 more to earn at 0.5 per ms */
    expect(c.lifted).toBe(false);
    expect(c.nextStepInMs(true)).toBe(20); /* never more often than tickMs */
  });

  it('refills without work, up to its capacity, and never lifts an idle server', () => {
    const b = new TokenBucket(0, { minShare: 0.5, capacityMs: 30, liftAtMs: 5 });
    b.step(0, 0, true);
    b.step(10, 100, true);
    expect(b.step(1000, 100, false)).toMatchObject({ lift: false, reason: 'no-work' });
    expect(b.tokensMs).toBe(30);
    expect(new TokenBucket(0, { minShare: 0 }).step(10, 0, true).reason).toBe('disabled');
  });

  it('picks the weakest nice value that still reaches the share (nice 19 is only 1.44%)', () => {
    expect(shareAtNice(19)).toBeCloseTo(15 / 1039);
    expect(niceForShare(0.02)).toBe(17);
    expect(niceForShare(0.01)).toBe(19);
    expect(shareAtNice(niceForShare(0.05))).toBeGreaterThanOrEqual(0.05);
  });
});

describe('the compile-time model', () => {
  it('answers with the prior until it has enough points of two sizes', () => {
    const m = new CompileTimeModel();
    expect(m.fit().source).toBe('prior');
    expect(m.predict(1000)).toBeCloseTo(MODEL_PARAMS.priorFixedMs + MODEL_PARAMS.priorMsPerUnit * 1000);
    for (let i = 0; i < 10; i++) m.add(500, 30); /* one size only: no line through it */
    expect(m.fit().source).toBe('prior');
  });

  it('fits compile ms on IR size by least squares', () => {
    const m = new CompileTimeModel();
    const truth = (x: number) => 40 + 0.02 * x;
    for (const x of [100, 400, 900, 1600, 2500, 3600]) m.add(x, truth(x) + (x % 200 === 0 ? 1 : -1));
    const f = m.fit();
    expect(f.source).toBe('fit');
    expect(f.msPerUnit).toBeCloseTo(0.02, 2);
    expect(f.fixedMs).toBeCloseTo(40, 0);
    expect(f.r2!).toBeGreaterThan(0.99);
    expect(m.predict(10_000)).toBeCloseTo(truth(10_000), -1);
  });

  it('forgets old points beyond its window and never predicts a negative or falling cost', () => {
    const m = new CompileTimeModel({ ...MODEL_PARAMS, window: 5 });
    for (const x of [100, 200, 300, 400, 500]) m.add(x, 1000);
    for (const x of [100, 200, 300, 400, 500]) m.add(x, 10 + x / 10);
    expect(m.size).toBe(5);
    expect(m.predict(300)).toBeCloseTo(40);
    const falling = new CompileTimeModel();
    for (const x of [100, 200, 300, 400, 500]) falling.add(x, 100 - x / 10);
    expect(falling.fit().msPerUnit).toBe(0);
    expect(falling.predict(1e6)).toBeCloseTo(70);
    m.add(Number.NaN, 5);
    m.add(-1, 5);
    expect(m.size).toBe(5);
  });
});

describe('the job queue', () => {
  let now = 0;
  const clock = () => now;
  const spec = (fn: string, kind: JobKind, sampleShare: number, irSize = 1000): JobSpec => ({ fn, kind, sampleShare, irSize });
  /* prior: cost 60 + 0.01 x 1000 = 70 ms; optimize: benefit = share x 0.1 x 10 s */
  const queue = (params: Partial<typeof QUEUE_PARAMS> = {}) => {
    now = 0;
    return new JobQueue({ clock, params });
  };

  it('orders jobs by expected benefit over cost, urgent kinds first', () => {
    const q = queue();
    expect(q.offer(spec('a', 'optimize', 0.1)).queued).toBe(true); /* 100 / 70 */
    expect(q.offer(spec('b', 'optimize', 0.5)).queued).toBe(true); /* 500 / 70 */
    expect(q.offer(spec('c', 'optimize', 0.5, 20_000)).queued).toBe(true); /* 500 / 260 */
    expect(q.offer(spec('d', 'specialize', 0.3)).queued).toBe(true); /* 450 / 70 */
    now = 5;
    q.offer(spec('e', 'despecialize', 0));
    q.offer(spec('f', 'patch', 0));
    q.offer(spec('g', 'evict', 0));
    expect(q.ordered().map((j) => j.fn)).toEqual(['g', 'f', 'e', 'b', 'd', 'c', 'a']);
    expect(q.next()!.fn).toBe('g');
    expect(q.stats()).toMatchObject({ queued: 6, running: 1 });
  });

  it('refuses a job whose benefit does not pay for its compile, with the numbers', () => {
    const q = queue();
    const r = q.offer(spec('cold', 'optimize', 0.01));
    expect(r).toMatchObject({ queued: false, reason: 'below-threshold' });
    expect(r.scoring!.benefitMs).toBeCloseTo(10);
    expect(r.scoring!.costMs).toBeCloseTo(70);
    expect(q.offer({ fn: 'x', kind: 'optimize', sampleShare: 2, irSize: 1 }).queued).toBe(false);
    expect(q.offer({ fn: 'x', kind: 'nonsense' as JobKind, sampleShare: 0.5, irSize: 1 })).toMatchObject({ queued: false, reason: 'bad-input' });
  });

  it('has hysteresis: admitted at the threshold, dropped only below leaveRatio of it', () => {
    const q = queue();
    /* threshold 1 (+1/8 per queued job): score 1.0 needs share 0.07 at 70 ms */
    expect(q.offer(spec('f', 'optimize', 0.06)).queued).toBe(false); /* 0.86 */
    expect(q.offer(spec('f', 'optimize', 0.071)).queued).toBe(true); /* 1.01: admitted */
    expect(q.offer(spec('f', 'optimize', 0.05)).queued).toBe(true); /* 0.71 >= 0.6: stays (supersedes) */
    expect(q.stats().droppedBy.superseded).toBe(1);
    expect(q.offer(spec('f', 'optimize', 0.03)).queued).toBe(false); /* 0.43: leaves */
    expect(q.offer(spec('f', 'optimize', 0.05)).queued).toBe(false); /* out again: 0.71 is not enough to enter */
  });

  it('drops a queued job whose score fell below the hysteresis level (a poor speedup measured meanwhile)', () => {
    const q = queue();
    q.offer(spec('f', 'optimize', 0.2));
    q.offer(spec('g', 'optimize', 0.1));
    q.recordSpeedup('f', 'optimize', 0.001);
    expect(q.next()!.fn).toBe('g');
    expect(q.recentDrops().map((d) => [d.job.fn, d.reason])).toEqual([['f', 'below-threshold']]);
  });

  it('learns expected speedups: the function\'s own, then its kind\'s mean, then the prior', () => {
    const q = queue();
    expect(q.expectedSpeedup('f', 'optimize')).toEqual({ speedup: 0.1, from: 'prior' });
    expect(q.expectedSpeedup('f', 'instrument').speedup).toBeCloseTo(0.05);
    q.recordSpeedup('f', 'optimize', 0.3);
    expect(q.expectedSpeedup('f', 'optimize')).toEqual({ speedup: 0.3, from: 'function' });
    q.recordSpeedup('g', 'optimize', 0.2);
    q.recordSpeedup('h', 'optimize', 0.1);
    expect(q.expectedSpeedup('z', 'optimize').from).toBe('kind');
    expect(q.expectedSpeedup('z', 'optimize').speedup).toBeCloseTo(0.2);
    /* a job done teaches both models */
    q.offer(spec('k', 'specialize', 0.5, 2000));
    const job = q.next()!;
    q.done(job, { compileMs: 90, speedup: 0.25 });
    expect(q.expectedSpeedup('k', 'specialize')).toEqual({ speedup: 0.25, from: 'function' });
    expect(q.model.size).toBe(1);
    expect(q.stats().done).toBe(1);
  });

  it('drops stale jobs (TTL) but never a patch', () => {
    const q = queue({ ttlMs: 1000 });
    q.offer(spec('a', 'optimize', 0.5));
    q.offer(spec('p', 'patch', 0));
    now = 999;
    q.offer(spec('b', 'optimize', 0.5));
    now = 1500;
    expect(q.ordered().map((j) => j.fn)).toEqual(['p', 'a', 'b']); /* not yet looked at */
    expect(q.next()!.fn).toBe('p');
    expect(q.next()!.fn).toBe('b');
    expect(q.next()).toBeNull();
    expect(q.stats()).toMatchObject({ dropped: 1, droppedBy: { stale: 1 } });
  });

  it('lets the newest job for a function supersede the queued ones, except a patch, which only a patch supersedes', () => {
    const q = queue();
    q.offer(spec('f', 'instrument', 0.9));
    q.offer(spec('f', 'optimize', 0.9));
    expect(q.ordered().map((j) => j.kind)).toEqual(['optimize']);
    q.offer(spec('f', 'patch', 0));
    q.offer(spec('f', 'evict', 0));
    expect(q.ordered().map((j) => j.kind)).toEqual(['evict', 'patch']);
    q.offer(spec('f', 'patch', 0)); /* a newer patch: supersedes both */
    expect(q.ordered().map((j) => j.kind)).toEqual(['patch']);
    expect(q.stats().droppedBy.superseded).toBe(4);
  });

  it('raises thresholds with memory pressure (HotSpot: exp(capacity/free - 2) beyond half full) and queue length', () => {
    const q = queue();
    expect(q.threshold()).toBe(1);
    q.setLoad({ pressure: 0.5 });
    expect(q.threshold()).toBeCloseTo(1);
    q.setLoad({ pressure: 0.8 });
    expect(q.threshold()).toBeCloseTo(Math.exp(3));
    expect(q.offer(spec('f', 'optimize', 0.3)).queued).toBe(false); /* 4.3 < 20 */
    expect(q.offer(spec('g', 'evict', 0)).queued).toBe(true); /* urgent kinds pass */
    q.setLoad({ pressure: 0 });
    expect(q.threshold()).toBeCloseTo(1 + 1 / 8);
    /* a busy kernel saves more with the same speedup than an idle one */
    q.setLoad({ kernelLoad: 0.1 });
    expect(q.offer(spec('h', 'optimize', 0.3)).queued).toBe(false);
  });

  it('cancels queued jobs on demand (a revocation) and pushes out the worst beyond maxQueued', () => {
    const q = queue({ maxQueued: 2 });
    q.offer(spec('a', 'optimize', 0.5));
    q.offer(spec('b', 'optimize', 0.9));
    expect(q.offer(spec('c', 'optimize', 0.7)).queued).toBe(true);
    expect(q.ordered().map((j) => j.fn)).toEqual(['b', 'c']);
    expect(q.offer(spec('d', 'optimize', 0.4))).toMatchObject({ queued: false, reason: 'queue-full' });
    expect(q.cancel((j) => j.fn === 'b')).toBe(1);
    expect(q.cancel()).toBe(1);
    expect(q.stats()).toMatchObject({ queued: 0, droppedBy: { 'queue-full': 2, cancelled: 2 } });
  });

  it('a failed job is counted and never blocks the ones behind it', () => {
    const q = queue();
    q.offer(spec('a', 'optimize', 0.9));
    q.offer(spec('b', 'optimize', 0.5));
    q.failed(q.next()!);
    expect(q.next()!.fn).toBe('b');
    expect(q.stats()).toMatchObject({ failed: 1, running: 1 });
  });
});

describe('the scheduler figures', () => {
  it('has the shape of kjit run --json\'s scheduler object, budget fields empty until the budget exists', () => {
    const q = new JobQueue({ clock: () => 0 });
    q.offer({ fn: 'f', kind: 'evict', sampleShare: 0, irSize: 0 });
    q.done(q.next()!);
    q.offer({ fn: 'g', kind: 'optimize', sampleShare: 0.9, irSize: 0 });
    q.cancel();
    const meter = new JitCpuMeter();
    meter.run(() => {
      let x = 0;
      for (let i = 0; i < 1e6; i++) x += i;
      return x;
    });
    expect(meter.ms).toBeGreaterThan(0);
    const s = schedulerStats({
      server: { cpuMs: 120.5, restarts: 2, built: 7 } as never,
      queue: q,
      mainThreadJitMs: 4.5,
    });
    expect(s).toEqual({
      idle_fraction: null,
      jit_cpu_ms: 125,
      jobs_done: 1,
      jobs_dropped: 1,
      server_restarts: 2,
      budget_bytes_max: null,
      budget_used_bytes_max: null,
      revocations: 0,
      eviction_ms_max: null,
    });
    expect(schedulerStats({}).jit_cpu_ms).toBe(0);
  });
});

describe('compile server deaths', () => {
  it('are told apart by how the server ended and its last words', () => {
    expect(classifyDeath(null, 'SIGABRT', "terminate called after throwing an instance of 'std::bad_alloc'")).toBe('memory');
    expect(classifyDeath(null, 'SIGSEGV', '', true)).toBe('memory');
    expect(classifyDeath(null, 'SIGSEGV', '')).toBe('crash');
    expect(classifyDeath(1, null, 'LLVM ERROR: Cannot select: ...')).toBe('llvm-fatal');
    expect(classifyDeath(null, 'SIGKILL', '')).toBe('killed');
  });

  it('are blamed on one unit: the same function and kind built from the same source', () => {
    expect(unitKey({ fn: 'f', kind: 'optimized', id: 1 })).toBe(unitKey({ fn: 'f', kind: 'optimized', id: 2 }));
    expect(unitKey({ fn: 'f', kind: 'optimized', id: 1 })).not.toBe(unitKey({ fn: 'f', kind: 'specialized', id: 1 }));
    expect(unitKey({ fn: 'f', kind: 'patched', id: 1, source: new Uint8Array([1]) })).not.toBe(unitKey({ fn: 'f', kind: 'patched', id: 1, source: new Uint8Array([2]) }));
  });
});

describe('the compile server process', () => {
  let p: PreparedBoot;
  const servers: CompileServer[] = [];
  const server = (opts: Partial<CompileServerOptions> = {}) => {
    const s = new CompileServer(() => ({ type: 'init', pristine: p.pristineBitcode(), mode: p.mode.name, config: p.config, target: p.compiled.target }), opts);
    servers.push(s);
    return s;
  };
  let id = 1;
  const unit = (fn = 'sys_poll') => ({ fn, kind: 'optimized' as const, id: id++ });
  const ready = async (s: CompileServer) => {
    s.warm();
    for (let i = 0; i < 500 && !s.stats().ready; i++) await new Promise((r) => setTimeout(r, 10));
    return s.stats().ready!;
  };

  beforeAll(async () => {
    p = await prepareBoot({ image: REFERENCE, mode: 'boot', nic: 'virtq', sysctls: [], patchable: true });
  });
  afterAll(() => {
    for (const s of servers) s.close();
    p?.dispose();
  });

  it('runs every thread at SCHED_IDLE, on the CPUs asked, and reports its CPU time', async () => {
    const cpu = affinityOf(0).at(-1)!;
    const s = server({ cpus: [cpu], minShare: 0, batch: false });
    const r = await ready(s);
    expect(r.policy).toBe(SCHED_IDLE);
    expect(r.nice).toBe(19);
    expect(r.cpus).toEqual([cpu]);
    expect(r.problems).toEqual([]);
    for (const tid of threadIds(s.pid!)) expect(schedulerPolicy(tid)).toBe(SCHED_IDLE);
    await s.build(unit());
    expect(s.cpuMs()).toBeGreaterThan(10);
    expect(s.stats()).toMatchObject({ built: 1, lifts: 0 });
  });

  it('is lifted by its token bucket while it builds and back at SCHED_IDLE when done', async () => {
    const s = server({ minShare: 0.02, batch: false });
    await ready(s);
    const job = s.build(unit());
    let seen = false;
    while (!seen && s.pending > 0) {
      await new Promise((r) => setTimeout(r, 5));
      seen ||= s.pid !== undefined && schedulerPolicy(s.pid) === SCHED_OTHER;
    }
    await job;
    expect(seen).toBe(true); /* the bucket starts full: the first job gets its burst */
    await new Promise((r) => setTimeout(r, 80));
    expect(schedulerPolicy(s.pid!)).toBe(SCHED_IDLE);
    expect(s.stats().lifts).toBeGreaterThanOrEqual(1);
  });

  it('in --batch runs at normal priority, and drain() waits for every job sent', async () => {
    const s = server({ batch: true });
    expect((await ready(s)).policy).toBe(SCHED_OTHER);
    const built: string[] = [];
    for (const fn of ['sys_poll', 'kmem_cache_alloc']) void s.build(unit(fn)).then((u) => built.push(u.symbol));
    await s.drain();
    expect(built).toHaveLength(2);
    await s.drain(); /* nothing out: at once */
  });

  it('dies by its memory limit on a compile bigger than it, retries the job once on a new server, then blacklists it', async () => {
    const s = server({ memoryLimitBytes: 1 << 20, minShare: 0 });
    const r = await ready(s);
    expect(r.addressSpaceLimit).toBe(r.baselineVmBytes + (1 << 20));
    const err = await s.build(unit()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CompileServerError);
    expect(err).toMatchObject({ death: 'memory', blacklisted: true });
    expect((err as Error).message).toMatch(/while building sys_poll.*2 times: sys_poll \(optimized\) is blacklisted/);
    expect(s.stats()).toMatchObject({ restarts: 2, retried: 1, deaths: { memory: 2 } });
    /* refused at once now, without a server dying */
    await expect(s.build(unit())).rejects.toThrow(/sys_poll \(optimized\) is blacklisted: it killed the compile server \(memory\)/);
    expect(s.stats().restarts).toBe(2);
    /* a limit the compile fits in forgives it */
    s.setMemoryLimit(256 << 20);
    const u = await s.build(unit());
    expect(u.object.byteLength).toBeGreaterThan(0);
    expect(s.stats().blacklisted).toEqual([]);
  });

  it('survives an LLVM fatal error: the culprit is retried once then blacklisted, the jobs behind it are built', async () => {
    const s = server({ minShare: 0 });
    await ready(s);
    const pid = s.pid;
    const crashing = s.build(unit('sys_poll'), { fault: 'abort' }).catch((e: unknown) => e);
    const behind = s.build(unit('kmem_cache_alloc'));
    const err = await crashing;
    expect(err).toMatchObject({ death: 'llvm-fatal', blacklisted: true });
    expect((err as Error).message).toMatch(/compile server was killed by SIGABRT while building sys_poll: LLVM ERROR: injected fatal error/);
    expect((await behind).symbol).toMatch(/^kmem_cache_alloc\.kjit\.v/);
    expect(s.pid).not.toBe(pid);
    expect(s.stats()).toMatchObject({ restarts: 2, retried: 1, deaths: { 'llvm-fatal': 2 }, built: 1 });
    expect(s.stats().blacklisted.map((b) => b.fn)).toEqual(['sys_poll']);
    /* other units of the same function are not blamed */
    await expect(s.build({ fn: 'sys_poll', kind: 'specialized', id: id++ })).resolves.toBeTruthy();
  });

  it('a job that killed the server once and then builds is not blacklisted', async () => {
    const s = server({ minShare: 0 });
    await ready(s);
    const pid = s.pid!;
    const job = s.build(unit());
    process.kill(pid, 'SIGKILL');
    expect((await job).object.byteLength).toBeGreaterThan(0);
    expect(s.stats()).toMatchObject({ restarts: 1, retried: 1, deaths: { killed: 1 }, blacklisted: [] });
  });

  it('a lowered memory limit applies at once; below what the server maps it restarts the server and resends its job', async () => {
    const s = server({ minShare: 0 });
    await ready(s);
    await s.build(unit());
    expect(s.setMemoryLimit(512 << 20)).toBe('applied');
    const pid = s.pid!;
    const job = s.build(unit('kmem_cache_alloc'));
    expect(s.setMemoryLimit(0)).toBe('restarted');
    s.setMemoryLimit(256 << 20);
    expect((await job).symbol).toMatch(/^kmem_cache_alloc/);
    expect(s.pid).not.toBe(pid);
    expect(s.stats()).toMatchObject({ limitRestarts: 1, restarts: 1, deaths: { memory: 0, crash: 0, killed: 0 } });
  });

  it('takes new CPUs at run time: an idle server is replaced by one on them', async () => {
    const s = server({ minShare: 0 });
    expect((await ready(s)).cpus).toEqual(affinityOf(0));
    s.configure({ cpus: [0] });
    expect(s.pid).toBeUndefined();
    expect((await ready(s)).cpus).toEqual([0]);
  });

  it('closing it fails the jobs it had, clearly', async () => {
    const s = server({ minShare: 0 });
    const job = s.build(unit());
    s.close();
    await expect(job).rejects.toThrow(/compile server was closed while building sys_poll/);
  });
});
