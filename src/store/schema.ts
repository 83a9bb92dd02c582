/**
 * @fileoverview The profile store's schema, as the ordered steps that built
 * it.  A database's `PRAGMA user_version` is the number of steps applied;
 * opening one applies the missing steps, each in its own transaction with
 * the version bump, so a crash leaves it at a step boundary.  A step, once
 * released, is never edited: a change is a new step (tests build every
 * earlier version from these steps and migrate it).
 *
 * What is stored is aggregates, never raw samples: per boot, each
 * function's self/total samples, caller -> callee edge weights, the hottest
 * whole chains, and exact counts from instrumentation windows; plus the
 * compile log, the policy's decisions and benchmark reports.
 */

/** `PRAGMA application_id` of a kjit profile store ('kjit'): anything else is a foreign file. */
export const APPLICATION_ID = 0x6b6a6974;

export interface Migration {
  /** The user_version the database has after this step. */
  version: number;
  what: string;
  sql: string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    what: 'images, machines, boots, functions by IR hash, sampled profiles',
    sql: `
      CREATE TABLE images (
        id INTEGER PRIMARY KEY,
        hash TEXT NOT NULL,            -- sha256 of the image file
        runtime_hash TEXT NOT NULL,    -- sha256 of the kjit runtime linked into it
        name TEXT NOT NULL,            -- file name: the image family
        path TEXT NOT NULL,
        init TEXT NOT NULL,
        entry TEXT,
        run TEXT,
        functions_hashed INTEGER NOT NULL DEFAULT 0,
        first_seen TEXT NOT NULL,
        UNIQUE (hash, runtime_hash)
      );
      CREATE TABLE machines (
        id INTEGER PRIMARY KEY,
        cpu_model TEXT NOT NULL,       -- /proc/cpuinfo
        llvm_cpu TEXT NOT NULL,        -- the machine class
        features TEXT NOT NULL,        -- LLVM target features
        UNIQUE (cpu_model, llvm_cpu, features)
      );
      CREATE TABLE boots (
        id INTEGER PRIMARY KEY,
        image_id INTEGER NOT NULL REFERENCES images (id),
        machine_id INTEGER NOT NULL REFERENCES machines (id),
        workload TEXT NOT NULL,
        mode TEXT NOT NULL,
        sysctls TEXT NOT NULL,         -- JSON: name -> value (source)
        started_at TEXT NOT NULL,
        ended_at TEXT,                 -- NULL: running, or the process died
        status TEXT NOT NULL,          -- running | ended | failed
        samples INTEGER NOT NULL DEFAULT 0,
        seconds REAL,
        ops INTEGER
      );
      CREATE INDEX boots_by_workload ON boots (workload, image_id, machine_id, id);
      -- one row per (name, IR hash); ir_hash '' for code that is not IR of an image ([native], [jit])
      CREATE TABLE functions (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        ir_hash TEXT NOT NULL,
        UNIQUE (name, ir_hash)
      );
      CREATE INDEX functions_by_hash ON functions (ir_hash);
      CREATE TABLE image_functions (
        image_id INTEGER NOT NULL REFERENCES images (id),
        function_id INTEGER NOT NULL REFERENCES functions (id),
        PRIMARY KEY (image_id, function_id)
      ) WITHOUT ROWID;
      CREATE TABLE samples (
        boot_id INTEGER NOT NULL REFERENCES boots (id),
        function_id INTEGER NOT NULL REFERENCES functions (id),
        self INTEGER NOT NULL,
        total INTEGER NOT NULL,
        PRIMARY KEY (boot_id, function_id)
      ) WITHOUT ROWID;
      -- a boot's caller -> callee edges, one row (a run can have 10,000 edges; one row writes in a
      -- fraction of the time 10,000 do): JSON [[caller_id, callee_id, samples], ...] (SQL: json_each)
      CREATE TABLE edges (
        boot_id INTEGER PRIMARY KEY REFERENCES boots (id),
        edges TEXT NOT NULL
      );
      -- a boot's hottest whole chains, one row: JSON [[[function ids, root first], samples], ...]
      CREATE TABLE hot_paths (
        boot_id INTEGER PRIMARY KEY REFERENCES boots (id),
        paths TEXT NOT NULL
      );
    `,
  },
  {
    version: 2,
    what: 'exact counts from instrumentation windows',
    sql: `
      CREATE TABLE counts (
        boot_id INTEGER NOT NULL REFERENCES boots (id),
        function_id INTEGER NOT NULL REFERENCES functions (id),
        shape TEXT NOT NULL,
        entry INTEGER NOT NULL,
        branches TEXT NOT NULL,        -- JSON: per branch site, executions per successor
        icalls TEXT NOT NULL,          -- JSON: per indirect call, { total, targets: [{ function, count }] }
        window_ms REAL NOT NULL,
        window_ops INTEGER NOT NULL,
        windows INTEGER NOT NULL,      -- instrumentation windows summed into this row
        PRIMARY KEY (boot_id, function_id)
      ) WITHOUT ROWID;
    `,
  },
  {
    version: 3,
    what: 'code versions, compile log, policy decisions',
    sql: `
      CREATE TABLE code_versions (
        id INTEGER PRIMARY KEY,
        boot_id INTEGER NOT NULL REFERENCES boots (id),
        function_id INTEGER NOT NULL REFERENCES functions (id),
        version INTEGER NOT NULL,      -- the installer's version id in that boot
        tier TEXT NOT NULL,
        code_bytes INTEGER,
        state TEXT NOT NULL,           -- installed | rolled-back | evicted | failed
        UNIQUE (boot_id, version)
      );
      CREATE TABLE compile_log (
        id INTEGER PRIMARY KEY,
        boot_id INTEGER NOT NULL REFERENCES boots (id),
        version_id INTEGER REFERENCES code_versions (id),
        function_id INTEGER NOT NULL REFERENCES functions (id),
        tier TEXT NOT NULL,
        reason TEXT NOT NULL,          -- why it was compiled
        compile_ms REAL,
        code_bytes INTEGER,
        outcome TEXT NOT NULL,         -- installed | rolled-back | evicted | failed
        why TEXT,                      -- why that outcome
        at_s REAL,                     -- seconds into the run
        logged_at TEXT NOT NULL
      );
      CREATE INDEX compile_log_by_boot ON compile_log (boot_id);
      CREATE TABLE decisions (
        id INTEGER PRIMARY KEY,
        boot_id INTEGER NOT NULL REFERENCES boots (id),
        kind TEXT NOT NULL,
        function_id INTEGER REFERENCES functions (id),
        reason TEXT NOT NULL,
        numbers TEXT NOT NULL,         -- JSON: the numbers the reason was decided on
        at_s REAL,
        logged_at TEXT NOT NULL
      );
      CREATE INDEX decisions_by_boot ON decisions (boot_id);
    `,
  },
  {
    version: 4,
    what: 'benchmark results; where a boot came from, and how often it was flushed',
    sql: `
      CREATE TABLE bench_results (
        id INTEGER PRIMARY KEY,
        suite TEXT NOT NULL,
        format TEXT,
        date TEXT NOT NULL,
        commit_id TEXT,
        machine_id INTEGER REFERENCES machines (id),
        report TEXT NOT NULL           -- the report's JSON, as emitted
      );
      CREATE INDEX bench_results_by_suite ON bench_results (suite, id);
      ALTER TABLE boots ADD COLUMN source TEXT NOT NULL DEFAULT 'run';   -- run | import: FILE
      ALTER TABLE boots ADD COLUMN flushes INTEGER NOT NULL DEFAULT 0;
    `,
  },
  {
    version: 5,
    what: "a boot's timeline (throughput, latency, idle, code bytes, JIT CPU per second, and its events) and its run summary",
    sql: `
      -- one row per boot, rewritten by each flush: JSON arrays
      CREATE TABLE boot_timelines (
        boot_id INTEGER PRIMARY KEY REFERENCES boots (id),
        points TEXT NOT NULL,          -- [{ t_s, ops, ops_per_sec, p50_us, p99_us, idle, code_bytes, rss_bytes, compile_cpu, main_cpu }]
        events TEXT NOT NULL           -- [{ at_s, kind, text }]: installs, rollbacks, reverts, evictions, sysctl changes, phases, patches, faults
      );
      -- what the run reported when it ended (src/store/timeline.ts runSummary): figures, re-JIT verdicts, sampling
      CREATE TABLE boot_summaries (
        boot_id INTEGER PRIMARY KEY REFERENCES boots (id),
        summary TEXT NOT NULL
      );
    `,
  },
];

/** The schema version this kjit writes. */
export const SCHEMA_VERSION = MIGRATIONS.at(-1)!.version;
