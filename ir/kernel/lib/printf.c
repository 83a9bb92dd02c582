/*
 * @fileoverview Formatted output for the log, procfs and audit records.
 */
#include <kernel/lib.h>

#include "kjit_rt.h"

struct out {
  char *buf;
  size_t size, len;
};

static void put(struct out *o, char c) {
  if (o->len + 1 < o->size) o->buf[o->len] = c;
  o->len++;
}

static void put_number(struct out *o, u64 v, unsigned base, bool negative, int width, char pad) {
  char tmp[24];
  int n = 0;
  do {
    unsigned d = (unsigned)(v % base);
    tmp[n++] = (char)(d < 10 ? '0' + d : 'a' + d - 10);
    v /= base;
  } while (v);
  if (negative) tmp[n++] = '-';
  for (int i = n; i < width; i++) put(o, pad);
  while (n) put(o, tmp[--n]);
}

int kvsnprintf(char *buf, size_t size, const char *fmt, va_list ap) {
  struct out o = {buf, size, 0};
  for (const char *p = fmt; *p; p++) {
    if (*p != '%') {
      put(&o, *p);
      continue;
    }
    p++;
    char pad = ' ';
    int width = 0, longs = 0;
    if (*p == '0') pad = '0', p++;
    while (kisdigit(*p)) width = width * 10 + (*p++ - '0');
    while (*p == 'l') longs++, p++;
    if (*p == 'z') longs = 1, p++;
    switch (*p) {
    case 'd':
    case 'i': {
      s64 v = longs ? va_arg(ap, s64) : va_arg(ap, int);
      put_number(&o, v < 0 ? (u64)-v : (u64)v, 10, v < 0, width, pad);
      break;
    }
    case 'u':
      put_number(&o, longs ? va_arg(ap, u64) : va_arg(ap, unsigned), 10, false, width, pad);
      break;
    case 'x':
      put_number(&o, longs ? va_arg(ap, u64) : va_arg(ap, unsigned), 16, false, width, pad);
      break;
    case 'p':
      put(&o, '0');
      put(&o, 'x');
      put_number(&o, (u64)(uintptr_t)va_arg(ap, void *), 16, false, 0, ' ');
      break;
    case 's': {
      const char *s = va_arg(ap, const char *);
      if (!s) s = "(null)";
      int n = (int)strlen(s);
      for (int i = n; i < width; i++) put(&o, ' ');
      while (*s) put(&o, *s++);
      break;
    }
    case 'c':
      put(&o, (char)va_arg(ap, int));
      break;
    case '%':
      put(&o, '%');
      break;
    default:
      put(&o, '%');
      if (*p) put(&o, *p);
      else p--;
    }
  }
  if (o.size) o.buf[o.len < o.size ? o.len : o.size - 1] = 0;
  return (int)o.len;
}

int ksnprintf(char *buf, size_t size, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = kvsnprintf(buf, size, fmt, ap);
  va_end(ap);
  return n;
}

void printk(const char *fmt, ...) {
  char line[192];
  va_list ap;
  va_start(ap, fmt);
  kvsnprintf(line, sizeof(line), fmt, ap);
  va_end(ap);
  kjit_log(line);
}

void panic(const char *fmt, ...) {
  char line[192];
  va_list ap;
  va_start(ap, fmt);
  kvsnprintf(line, sizeof(line), fmt, ap);
  va_end(ap);
  kjit_panic(line);
}
