/*
 * @fileoverview Structures user programs and the kernel share (what a libc
 * would get from <sys/stat.h>, <netinet/in.h>, <sys/socket.h>).
 */
#ifndef KERNEL_UAPI_H
#define KERNEL_UAPI_H

#include <kernel/types.h>

/* ---- files ---------------------------------------------------------------- */

#define S_IFMT 0170000
#define S_IFSOCK 0140000
#define S_IFLNK 0120000
#define S_IFREG 0100000
#define S_IFDIR 0040000
#define S_IFCHR 0020000
#define S_IFIFO 0010000
#define S_ISVTX 01000
#define S_ISDIR(m) (((m)&S_IFMT) == S_IFDIR)
#define S_ISREG(m) (((m)&S_IFMT) == S_IFREG)
#define S_ISLNK(m) (((m)&S_IFMT) == S_IFLNK)

#define SEEK_SET 0
#define SEEK_CUR 1
#define SEEK_END 2

struct kstat {
  u64 st_dev;
  u64 st_ino;
  u32 st_mode;
  u32 st_nlink;
  u32 st_uid;
  u32 st_gid;
  u64 st_size;
  u64 st_blocks;
  u64 st_mtime_ns; /* logical clock, deterministic */
};

/* ---- sockets --------------------------------------------------------------- */

#define AF_INET 2
#define SOCK_STREAM 1
#define SOCK_DGRAM 2
#define IPPROTO_ICMP 1
#define IPPROTO_TCP 6
#define IPPROTO_UDP 17
#define MSG_DONTWAIT 0x40
#define SHUT_WR 1

struct sockaddr_in {
  u16 sin_family;
  be16 sin_port;
  be32 sin_addr;
  u8 sin_zero[8];
};

/* ---- firewall control (SYS_fwctl) ---------------------------------------- */

enum fw_cmd { FW_FLUSH = 0, FW_APPEND = 1, FW_COUNT = 2 };
enum fw_verdict { FW_ACCEPT = 0, FW_DROP = 1, FW_REJECT = 2 };
struct fw_rule_spec {
  be32 src, src_mask;
  be32 dst, dst_mask;
  u16 dport_lo, dport_hi; /* host order; 0..65535 = any */
  u8 proto;               /* 0 = any */
  u8 verdict;             /* enum fw_verdict */
  u16 pad;
};

#endif
