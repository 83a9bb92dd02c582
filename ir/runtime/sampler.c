/*
 * @fileoverview The sampler's mechanism, on the kernel thread: ticks on
 * CLOCK_MONOTONIC (DESIGN.md section 6: CPU-time timers stop at the 250 Hz
 * scheduler tick here) deliver a real-time signal to the kernel thread only;
 * the handler records the interrupted program counter and its frame-pointer
 * call chain into the sample ring of the control block.  The host drains the
 * ring, symbolizes and aggregates (src/sampler/); nothing here decides
 * anything: the rate is whatever the host wrote into cb.sample_hz (its
 * throttle lowers it there).
 *
 * Two clocks make the ticks (cb.sample_clock, set before start):
 *   - KJIT_SAMPLE_CLOCK_THREAD (default): a clock thread of the runtime
 *     sleeps to absolute CLOCK_MONOTONIC deadlines and sends the signal to
 *     the kernel thread (rt_tgsigqueueinfo).  The timer interrupt lands on
 *     the clock thread's CPU; the kernel thread's CPU only takes the signal
 *     (an IPI away: it lands microseconds after the tick; in an open loop
 *     fewer ticks then find the kernel busy, what they record agrees: see
 *     the README).  While a tick it sent is still unhandled it
 *     sends no other (counted as an overrun), as a timer would;
 *   - KJIT_SAMPLE_CLOCK_TIMER: timer_create(CLOCK_MONOTONIC) with
 *     SIGEV_THREAD_ID to the kernel thread.  Linux re-arms such a timer when
 *     the target thread takes the signal, so from the first tick on the
 *     timer and its interrupt live on the kernel thread's CPU: measured on
 *     this project's VM, 22 us of the kernel thread's CPU per tick against
 *     10 us with the clock thread (README, "Sampling").
 *
 * The handler is async-signal-safe: it reads the ucontext, reads stack
 * memory only inside a known kernel stack, writes the control block, and
 * calls nothing but reads of plain memory.  It runs on the runtime's
 * alternate signal stack (a signal frame with AVX state is several KiB: too
 * much for a small kernel task stack) and keeps errno.
 *
 * Which stack the chain is walked on, and within what bounds:
 *   - a kernel task's stack (registered with kjit_task_stack): [lo, hi);
 *   - the kernel thread's own stack: from its lowest address (pthread
 *     attributes, read at start) up to kjit_thread_main's frame, excluded
 *     (its return address leads into libc);
 *   - anything else (another handler's frame on the alternate stack): the
 *     pc alone is recorded.
 * A frame pointer is followed only while it lies inside those bounds, is
 * 8-byte aligned and increases (callers' frames are higher up); a task's
 * chain ends at the 0 that task_trampoline puts in %rbp.  Besides the chain
 * the handler records sp0, the word at the stack pointer: the return address
 * when the pc is in code with no frame of its own (an assembly leaf, a
 * function's first instruction); the host decides when to use it.
 *
 * Ring protocol: one producer (this handler, on the kernel thread), one
 * consumer (the host's drain).  head and tail count samples ever published
 * and consumed; slot i of the ring holds sample i modulo the capacity.
 *   Producer (the handler):
 *     1. read head (it alone writes it) and tail (acquire);
 *     2. if head - tail >= capacity the ring is full: count a drop in
 *        sample_dropped and return -- a full ring is never overwritten;
 *     3. write slot head % capacity: seq = head, meta, pc, sp0, chain;
 *     4. publish: head = head + 1 (release: the slot's words are visible
 *        before the new head).
 *   Consumer (the host):
 *     5. read head; every slot from tail to head - 1 is complete and no
 *        producer writes it (step 2 keeps it out until tail moves);
 *     6. read those slots (a slot whose seq is not its index would be a
 *        protocol violation: the host counts such slots, expecting none);
 *     7. tail = head: the slots may be written again.
 * The capacity is KJIT_SAMPLE_SLOTS, or cb.sample_cap when the host set a
 * smaller one before the kernel started (tests of overflow).
 *
 * Achieved rate: every tick counts in sample_ticks, idle or not, dropped or
 * not; the host divides by the time the clock was armed.  Ticks that found
 * the previous signal still pending merge into it (a timer's si_overrun; the
 * clock thread's check) and are counted in sample_overruns: lost ticks.
 *
 * Cost: when the clock is first armed, the kernel thread sends itself
 * CALIBRATION_SIGNALS sampling signals (rt_tgsigqueueinfo) and measures its
 * own CPU time around them: sample_cost_ns is the cost of one sample,
 * delivery and return included, as a signal the thread sends itself (the
 * sending system call in, the interrupt that brings an asynchronous tick
 * out: on a VM that interrupt costs more than the rest).  The host's
 * throttle uses it.
 *
 * One sampling kernel per process at a time (or nested in LIFO order): the
 * disposition of the signal is process-wide.  A signal that is not this
 * instance's (si_value is not its control block) goes to the previous
 * handler, as the fault handler does.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "kjit_rt.h"

#define LOAD(f) __atomic_load_n(&kjit_cb.f[0], __ATOMIC_RELAXED)
#define STORE(f, v) __atomic_store_n(&kjit_cb.f[0], (uint64_t)(v), __ATOMIC_RELAXED)
/* counters: the handler and the clock thread both count */
#define COUNT(f, n) __atomic_fetch_add(&kjit_cb.f[0], (uint64_t)(n), __ATOMIC_RELAXED)

