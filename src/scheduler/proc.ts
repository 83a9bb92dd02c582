/**
 * @fileoverview What Linux says about a process (the compile server) in
 * /proc: its CPU time, its memory, its threads, whether it exists.  Plain file reads; a process
 * that is gone reads as null.
 */
import { readdirSync, readFileSync } from 'node:fs';

/* USER_HZ: the unit of /proc/<pid>/stat's times; 100 on every Linux ABI kjit runs on. */
const USER_HZ = 100;

function read(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

/**
 * CPU time (user + system, all threads) process `pid` has used, in ms, at
 * USER_HZ resolution (10 ms); null if it is gone.
 */
export function processCpuMs(pid: number): number | null {
  const s = read(`/proc/${pid}/stat`);
  if (s === null) return null;
  /* the command name (field 2) may hold spaces: count fields after its ')' */
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  const utime = Number(f[11]);
  const stime = Number(f[12]);
  return ((utime + stime) * 1000) / USER_HZ;
}

/**
 * CPU time thread `tid` has run, in ms, to the nanosecond (schedstat's
 * first field); for a process's main thread pass its pid.  Null if gone.
 */
export function threadCpuMs(pid: number, tid = pid): number | null {
  const s = read(`/proc/${pid}/task/${tid}/schedstat`);
  if (s === null) return null;
  return Number(s.split(' ')[0]) / 1e6;
}

/** The threads of process `pid` (empty if it is gone). */
export function threadIds(pid: number): number[] {
  try {
    return readdirSync(`/proc/${pid}/task`).map(Number);
  } catch {
    return [];
  }
}

export interface ProcessMemory {
  /** Address space mapped (what RLIMIT_AS limits). */
  vmBytes: number;
  /** Resident now, and its peak over the process's life. */
  rssBytes: number;
  peakRssBytes: number;
}

/** The memory of process `pid` ('self' for this one); null if it is gone. */
export function processMemory(pid: number | 'self'): ProcessMemory | null {
  const s = read(`/proc/${pid}/status`);
  if (s === null) return null;
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(s)?.[1] ?? 0) * 1024;
  return { vmBytes: kb('VmSize'), rssBytes: kb('VmRSS'), peakRssBytes: kb('VmHWM') };
}

/** Whether process `pid` exists (EPERM: it does, under another user). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
