/*
 * @fileoverview The user programs' heap: a bump allocator in the program's
 * own user memory (every buffer handed to a system call must live there, or
 * access_ok refuses it).  The first 64 bytes of user memory are its header.
 */
#include <kernel/lib.h>
#include <kernel/sched.h>

struct uheap {
  u64 used;
};

void *u_alloc(size_t n) {
  struct uheap *h = (struct uheap *)current->user_base;
  if (h->used == 0) h->used = 64;
  u64 at = ALIGN_UP(h->used, 16);
  if (at + n > current->user_size) panic("user program %s: out of user memory", current->comm);
  h->used = at + n;
  return current->user_base + at;
}

char *u_strdup(const char *s) {
  size_t n = strlen(s) + 1;
  char *p = u_alloc(n);
  for (size_t i = 0; i < n; i++) p[i] = s[i];
  return p;
}