/* SIGRTMIN + 6: glibc keeps the first real-time signals for itself. */
#define SAMPLE_SIGNAL (SIGRTMIN + 6)
#define CALIBRATION_SIGNALS 32
#define MAX_HZ 100000

volatile int kjit_sampler_idle;

/* The slot format, for the host (src/sampler/ring.ts): words per slot, words
 * before the return addresses, the meta flag bits. */
const uint64_t kjit_sample_format[4] = {KJIT_SAMPLE_SLOT_WORDS, KJIT_SAMPLE_HEAD_WORDS, KJIT_SAMPLE_TRUNCATED, KJIT_SAMPLE_SP0};

static struct {
  int installed;            /* our handler is the signal's disposition */
  struct sigaction previous;
  uint64_t main_lo, main_hi; /* the kernel thread's stack, walkable part */
  int calibrating;           /* signals are the calibration's: record into scratch */
  pid_t pid, tid;            /* the kernel thread */
  uint64_t armed_hz;
  uint64_t clock;            /* KJIT_SAMPLE_CLOCK_*, fixed at start */
  /* KJIT_SAMPLE_CLOCK_TIMER */
  int have_timer;
  timer_t timer;
  /* KJIT_SAMPLE_CLOCK_THREAD */
  int have_thread;
  pthread_t thread;
  uint32_t quit;             /* futex word: non-zero asks the clock thread to end */
  uint64_t period_ns;        /* read by the clock thread each tick */
  uint64_t sent, handled;    /* ticks the clock thread sent / the handler took */
} s;

static uint64_t scratch[KJIT_SAMPLE_SLOT_WORDS];

