/**
 * @fileoverview The few libc calls kjit makes from JavaScript: starting and
 * joining the kernel thread, its CPU clock, the machine's memory (the arena),
 * futex wake-ups, and raw word access to native memory.
 */
import koffi from 'koffi';

const libc = koffi.load('libc.so.6');

koffi.struct('kjit_timespec', { tv_sec: 'int64_t', tv_nsec: 'int64_t' });

const fns = {
  pthread_create: libc.func('int pthread_create(_Out_ uint64_t *thread, void *attr, void *start, void *arg)'),
  pthread_join: libc.func('int pthread_join(uint64_t thread, void *retval)'),
  pthread_getcpuclockid: libc.func('int pthread_getcpuclockid(uint64_t thread, _Out_ int *clock)'),
  clock_gettime: libc.func('int clock_gettime(int clock, _Out_ kjit_timespec *ts)'),
  mmap: libc.func('void *mmap(void *addr, size_t len, int prot, int flags, int fd, int64_t off)'),
  munmap: libc.func('int munmap(void *addr, size_t len)'),
  syscall3: libc.func('long syscall(long nr, ...)'),
  strerror: libc.func('const char *strerror(int errnum)'),
  malloc_trim: libc.func('int malloc_trim(size_t pad)'),
  pipe2: libc.func('int pipe2(_Out_ int *fds, int flags)'),
  close: libc.func('int close(int fd)'),
  errno_location: libc.func('int *__errno_location(void)'),
};

const PROT_READ = 1;
const PROT_WRITE = 2;
const PROT_EXEC = 4;
const MAP_PRIVATE = 0x02;
const MAP_ANONYMOUS = 0x20;
const MAP_NORESERVE = 0x4000;
const MAP_FAILED = 0xffffffffffffffffn;
const SYS_futex = 202;
const FUTEX_WAKE_PRIVATE = 1 | 128;
export const CLOCK_MONOTONIC = 1;

export class NativeError extends Error {
  readonly errno: number;
  constructor(call: string, errno: number) {
    super(`${call} failed: ${fns.strerror(errno) as string} (errno ${errno})`);
    this.name = 'NativeError';
    this.errno = errno;
  }
}

const O_NONBLOCK = 0o4000;
const O_CLOEXEC = 0o2000000;

function errno(): number {
  return koffi.decode(fns.errno_location(), 'int') as number;
}

/** A pipe (close-on-exec, non-blocking): [read end, write end]. */
export function pipe(): [number, number] {
  const fds = [0, 0];
  if ((fns.pipe2(fds, O_CLOEXEC | O_NONBLOCK) as number) !== 0) throw new NativeError('pipe2', errno());
  return [fds[0]!, fds[1]!];
}

export function closeFd(fd: number): void {
  fns.close(fd);
}

/** Start a native thread at `start(arg)` (a JIT function address). Returns its pthread_t. */
export function pthreadCreate(start: bigint, arg: bigint): bigint {
  const tid: (bigint | number)[] = [0];
  const rc = fns.pthread_create(tid, null, start, arg === 0n ? null : arg) as number;
  if (rc !== 0) throw new NativeError('pthread_create', rc);
  return BigInt(tid[0]!);
}

/** pthread_join on a libuv worker thread, so the event loop keeps running. */
export function pthreadJoinAsync(thread: bigint): Promise<void> {
  return new Promise((resolve, reject) => {
    fns.pthread_join.async(thread, null, (err: unknown, rc: number) => {
      if (err) reject(err as Error);
      else if (rc !== 0) reject(new NativeError('pthread_join', rc));
      else resolve();
    });
  });
}

function readClock(clock: number): bigint {
  const ts: Record<string, bigint | number> = {};
  if ((fns.clock_gettime(clock, ts) as number) !== 0) throw new Error(`clock_gettime(${clock}) failed`);
  return BigInt(ts.tv_sec!) * 1_000_000_000n + BigInt(ts.tv_nsec!);
}

/** CPU time a running thread has used, in ns. */
export function threadCpuNs(thread: bigint): bigint {
  const clock = [0];
  const rc = fns.pthread_getcpuclockid(thread, clock) as number;
  if (rc !== 0) throw new NativeError('pthread_getcpuclockid', rc);
  return readClock(clock[0]!);
}

