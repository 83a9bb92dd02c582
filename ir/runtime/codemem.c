/*
 * @fileoverview Code memory for the kernel's JIT: every object ORC links for
 * an image (baseline and every later version) is placed in ONE reserved
 * region of at most 1 GiB, so any `rel32` between two pieces of JIT code
 * reaches (DESIGN.md section 5).
 *
 * These functions are the RTDyld memory-manager callbacks of the kernel's
 * LLJIT (LLVMOrcCreateRTDyldObjectLinkingLayerWithMCJITMemoryManagerLikeCallbacks).
 * They cannot live in the image itself (the image is what they place), so kjit
 * compiles this file first, in a small loader JIT with LLVM's own memory
 * manager, and hands the function addresses to the kernel's JIT.  LLVM calls
 * them on the thread that links, which in kjit is always the host's main
 * thread, and never from a signal handler.
 *
 * The region is a memfd mapped twice:
 *   - the execution view, where code runs: pages are PROT_NONE until an object
 *     claims them, PROT_READ|PROT_WRITE while RTDyld writes and relocates the
 *     object, then PROT_READ|PROT_EXEC (code), PROT_READ (read-only data) or
 *     stay PROT_READ|PROT_WRITE (data) when the object is finalized.  No page
 *     of this view is ever writable and executable at once;
 *   - the alias view, PROT_READ|PROT_WRITE over the same pages at another
 *     address, through which live code is patched (the install mechanism).
 * Each object's memory is a set of page runs it owns alone, so destroying an
 * object (its ORC resource tracker was removed) returns exactly its pages:
 * they go back to PROT_NONE and their memory is released (hole punched).
 *
 * The limit (the code share of the memory the kernel granted the JIT,
 * src/scheduler/budget.ts) is enforced here, and an allocation beyond it
 * must fail cleanly.  RuntimeDyld treats a NULL from an allocation callback
 * as a fatal error ("Unable to allocate section memory!": the whole process
 * aborts), so a refused allocation is instead served from scratch memory
 * outside the region (anonymous, read-write, never executable, never
 * counted as code memory) and the object is marked failed: finalize then
 * reports an error, which LLVM returns to the linker's caller as an
 * ordinary error, and destroying the object releases the scratch memory.
 * Its relocations against the region may not reach the scratch pages; they
 * are written, truncated, into memory that never runs.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define PAGE 4096ull
#define RUN_MIN_PAGES 1

enum run_kind { RUN_CODE = 0, RUN_RODATA = 1, RUN_DATA = 2, RUN_KINDS = 3 };

struct run {
  uint64_t first_page, pages;
  uint32_t kind;
};

struct scratch {
  void *at;
  uint64_t bytes;
};

struct object_mem {
  struct run *runs;
  uint32_t nruns, cap;
  /* refused allocations, served outside the region (see the file comment) */
  struct scratch *scratch;
  uint32_t nscratch, scratch_cap;
  /* current partially used run of each kind: byte offset of its free space */
  int32_t open_run[RUN_KINDS];
  uint64_t open_used[RUN_KINDS];
  uint64_t bytes_requested;
  int failed;
};

static struct {
  int fd;
  uint8_t *exec;  /* execution view */
  uint8_t *alias; /* writable alias */
  uint64_t pages;
  uint8_t *used; /* one byte per page: in use */
  uint64_t next_fit;
  uint64_t pages_in_use, peak_pages, limit_pages;
  uint64_t objects_live, objects_total, alloc_failures, objects_refused;
  uint64_t last_code_lo, last_code_hi;
} region = {.fd = -1};

/* ---- region ---------------------------------------------------------------- */

/* Reserve the region.  Returns 0 or -errno. */
int kjit_codemem_init(uint64_t bytes) {
  if (region.exec) return -EBUSY;
  if (bytes == 0 || bytes > (1ull << 30) || bytes % PAGE) return -EINVAL;
  int fd = memfd_create("kjit-code", MFD_CLOEXEC);
  if (fd < 0) return -errno;
  if (ftruncate(fd, (off_t)bytes) != 0) {
    int e = errno;
    close(fd);
    return -e;
  }
  void *exec = mmap(NULL, bytes, PROT_NONE, MAP_SHARED | MAP_NORESERVE, fd, 0);
  if (exec == MAP_FAILED) {
    int e = errno;
    close(fd);
    return -e;
  }
  void *alias = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd, 0);
  if (alias == MAP_FAILED) {
    int e = errno;
    munmap(exec, bytes);
    close(fd);
    return -e;
  }
  uint8_t *used = calloc(bytes / PAGE, 1);
  if (!used) {
    munmap(alias, bytes);
    munmap(exec, bytes);
    close(fd);
    return -ENOMEM;
  }
  region.fd = fd;
  region.exec = exec;
  region.alias = alias;
  region.pages = bytes / PAGE;
  region.used = used;
  region.limit_pages = region.pages;
  return 0;
}

