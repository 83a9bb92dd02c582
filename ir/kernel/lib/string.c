/*
 * @fileoverview Memory and string routines.  The compiler emits calls to
 * memcpy/memset/memmove for struct copies and loops; the kernel provides
 * them itself, on top of the asm/ variants, so no libc is involved.
 */
#include <kernel/lib.h>

void *memcpy(void *dst, const void *src, size_t n) { return kmemcpy(dst, src, n); }

void *memmove(void *dst, const void *src, size_t n) { return kmemmove_asm(dst, src, n); }

void *memset(void *dst, int c, size_t n) { return kmemset_stosb(dst, c, n); }

int memcmp(const void *a, const void *b, size_t n) {
  const u8 *x = a, *y = b;
  /* Compare a word at a time while the words are equal: dentry names and
   * socket keys are short but not tiny. */
  while (n >= 8) {
    u64 u, v;
    __builtin_memcpy(&u, x, 8);
    __builtin_memcpy(&v, y, 8);
    if (u != v) break;
    x += 8;
    y += 8;
    n -= 8;
  }
  for (; n; n--, x++, y++)
    if (*x != *y) return (int)*x - (int)*y;
  return 0;
}

size_t strlen(const char *s) {
  const char *p = s;
  while (*p) p++;
  return (size_t)(p - s);
}

size_t strnlen(const char *s, size_t max) {
  size_t n = 0;
  while (n < max && s[n]) n++;
  return n;
}

int strcmp(const char *a, const char *b) {
  while (*a && *a == *b) a++, b++;
  return (int)(u8)*a - (int)(u8)*b;
}

int strncmp(const char *a, const char *b, size_t n) {
  for (; n; n--, a++, b++) {
    if (*a != *b) return (int)(u8)*a - (int)(u8)*b;
    if (!*a) return 0;
  }
  return 0;
}

char *strchr(const char *s, int c) {
  for (;; s++) {
    if (*s == (char)c) return (char *)s;
    if (!*s) return NULL;
  }
}

size_t strlcpy(char *dst, const char *src, size_t size) {
  size_t len = strlen(src);
  if (size) {
    size_t n = len < size - 1 ? len : size - 1;
    for (size_t i = 0; i < n; i++) dst[i] = src[i];
    dst[n] = 0;
  }
  return len;
}

int kisdigit(int c) { return c >= '0' && c <= '9'; }

long katol(const char *s, const char **end) {
  long sign = 1, v = 0;
  if (*s == '-') sign = -1, s++;
  else if (*s == '+') s++;
  while (kisdigit(*s)) v = v * 10 + (*s++ - '0');
  if (end) *end = s;
  return sign * v;
}
