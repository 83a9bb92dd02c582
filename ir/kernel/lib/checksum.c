/*
 * @fileoverview Portable checksum variants: the Internet checksum over
 * 16-bit words and a table-driven CRC32C.  The asm/ routines are the fast
 * variants; the selector sysctls choose (lib.h).
 */
#include <kernel/lib.h>

/* RFC 1071 sum of the buffer as 16-bit words in memory order, accumulated in
 * 64 bits (no carry handling needed until 2^48 words). */
u64 csum_partial_c(const void *buf, size_t len, u64 sum) {
  const u8 *p = buf;
  u64 acc = 0;
  while (len >= 2) {
    u16 w;
    __builtin_memcpy(&w, p, 2);
    acc += w;
    p += 2;
    len -= 2;
  }
  if (len) acc += *p; /* the odd byte is the low byte of its word in memory order */
  /* Add the incoming partial sum with an end-around carry. */
  u64 r = sum + acc;
  if (r < sum) r++;
  return r;
}

u16 csum_fold(u64 sum) {
  sum = (sum & 0xffffffffull) + (sum >> 32);
  sum = (sum & 0xffffffffull) + (sum >> 32);
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  return (u16)~sum;
}

/* Reflected CRC32C (Castagnoli, 0x82F63B78) on the raw running value, the
 * same convention as the crc32 instruction. */
static u32 crc32c_table[256];
static bool crc32c_table_ready;

static void crc32c_init_table(void) {
  for (u32 i = 0; i < 256; i++) {
    u32 c = i;
    for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1)));
    crc32c_table[i] = c;
  }
  crc32c_table_ready = true;
}

u32 crc32c_sw(u32 crc, const void *buf, size_t len) {
  if (unlikely(!crc32c_table_ready)) crc32c_init_table();
  const u8 *p = buf;
  while (len--) crc = crc32c_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
  return crc;
}