/** CLOCK_MONOTONIC in ns: the clock the kernel's timestamps use. */
export function monotonicNs(): bigint {
  return readClock(CLOCK_MONOTONIC);
}

/** Reserve `bytes` of zeroed read-write memory (pages appear on first touch). */
export function mmapAnonymous(bytes: number): bigint {
  const p = fns.mmap(null, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0) as bigint | null;
  if (p === null || BigInt(p) === MAP_FAILED) throw new Error(`mmap of ${bytes} bytes failed`);
  return BigInt(p);
}

/**
 * Map the first `bytes` of the open file `fd` read-only and executable
 * (MAP_PRIVATE): the mapping nothing reads, by which `perf record` learns
 * of a jitdump file (src/sampler/jitdump.ts).
 */
export function mmapFileExecutable(fd: number, bytes: number): bigint {
  const p = fns.mmap(null, bytes, PROT_READ | PROT_EXEC, MAP_PRIVATE, fd, 0) as bigint | null;
  if (p === null || BigInt(p) === MAP_FAILED) throw new Error(`mmap of file descriptor ${fd} (PROT_EXEC) failed`);
  return BigInt(p);
}

/** A copy of `n` bytes at `addr` (JIT code, for a jitdump record). */
export function readBytes(addr: bigint, n: number): Uint8Array {
  if (n === 0) return new Uint8Array(0);
  return new Uint8Array(koffi.view(addr, n)).slice();
}

export function munmap(addr: bigint, bytes: number): void {
  if ((fns.munmap(addr, bytes) as number) !== 0) throw new Error(`munmap(0x${addr.toString(16)}, ${bytes}) failed`);
}

/* koffi.decode/encode of one word: no view (an external ArrayBuffer per
 * access) and no array type (docs/llvm-notes.md). */
export function readU64(addr: bigint): bigint {
  return BigInt(koffi.decode(addr, 'uint64_t') as number | bigint);
}

/** A copy of `n` 64-bit words at `addr` (one view, for a table read once). */
export function readWords(addr: bigint, n: number): BigUint64Array {
  if (n === 0) return new BigUint64Array(0);
  return new BigUint64Array(new BigUint64Array(koffi.view(addr, n * 8)));
}

export function writeU64(addr: bigint, value: bigint): void {
  koffi.encode(addr, 'uint64_t', BigInt.asUintN(64, value));
}

export function writeI64(addr: bigint, value: bigint): void {
  koffi.encode(addr, 'int64_t', BigInt.asIntN(64, value));
}

/** Wake up to `n` threads waiting on the futex word at `addr` (private futex). */
export function futexWake(addr: bigint, n: number): number {
  return Number(fns.syscall3(SYS_futex, 'void *', addr, 'int', FUTEX_WAKE_PRIVATE, 'int', n));
}

const prototypes = new Map<string, ReturnType<typeof koffi.proto>>();

/**
 * Call the native function at `address` with the C prototype `prototype`
 * (without a name, e.g. `'uint64_t (uint32_t)'`), synchronously on this thread.
 */
export function callNative(address: bigint, prototype: string, ...args: unknown[]): unknown {
  let proto = prototypes.get(prototype);
  if (!proto) {
    proto = koffi.proto(prototype);
    prototypes.set(prototype, proto);
  }
  return koffi.call(address, proto, ...args);
}

/** Give free heap memory back to the system (glibc keeps it otherwise), e.g. before reading RSS. */
export function trimHeap(): void {
  fns.malloc_trim(0);
}

/* ---- the peer of a Unix socket (kjit serve's control channel) ---------------- */

koffi.struct('kjit_ucred', { pid: 'int32_t', uid: 'uint32_t', gid: 'uint32_t' });
const getsockopt = libc.func('int getsockopt(int fd, int level, int optname, _Out_ kjit_ucred *optval, _Inout_ uint32_t *optlen)');
const SOL_SOCKET = 1;
const SO_PEERCRED = 17;
const UCRED_BYTES = 12;

