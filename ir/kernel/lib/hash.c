/*
 * @fileoverview Hash functions for the kernel's tables: Bob Jenkins' lookup3
 * (jhash, as Linux uses for sockets and connection tracking) and the name
 * hash of the dentry cache.
 */
#include <kernel/lib.h>

#define rol32(x, k) (((x) << (k)) | ((x) >> (32 - (k))))

#define JHASH_MIX(a, b, c) \
  do {                     \
    a -= c; a ^= rol32(c, 4); c += b;  \
    b -= a; b ^= rol32(a, 6); a += c;  \
    c -= b; c ^= rol32(b, 8); b += a;  \
    a -= c; a ^= rol32(c, 16); c += b; \
    b -= a; b ^= rol32(a, 19); a += c; \
    c -= b; c ^= rol32(b, 4); b += a;  \
  } while (0)

#define JHASH_FINAL(a, b, c) \
  do {                       \
    c ^= b; c -= rol32(b, 14); \
    a ^= c; a -= rol32(c, 11); \
    b ^= a; b -= rol32(a, 25); \
    c ^= b; c -= rol32(b, 16); \
    a ^= c; a -= rol32(c, 4);  \
    b ^= a; b -= rol32(a, 14); \
    c ^= b; c -= rol32(b, 24); \
  } while (0)

#define JHASH_INITVAL 0xdeadbeefu

static u32 get_u32(const u8 *p) {
  u32 v;
  __builtin_memcpy(&v, p, 4);
  return v;
}

u32 jhash(const void *key, size_t len, u32 seed) {
  const u8 *k = key;
  u32 a, b, c;
  a = b = c = JHASH_INITVAL + (u32)len + seed;
  while (len > 12) {
    a += get_u32(k);
    b += get_u32(k + 4);
    c += get_u32(k + 8);
    JHASH_MIX(a, b, c);
    len -= 12;
    k += 12;
  }
  u8 tail[12] = {0};
  for (size_t i = 0; i < len; i++) tail[i] = k[i];
  switch (len) {
  case 0:
    return c;
  default:
    a += get_u32(tail);
    b += get_u32(tail + 4);
    c += get_u32(tail + 8);
    JHASH_FINAL(a, b, c);
    return c;
  }
}

u32 jhash_3words(u32 a, u32 b, u32 c, u32 seed) {
  a += JHASH_INITVAL + seed;
  b += JHASH_INITVAL + seed;
  c += JHASH_INITVAL + seed;
  JHASH_FINAL(a, b, c);
  return c;
}

/* The dentry cache's name hash: a multiplicative hash over the bytes,
 * folded; cheap for short path components, salted by the parent. */
u32 full_name_hash(const char *name, size_t len, u32 salt) {
  u64 h = salt;
  for (size_t i = 0; i < len; i++) h = (h + (u8)name[i]) * 0x9e3779b97f4a7c15ull;
  return (u32)(h >> 32) ^ (u32)h;
}