/* Release the region.  Only after every object was destroyed (LLJIT gone). */
int kjit_codemem_release(void) {
  if (!region.exec) return 0;
  if (region.objects_live) return -EBUSY;
  munmap(region.alias, region.pages * PAGE);
  munmap(region.exec, region.pages * PAGE);
  close(region.fd);
  free(region.used);
  memset(&region, 0, sizeof(region));
  region.fd = -1;
  return 0;
}

uint64_t kjit_codemem_base(void) { return (uint64_t)region.exec; }
uint64_t kjit_codemem_alias(void) { return (uint64_t)region.alias; }
uint64_t kjit_codemem_size(void) { return region.pages * PAGE; }

/* Lower (or raise) the number of bytes objects may hold; existing objects
 * keep their memory, new allocations beyond the limit fail cleanly. */
void kjit_codemem_set_limit(uint64_t bytes) {
  uint64_t p = bytes / PAGE;
  region.limit_pages = p < region.pages ? p : region.pages;
}

/* out[0..9): bytes in use, peak bytes, limit bytes, region bytes, live
 * objects, objects ever, failed allocations, pages free, objects refused
 * (whose link failed because an allocation was refused). */
void kjit_codemem_stats(uint64_t *out) {
  out[0] = region.pages_in_use * PAGE;
  out[1] = region.peak_pages * PAGE;
  out[2] = region.limit_pages * PAGE;
  out[3] = region.pages * PAGE;
  out[4] = region.objects_live;
  out[5] = region.objects_total;
  out[6] = region.alloc_failures;
  out[7] = region.pages - region.pages_in_use;
  out[8] = region.objects_refused;
}

/* Code range [lo, hi) of the most recently finalized object. */
void kjit_codemem_last_code(uint64_t *lo, uint64_t *hi) {
  *lo = region.last_code_lo;
  *hi = region.last_code_hi;
}

static int64_t take_pages(uint64_t n) {
  if (region.pages_in_use + n > region.limit_pages) return -1;
  for (uint64_t pass = 0; pass < 2; pass++) {
    uint64_t start = pass == 0 ? region.next_fit : 0;
    uint64_t end = pass == 0 ? region.pages : region.next_fit;
    uint64_t run = 0;
    for (uint64_t p = start; p < end; p++) {
      run = region.used[p] ? 0 : run + 1;
      if (run == n) {
        uint64_t first = p + 1 - n;
        memset(region.used + first, 1, n);
        region.next_fit = p + 1;
        region.pages_in_use += n;
        if (region.pages_in_use > region.peak_pages) region.peak_pages = region.pages_in_use;
        return (int64_t)first;
      }
    }
  }
  return -1;
}

static void give_back(uint64_t first, uint64_t n) {
  uint8_t *at = region.exec + first * PAGE;
  mprotect(at, n * PAGE, PROT_NONE);
  fallocate(region.fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)(first * PAGE),
            (off_t)(n * PAGE));
  memset(region.used + first, 0, n);
  region.pages_in_use -= n;
}

/* ---- RTDyld callbacks ------------------------------------------------------- */

void *kjit_codemem_create_context(void *ctx_ctx) {
  (void)ctx_ctx;
  struct object_mem *o = calloc(1, sizeof(*o));
  if (!o) return NULL;
  for (int k = 0; k < RUN_KINDS; k++) o->open_run[k] = -1;
  region.objects_live++;
  region.objects_total++;
  return o;
}

void kjit_codemem_notify_terminating(void *ctx_ctx) { (void)ctx_ctx; }

/* A refused allocation: scratch memory outside the region, so LLVM never
 * sees NULL (see the file comment); the object is failed.  NULL only if
 * even that cannot be had (then LLVM aborts: the host is out of memory). */
static uint8_t *refuse(struct object_mem *o, uint64_t size, uint64_t align) {
  region.alloc_failures++;
  if (!o->failed) region.objects_refused++;
  o->failed = 1;
  if (o->nscratch == o->scratch_cap) {
    uint32_t cap = o->scratch_cap ? o->scratch_cap * 2 : 4;
    struct scratch *sc = realloc(o->scratch, cap * sizeof(*sc));
    if (!sc) return NULL;
    o->scratch = sc;
    o->scratch_cap = cap;
  }
  uint64_t bytes = (size + (align > PAGE ? align : 0) + PAGE - 1) & ~(PAGE - 1);
  void *at = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (at == MAP_FAILED) return NULL;
  o->scratch[o->nscratch++] = (struct scratch){at, bytes};
  return (uint8_t *)(((uint64_t)at + align - 1) & ~(align - 1));
}