export interface PeerCredentials {
  pid: number;
  uid: number;
  gid: number;
}

/**
 * Who is at the other end of the connected Unix socket `fd`: the process
 * that called connect(), as the kernel recorded it then (SO_PEERCRED), so a
 * socket handed on to another process still names the one that connected.
 */
export function peerCredentials(fd: number): PeerCredentials {
  const cred: Record<string, number> = {};
  const len = [UCRED_BYTES];
  if ((getsockopt(fd, SOL_SOCKET, SO_PEERCRED, cred, len) as number) !== 0) throw new NativeError('getsockopt(SO_PEERCRED)', koffi.errno());
  return { pid: cred.pid!, uid: cred.uid!, gid: cred.gid! };
}

/* ---- scheduling and resource limits of a process (the compile server) ------ */

koffi.struct('kjit_sched_param', { sched_priority: 'int' });
koffi.struct('kjit_rlimit', { rlim_cur: 'uint64_t', rlim_max: 'uint64_t' });
const sched = {
  sched_setscheduler: libc.func('int sched_setscheduler(int pid, int policy, const kjit_sched_param *param)'),
  sched_getscheduler: libc.func('int sched_getscheduler(int pid)'),
  setpriority: libc.func('int setpriority(int which, uint32_t who, int prio)'),
  getpriority: libc.func('int getpriority(int which, uint32_t who)'),
  sched_setaffinity: libc.func('int sched_setaffinity(int pid, size_t cpusetsize, const uint8_t *mask)'),
  sched_getaffinity: libc.func('int sched_getaffinity(int pid, size_t cpusetsize, _Out_ uint8_t *mask)'),
  prlimit: libc.func('int prlimit(int pid, int resource, const kjit_rlimit *new_limit, _Out_ kjit_rlimit *old_limit)'),
  pthread_setaffinity_np: libc.func('int pthread_setaffinity_np(uint64_t thread, size_t cpusetsize, const uint8_t *mask)'),
};

/** Scheduling policies (linux/sched.h). */
export const SCHED_OTHER = 0;
export const SCHED_IDLE = 5;
const PRIO_PROCESS = 0;
/** Resources (sys/resource.h). */
export const RLIMIT_AS = 9;
export const RLIMIT_NICE = 13;
export const RLIM_INFINITY = 0xffffffffffffffffn;
const CPU_SET_BYTES = 128; /* glibc's cpu_set_t: 1024 CPUs */

/**
 * Set the scheduling policy of thread `tid` (0: the calling thread; on Linux
 * a policy belongs to one thread, not to its process).  SCHED_OTHER and
 * SCHED_IDLE take priority 0.  Leaving SCHED_IDLE needs CAP_SYS_NICE or an
 * RLIMIT_NICE of the thread that permits its nice value.
 */
export function setSchedulerPolicy(tid: number, policy: number): void {
  if ((sched.sched_setscheduler(tid, policy, { sched_priority: 0 }) as number) !== 0) throw new NativeError(`sched_setscheduler(${tid}, ${policy})`, koffi.errno());
}

export function schedulerPolicy(tid: number): number {
  const p = sched.sched_getscheduler(tid) as number;
  if (p < 0) throw new NativeError(`sched_getscheduler(${tid})`, koffi.errno());
  return p;
}

/** Set the nice value of thread `tid` (0: the calling thread). */
export function setNice(tid: number, nice: number): void {
  if ((sched.setpriority(PRIO_PROCESS, tid, nice) as number) !== 0) throw new NativeError(`setpriority(${tid}, ${nice})`, koffi.errno());
}

export function niceOf(tid: number): number {
  koffi.errno(0);
  const n = sched.getpriority(PRIO_PROCESS, tid) as number;
  if (n === -1 && koffi.errno() !== 0) throw new NativeError(`getpriority(${tid})`, koffi.errno());
  return n;
}

