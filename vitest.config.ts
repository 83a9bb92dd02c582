import { defineConfig } from 'vitest/config';

// Tests that load libLLVM or start a kernel thread run in their own processes:
// native state (signal handlers, JIT memory, LLVM's global options) must never
// leak from one test file into another.
export default defineConfig({
  test: {
    include: ['tests/**/*.test.ts'],
    pool: 'forks',
    testTimeout: 120_000,
    hookTimeout: 120_000,
    fileParallelism: true,
    maxWorkers: 2,
    // kjit run and serve use a profile store in the user's data directory by default: never from tests.
    // The compile server runs at normal priority in tests (KJIT_COMPILE_BATCH): under SCHED_IDLE a test's
    // compiles would wait for whatever else loads the machine (the other test worker).
    env: { KJIT_PROFILE_DB: 'off', KJIT_COMPILE_BATCH: '1' },
  },
});