static uint64_t now_ns(clockid_t clock) {
  struct timespec ts;
  clock_gettime(clock, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- the handler ----------------------------------------------------------- */

/* Walk frame pointers from `rbp` within [lo, hi); returns the number of
 * return addresses written to out[0 .. max). */
static unsigned walk(uint64_t rbp, uint64_t lo, uint64_t hi, uint64_t *out, unsigned max, uint64_t *meta) {
  unsigned n = 0;
  while (rbp) {
    if (rbp < lo || rbp + 16 > hi || (rbp & 7)) break;
    const uint64_t *frame = (const uint64_t *)rbp;
    if (n == max) {
      *meta |= KJIT_SAMPLE_TRUNCATED;
      break;
    }
    out[n++] = frame[1];
    uint64_t next = frame[0];
    if (next <= rbp) break;
    rbp = next;
  }
  return n;
}

/* Fill one slot (seq already written by the caller) from the interrupted context. */
static void record(uint64_t *slot, const ucontext_t *uc) {
  uint64_t pc = (uint64_t)uc->uc_mcontext.gregs[REG_RIP];
  uint64_t sp = (uint64_t)uc->uc_mcontext.gregs[REG_RSP];
  uint64_t rbp = (uint64_t)uc->uc_mcontext.gregs[REG_RBP];
  uint64_t lo = 0, hi = 0, meta = 0, sp0 = 0;
  unsigned depth = 0;
  int known = 0;
  if (s.main_hi && sp >= s.main_lo && sp < s.main_hi) { /* first: two compares, no table */
    lo = s.main_lo;
    hi = s.main_hi;
    known = 1;
  } else {
    known = kjit_task_stack_of(sp, &lo, &hi);
  }
  if (known) {
    lo = sp > lo ? sp : lo; /* nothing below the stack pointer is a live frame */
    if (sp + 8 <= hi && !(sp & 7)) {
      sp0 = *(const uint64_t *)sp;
      meta |= KJIT_SAMPLE_SP0;
    }
    depth = walk(rbp, lo, hi, slot + KJIT_SAMPLE_HEAD_WORDS, KJIT_SAMPLE_DEPTH, &meta);
  }
  slot[1] = meta | depth;
  slot[2] = pc;
  slot[3] = sp0;
}

/* Hand a signal that is not ours to whoever had it before us. */
static void chain(int sig, siginfo_t *si, void *uc) {
  if ((s.previous.sa_flags & SA_SIGINFO) && s.previous.sa_sigaction) {
    s.previous.sa_sigaction(sig, si, uc);
    return;
  }
  if (s.previous.sa_handler != SIG_DFL && s.previous.sa_handler != SIG_IGN) s.previous.sa_handler(sig);
  /* SIG_DFL would end the process for a stray real-time signal: drop it */
}

static void on_sample(int sig, siginfo_t *si, void *ucv) {
  if ((si->si_code != SI_TIMER && si->si_code != SI_QUEUE) || si->si_value.sival_ptr != (void *)&kjit_cb) {
    chain(sig, si, ucv);
    return;
  }
  int saved_errno = errno;
  if (s.calibrating) {
    record(scratch, (const ucontext_t *)ucv);
    errno = saved_errno;
    return;
  }
  if (si->si_code == SI_TIMER) {
    COUNT(sample_ticks, 1); /* the clock thread counts its own ticks */
    if (si->si_overrun > 0) COUNT(sample_overruns, si->si_overrun);
  } else {
    __atomic_store_n(&s.handled, __atomic_load_n(&s.sent, __ATOMIC_RELAXED), __ATOMIC_RELEASE);
  }
  __atomic_signal_fence(__ATOMIC_SEQ_CST);
  if (kjit_sampler_idle) {
    COUNT(sample_idle, 1);
    errno = saved_errno;
    return;
  }
  /* 1 */
  uint64_t head = kjit_cb.sample_head[0];
  uint64_t tail = __atomic_load_n(&kjit_cb.sample_tail[0], __ATOMIC_ACQUIRE);
  uint64_t cap = LOAD(sample_cap);
  if (cap == 0 || cap > KJIT_SAMPLE_SLOTS) cap = KJIT_SAMPLE_SLOTS;
  /* 2 */
  if (head - tail >= cap) {
    COUNT(sample_dropped, 1);
    errno = saved_errno;
    return;
  }
  /* 3 */
  uint64_t *slot = &kjit_cb.sample_ring[(head % cap) * KJIT_SAMPLE_SLOT_WORDS];
  slot[0] = head;
  record(slot, (const ucontext_t *)ucv);
  /* 4 */
  __atomic_store_n(&kjit_cb.sample_head[0], head + 1, __ATOMIC_RELEASE);
  errno = saved_errno;
}

/* ---- arming (kernel thread, outside the handler) --------------------------------- */

static int install(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_sigaction = on_sample;
  /* SA_RESTART: a tick must not make the kernel's own system calls fail */
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SAMPLE_SIGNAL, &sa, &s.previous) != 0) return -errno;
  s.installed = 1;
  return 0;
}

static void tick_info(siginfo_t *info) {
  memset(info, 0, sizeof(*info));
  info->si_signo = SAMPLE_SIGNAL;
  info->si_code = SI_QUEUE;
  info->si_pid = s.pid;
  info->si_uid = getuid();
  info->si_value.sival_ptr = (void *)&kjit_cb;
}