static uint8_t *allocate(struct object_mem *o, uint64_t size, uint64_t align, int kind) {
  if (align == 0) align = 16;
  if (size == 0) size = 1;
  o->bytes_requested += size;
  /* once one allocation was refused the object cannot link: take nothing more from the region */
  if (o->failed) return refuse(o, size, align);
  int32_t r = o->open_run[kind];
  if (r >= 0) {
    struct run *run = &o->runs[r];
    uint64_t at = (o->open_used[kind] + align - 1) & ~(align - 1);
    if (at + size <= run->pages * PAGE) {
      o->open_used[kind] = at + size;
      return region.exec + run->first_page * PAGE + at;
    }
  }
  uint64_t need = (size + align + PAGE - 1) / PAGE;
  if (need < RUN_MIN_PAGES && kind == RUN_CODE) need = RUN_MIN_PAGES;
  if (need < 1) need = 1;
  int64_t first = take_pages(need);
  if (first < 0) return refuse(o, size, align);
  if (o->nruns == o->cap) {
    uint32_t cap = o->cap ? o->cap * 2 : 8;
    struct run *runs = realloc(o->runs, cap * sizeof(*runs));
    if (!runs) {
      give_back((uint64_t)first, need);
      return refuse(o, size, align);
    }
    o->runs = runs;
    o->cap = cap;
  }
  o->runs[o->nruns] = (struct run){(uint64_t)first, need, (uint32_t)kind};
  o->open_run[kind] = (int32_t)o->nruns++;
  uint8_t *base = region.exec + (uint64_t)first * PAGE;
  /* Writable while RTDyld copies and relocates; finalize sets the final mode. */
  mprotect(base, need * PAGE, PROT_READ | PROT_WRITE);
  o->open_used[kind] = size;
  return base;
}

uint8_t *kjit_codemem_allocate_code(void *opaque, uintptr_t size, unsigned align, unsigned id,
                                    const char *name) {
  (void)id;
  (void)name;
  return allocate(opaque, size, align, RUN_CODE);
}

uint8_t *kjit_codemem_allocate_data(void *opaque, uintptr_t size, unsigned align, unsigned id,
                                    const char *name, int read_only) {
  (void)id;
  (void)name;
  return allocate(opaque, size, align, read_only ? RUN_RODATA : RUN_DATA);
}

static char finalize_error[] = "kjit code region: an allocation was refused (over the code memory limit, or the region is full)";

int kjit_codemem_finalize(void *opaque, char **err) {
  struct object_mem *o = opaque;
  if (o->failed) {
    /* LLVM frees *err with free(): hand it a heap copy. */
    if (err) *err = strdup(finalize_error);
    return 1;
  }
  uint64_t lo = UINT64_MAX, hi = 0;
  for (uint32_t i = 0; i < o->nruns; i++) {
    struct run *r = &o->runs[i];
    uint8_t *at = region.exec + r->first_page * PAGE;
    int prot = r->kind == RUN_CODE ? PROT_READ | PROT_EXEC
               : r->kind == RUN_RODATA ? PROT_READ
                                       : PROT_READ | PROT_WRITE;
    if (mprotect(at, r->pages * PAGE, prot) != 0) {
      if (err) *err = strdup("kjit code region: mprotect failed while finalizing an object");
      return 1;
    }
    if (r->kind == RUN_CODE) {
      if ((uint64_t)at < lo) lo = (uint64_t)at;
      if ((uint64_t)at + r->pages * PAGE > hi) hi = (uint64_t)at + r->pages * PAGE;
    }
  }
  for (int k = 0; k < RUN_KINDS; k++) o->open_run[k] = -1; /* no more sub-allocation */
  region.last_code_lo = hi ? lo : 0;
  region.last_code_hi = hi;
  return 0;
}

void kjit_codemem_destroy(void *opaque) {
  struct object_mem *o = opaque;
  if (!o) return;
  for (uint32_t i = 0; i < o->nruns; i++) give_back(o->runs[i].first_page, o->runs[i].pages);
  for (uint32_t i = 0; i < o->nscratch; i++) munmap(o->scratch[i].at, o->scratch[i].bytes);
  free(o->scratch);
  free(o->runs);
  free(o);
  region.objects_live--;
}

/* ---- the object-linking-layer creator for LLJIT ---------------------------- */

typedef void *(*create_layer_fn)(void *es, void *ctx_ctx, void *create_context,
                                 void *notify_terminating, void *allocate_code,
                                 void *allocate_data, void *finalize, void *destroy);

/* Passed to LLVMOrcLLJITBuilderSetObjectLinkingLayerCreator with `ctx` = the
 * address of LLVMOrcCreateRTDyldObjectLinkingLayerWithMCJITMemoryManagerLikeCallbacks
 * (kjit looks it up in libLLVM), so no JavaScript runs inside LLVM's call. */
void *kjit_codemem_layer_creator(void *ctx, void *es, const char *triple) {
  (void)triple;
  create_layer_fn create = (create_layer_fn)ctx;
  return create(es, NULL, (void *)kjit_codemem_create_context,
                (void *)kjit_codemem_notify_terminating, (void *)kjit_codemem_allocate_code,
                (void *)kjit_codemem_allocate_data, (void *)kjit_codemem_finalize,
                (void *)kjit_codemem_destroy);
}
