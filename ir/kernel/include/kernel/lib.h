/*
 * @fileoverview The kernel's library: string and memory routines, hashing,
 * checksums, byte order, formatted output and the log.  Copies, checksums and
 * CRC32C go to the asm/ routines the selector sysctls chose for this CPU
 * (cpu.copy, cpu.csum, cpu.crc32c): in `stock` the choice is a branch on the
 * selector at run time, in `boot` kjit folds the selector and the call is
 * bound directly.
 */
#ifndef KERNEL_LIB_H
#define KERNEL_LIB_H

#include <kernel/sysctl.h>
#include <kernel/types.h>

/* ---- asm/ routines ------------------------------------------------------- */
void *copy_erms(void *dst, const void *src, size_t n);    /* rep movsb (ERMS/FSRM) */
void *copy_avx2(void *dst, const void *src, size_t n);    /* 32-byte vector loop */
void *copy_generic(void *dst, const void *src, size_t n); /* rep movsq + tail */
void *kmemset_stosb(void *dst, int c, size_t n);          /* rep stosb */
void *kmemmove_asm(void *dst, const void *src, size_t n); /* overlap-safe */
u64 csum_partial_adc(const void *buf, size_t len, u64 sum); /* 64-bit adc chain */
u32 crc32c_sse42(u32 crc, const void *buf, size_t len);   /* crc32q/crc32b */
void kjit_cpuid(u32 leaf, u32 subleaf, u32 out[4]);       /* eax, ebx, ecx, edx */
u64 rdtsc_ordered(void);

/* Selector values (see sysctl.c and the alternatives table). */
enum { COPY_GENERIC = 0, COPY_ERMS = 1, COPY_AVX2 = 2 };
enum { CSUM_C = 0, CSUM_ADC = 1 };
enum { CRC32C_SW = 0, CRC32C_SSE42 = 1 };

/* Bulk copy through the chosen variant. */
static __always_inline void *kmemcpy(void *dst, const void *src, size_t n) {
  switch (sysctl_cpu_copy) {
  case COPY_ERMS:
    return copy_erms(dst, src, n);
  case COPY_AVX2:
    return copy_avx2(dst, src, n);
  default:
    return copy_generic(dst, src, n);
  }
}

/* Defined in lib/string.c (the compiler may also emit calls to these). */
void *memcpy(void *dst, const void *src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
size_t strnlen(const char *s, size_t max);
int strcmp(const char *a, const char *b);
int strncmp(const char *a, const char *b, size_t n);
char *strchr(const char *s, int c);
size_t strlcpy(char *dst, const char *src, size_t size);
int kisdigit(int c);
long katol(const char *s, const char **end); /* decimal, optional sign */

/* ---- checksums ------------------------------------------------------------- */

/* Internet checksum helpers (RFC 1071): partial sums are 64-bit accumulators
 * folded at the end. */
u64 csum_partial_c(const void *buf, size_t len, u64 sum);
static __always_inline u64 csum_partial(const void *buf, size_t len, u64 sum) {
  if (sysctl_cpu_csum == CSUM_ADC) return csum_partial_adc(buf, len, sum);
  return csum_partial_c(buf, len, sum);
}
u16 csum_fold(u64 sum); /* fold to 16 bits and complement */

u32 crc32c_sw(u32 crc, const void *buf, size_t len);
static __always_inline u32 crc32c(u32 crc, const void *buf, size_t len) {
  if (sysctl_cpu_crc32c == CRC32C_SSE42) return crc32c_sse42(crc, buf, len);
  return crc32c_sw(crc, buf, len);
}

/* ---- hashing ------------------------------------------------------------- */

u32 jhash(const void *key, size_t len, u32 seed);         /* Bob Jenkins' lookup3 */
u32 jhash_3words(u32 a, u32 b, u32 c, u32 seed);
u32 full_name_hash(const char *name, size_t len, u32 salt); /* dcache name hash */
static inline u64 hash64(u64 x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  x ^= x >> 33;
  return x;
}
static inline u32 hash_32(u32 v, unsigned bits) { return (u32)(v * 0x61C88647u) >> (32 - bits); }

/* Deterministic generator for workloads (xorshift64*). */
struct krand {
  u64 s;
};
static inline u64 krand_next(struct krand *r) {
  u64 x = r->s;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  r->s = x;
  return x * 0x2545F4914F6CDD1Dull;
}
static inline void krand_seed(struct krand *r, u64 seed) { r->s = hash64(seed) | 1; }

/* ---- byte order ---------------------------------------------------------- */

static inline u16 htons(u16 x) { return __builtin_bswap16(x); }
static inline u16 ntohs(u16 x) { return __builtin_bswap16(x); }
static inline u32 htonl(u32 x) { return __builtin_bswap32(x); }
static inline u32 ntohl(u32 x) { return __builtin_bswap32(x); }

/* ---- output -------------------------------------------------------------- */

/* Supports %d %i %u %x %lx %ld %lu %llx %llu %lld %s %c %p %%, widths and '0'. */
int kvsnprintf(char *buf, size_t size, const char *fmt, va_list ap);
int ksnprintf(char *buf, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Format a line into the kernel log (the runtime's log ring). */
void printk(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
__attribute__((noreturn)) void panic(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
#define BUG_ON(cond)                                                  \
  do {                                                                \
    if (unlikely(cond)) panic("BUG at %s:%d: %s", __FILE__, __LINE__, #cond); \
  } while (0)

#endif