/* The cost of one sample, measured on this thread (see the file comment). */
static uint64_t calibrate(void) {
  siginfo_t info;
  tick_info(&info);
  s.calibrating = 1;
  __atomic_signal_fence(__ATOMIC_SEQ_CST);
  uint64_t c0 = now_ns(CLOCK_THREAD_CPUTIME_ID);
  for (int i = 0; i < CALIBRATION_SIGNALS; i++) syscall(SYS_rt_tgsigqueueinfo, s.pid, s.tid, SAMPLE_SIGNAL, &info);
  uint64_t c1 = now_ns(CLOCK_THREAD_CPUTIME_ID);
  __atomic_signal_fence(__ATOMIC_SEQ_CST);
  s.calibrating = 0;
  return (c1 - c0) / CALIBRATION_SIGNALS;
}

/* ---- KJIT_SAMPLE_CLOCK_THREAD ------------------------------------------------- */

static void *clock_main(void *arg) {
  (void)arg;
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, NULL); /* the process's signals are for other threads */
  siginfo_t info;
  tick_info(&info);
  uint64_t next = now_ns(CLOCK_MONOTONIC);
  while (!__atomic_load_n(&s.quit, __ATOMIC_ACQUIRE)) {
    uint64_t period = __atomic_load_n(&s.period_ns, __ATOMIC_RELAXED);
    next += period;
    struct timespec ts = {.tv_sec = (time_t)(next / 1000000000ull), .tv_nsec = (long)(next % 1000000000ull)};
    /* sleep to the deadline; a stop request wakes it at once */
    while (!__atomic_load_n(&s.quit, __ATOMIC_ACQUIRE) &&
           syscall(SYS_futex, &s.quit, FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG, 0, &ts, NULL, FUTEX_BITSET_MATCH_ANY) != 0 &&
           errno != ETIMEDOUT) {
    }
    if (__atomic_load_n(&s.quit, __ATOMIC_ACQUIRE)) break;
    uint64_t now = now_ns(CLOCK_MONOTONIC);
    if (now - next >= period) { /* slept through whole periods: those ticks are lost */
      uint64_t lost = (now - next) / period;
      COUNT(sample_overruns, lost);
      next += lost * period;
    }
    /* No idle check here: the signal lands microseconds later (an IPI
     * away), and judging by the kernel's state now would keep only samples
     * that land at least that far into a busy stretch.  The handler judges
     * where the signal lands. */
    if (__atomic_load_n(&s.handled, __ATOMIC_ACQUIRE) != s.sent) {
      COUNT(sample_overruns, 1); /* the last tick is still pending: merged, as a timer's would be */
      continue;
    }
    COUNT(sample_ticks, 1); /* a tick delivered, as a timer's */
    __atomic_store_n(&s.sent, s.sent + 1, __ATOMIC_RELAXED);
    syscall(SYS_rt_tgsigqueueinfo, s.pid, s.tid, SAMPLE_SIGNAL, &info);
  }
  return NULL;
}

static void stop_clock_thread(void) {
  if (!s.have_thread) return;
  __atomic_store_n(&s.quit, 1, __ATOMIC_RELEASE);
  syscall(SYS_futex, &s.quit, FUTEX_WAKE | FUTEX_PRIVATE_FLAG, 1, NULL, NULL, 0);
  pthread_join(s.thread, NULL);
  s.have_thread = 0;
}

/* ---- KJIT_SAMPLE_CLOCK_TIMER -------------------------------------------------- */

static int create_timer(void) {
  struct sigevent sev;
  memset(&sev, 0, sizeof(sev));
  sev.sigev_notify = SIGEV_THREAD_ID;
  sev.sigev_signo = SAMPLE_SIGNAL;
  sev.sigev_value.sival_ptr = (void *)&kjit_cb;
  sev._sigev_un._tid = s.tid;
  if (timer_create(CLOCK_MONOTONIC, &sev, &s.timer) != 0) return -errno;
  s.have_timer = 1;
  return 0;
}

/* ---- arming (kernel thread, outside the handler) --------------------------------- */