/** Restrict thread `tid` (0: the calling thread) to `cpus`; threads it creates later inherit them. */
export function setAffinity(tid: number, cpus: readonly number[]): void {
  const mask = new Uint8Array(CPU_SET_BYTES);
  for (const c of cpus) {
    if (!Number.isInteger(c) || c < 0 || c >= CPU_SET_BYTES * 8) throw new RangeError(`no CPU ${c}`);
    mask[c >> 3]! |= 1 << (c & 7);
  }
  if ((sched.sched_setaffinity(tid, CPU_SET_BYTES, mask) as number) !== 0) throw new NativeError(`sched_setaffinity(${tid}, [${cpus.join(',')}])`, koffi.errno());
}

/** Restrict the thread `thread` (a pthread_t: the kernel thread) to `cpus` (threads it creates later inherit them). */
export function setPthreadAffinity(thread: bigint, cpus: readonly number[]): void {
  const rc = sched.pthread_setaffinity_np(thread, CPU_SET_BYTES, cpuMask(cpus)) as number;
  if (rc !== 0) throw new NativeError(`pthread_setaffinity_np([${cpus.join(',')}])`, rc);
}

function cpuMask(cpus: readonly number[]): Uint8Array {
  const mask = new Uint8Array(CPU_SET_BYTES);
  for (const c of cpus) {
    if (!Number.isInteger(c) || c < 0 || c >= CPU_SET_BYTES * 8) throw new RangeError(`no CPU ${c}`);
    mask[c >> 3]! |= 1 << (c & 7);
  }
  return mask;
}

export function affinityOf(tid: number): number[] {
  const mask = new Uint8Array(CPU_SET_BYTES);
  if ((sched.sched_getaffinity(tid, CPU_SET_BYTES, mask) as number) !== 0) throw new NativeError(`sched_getaffinity(${tid})`, koffi.errno());
  const out: number[] = [];
  for (let c = 0; c < CPU_SET_BYTES * 8; c++) if (mask[c >> 3]! & (1 << (c & 7))) out.push(c);
  return out;
}

export interface ResourceLimit {
  /** Soft limit (what is enforced); RLIM_INFINITY: none. */
  soft: bigint;
  /** Hard limit (the ceiling an unprivileged process may raise its soft limit to). */
  hard: bigint;
}

/**
 * Read a resource limit of process `pid` (0: this process) and, with `soft`,
 * set its soft limit, keeping the hard one (so it can be raised again
 * without privileges).  Lowering RLIMIT_AS below what a process has mapped
 * takes nothing away: only its next mappings fail.
 */
export function processLimit(pid: number, resource: number, soft?: bigint): ResourceLimit {
  const old: Record<string, bigint | number> = {};
  if ((sched.prlimit(pid, resource, null, old) as number) !== 0) throw new NativeError(`prlimit(${pid}, ${resource})`, koffi.errno());
  const was = { soft: BigInt(old.rlim_cur!), hard: BigInt(old.rlim_max!) };
  if (soft === undefined) return was;
  const cur = soft > was.hard ? was.hard : soft;
  if ((sched.prlimit(pid, resource, { rlim_cur: cur, rlim_max: was.hard }, old) as number) !== 0) {
    throw new NativeError(`prlimit(${pid}, ${resource}, ${cur})`, koffi.errno());
  }
  return { soft: cur, hard: was.hard };
}

const RTLD_NOW = 2;
const RTLD_GLOBAL = 0x100;
const dl = {
  dlopen: libc.func('void *dlopen(const char *file, int mode)'),
  dlerror: libc.func('const char *dlerror(void)'),
};

/**
 * Load a shared object for good (it is never closed) with its symbols in the
 * process's global scope, where an LLJIT's process-symbol generator finds
 * them (the instrumented stage of `offline-pgo`, src/kernel/offline-pgo.ts).
 */
export function dlopenGlobal(path: string): void {
  if (!dl.dlopen(path, RTLD_NOW | RTLD_GLOBAL)) throw new Error(`dlopen ${path} failed: ${(dl.dlerror() as string | null) ?? 'unknown error'}`);
}

const CLOCK_THREAD_CPUTIME_ID = 3;

/** CPU time the calling thread has used, in ns. */
export function callingThreadCpuNs(): bigint {
  return readClock(CLOCK_THREAD_CPUTIME_ID);
}