/* Run the clock at `hz` (0: stopped). */
static int set_rate(uint64_t hz) {
  uint64_t ns = hz ? 1000000000ull / hz : 0;
  if (s.clock == KJIT_SAMPLE_CLOCK_TIMER) {
    struct itimerspec its;
    memset(&its, 0, sizeof(its));
    its.it_interval.tv_sec = (time_t)(ns / 1000000000ull);
    its.it_interval.tv_nsec = (long)(ns % 1000000000ull);
    its.it_value = its.it_interval;
    if (timer_settime(s.timer, 0, &its, NULL) != 0) return -errno;
  } else if (hz == 0) {
    stop_clock_thread();
  } else {
    __atomic_store_n(&s.period_ns, ns, __ATOMIC_RELAXED);
    if (!s.have_thread) {
      __atomic_store_n(&s.quit, 0, __ATOMIC_RELEASE);
      int err = pthread_create(&s.thread, NULL, clock_main, NULL);
      if (err) return -err;
      s.have_thread = 1;
    }
  }
  s.armed_hz = hz;
  STORE(sample_armed_hz, hz);
  return 0;
}

/* Make the clock run at cb.sample_hz, setting everything up on first use. */
static void follow_rate(void) {
  uint64_t want = LOAD(sample_hz);
  if (want > MAX_HZ) want = MAX_HZ;
  if (want == s.armed_hz || LOAD(sample_error)) return;
  int err = 0;
  if (!s.installed) {
    if (!want) return;
    if ((err = install())) goto fail;
    STORE(sample_cost_ns, calibrate());
    if (s.clock == KJIT_SAMPLE_CLOCK_TIMER && (err = create_timer())) goto fail;
    STORE(sample_armed_ns, now_ns(CLOCK_MONOTONIC));
  }
  if ((err = set_rate(want))) goto fail;
  return;
fail:
  STORE(sample_error, (uint64_t)(int64_t)err);
  kjit_log("sampler: could not arm the sampling clock; sampling is off");
}

void kjit_sampler_start(void) {
  pthread_attr_t attr;
  void *addr = NULL;
  size_t size = 0;
  if (pthread_getattr_np(pthread_self(), &attr) == 0) {
    pthread_attr_getstack(&attr, &addr, &size);
    pthread_attr_destroy(&attr);
  }
  /* walkable: up to kjit_thread_main's frame, which is not recorded */
  s.main_lo = (uint64_t)addr;
  s.main_hi = kjit_main_frame_top + 8;
  s.pid = getpid();
  s.tid = (pid_t)syscall(SYS_gettid);
  s.clock = LOAD(sample_clock) == KJIT_SAMPLE_CLOCK_TIMER ? KJIT_SAMPLE_CLOCK_TIMER : KJIT_SAMPLE_CLOCK_THREAD;
  follow_rate();
}

void kjit_sampler_poll(void) {
  if (LOAD(sample_hz) != s.armed_hz) follow_rate();
}

void kjit_sampler_stop(void) {
  /* No tick after this: a timer is deleted (one that expired before is
   * delivered on the way out of that system call), the clock thread joined
   * (a tick it sent is delivered on the way out of the join). */
  if (s.have_timer) {
    timer_delete(s.timer);
    s.have_timer = 0;
  }
  stop_clock_thread();
  if (s.armed_hz || LOAD(sample_armed_ns)) STORE(sample_disarmed_ns, now_ns(CLOCK_MONOTONIC));
  s.armed_hz = 0;
  STORE(sample_armed_hz, 0);
  if (s.installed) {
    struct sigaction now;
    sigaction(SAMPLE_SIGNAL, NULL, &now);
    if ((now.sa_flags & SA_SIGINFO) && now.sa_sigaction == on_sample) {
      /* never back to SIG_DFL: a stray real-time signal would end the process */
      struct sigaction back = s.previous;
      if (!(back.sa_flags & SA_SIGINFO) && back.sa_handler == SIG_DFL) back.sa_handler = SIG_IGN;
      sigaction(SAMPLE_SIGNAL, &back, NULL);
    }
    s.installed = 0;
  }
}
