/*
 * @fileoverview The user programs' "libc": thin wrappers that enter the
 * kernel through syscall_entry, exactly as a user program's system calls
 * would.  User programs (the files in user/) use only these and their own memory.
 */
#ifndef KERNEL_ULIB_H
#define KERNEL_ULIB_H

#include <kernel/syscall.h>
#include <kernel/types.h>

struct kstat;
struct sockaddr_in;
struct pollfd {
  s32 fd;
  s16 events;
  s16 revents;
};

static inline long u_syscall(unsigned nr, u64 a, u64 b, u64 c, u64 d, u64 e, u64 f) {
  return syscall_entry(nr, a, b, c, d, e, f);
}
#define U(p) ((u64)(uintptr_t)(p))
static inline long u_read(int fd, void *buf, size_t n) { return u_syscall(SYS_read, (u64)fd, U(buf), n, 0, 0, 0); }
static inline long u_write(int fd, const void *buf, size_t n) { return u_syscall(SYS_write, (u64)fd, U(buf), n, 0, 0, 0); }
static inline long u_open(const char *path, int flags, int mode) { return u_syscall(SYS_openat, (u64)(s64)AT_FDCWD, U(path), (u64)flags, (u64)mode, 0, 0); }
static inline long u_close(int fd) { return u_syscall(SYS_close, (u64)fd, 0, 0, 0, 0, 0); }
static inline long u_stat(const char *path, struct kstat *st) { return u_syscall(SYS_stat, U(path), U(st), 0, 0, 0, 0); }
static inline long u_fstat(int fd, struct kstat *st) { return u_syscall(SYS_fstat, (u64)fd, U(st), 0, 0, 0, 0); }
static inline long u_lseek(int fd, s64 off, int whence) { return u_syscall(SYS_lseek, (u64)fd, (u64)off, (u64)whence, 0, 0, 0); }
static inline long u_poll(struct pollfd *fds, unsigned n, int timeout) { return u_syscall(SYS_poll, U(fds), n, (u64)(s64)timeout, 0, 0, 0); }
static inline long u_getpid(void) { return u_syscall(SYS_getpid, 0, 0, 0, 0, 0, 0); }
static inline long u_socket(int domain, int type, int proto) { return u_syscall(SYS_socket, (u64)domain, (u64)type, (u64)proto, 0, 0, 0); }
static inline long u_bind(int fd, const struct sockaddr_in *a, unsigned len) { return u_syscall(SYS_bind, (u64)fd, U(a), len, 0, 0, 0); }
static inline long u_listen(int fd, int backlog) { return u_syscall(SYS_listen, (u64)fd, (u64)backlog, 0, 0, 0, 0); }
static inline long u_accept(int fd, struct sockaddr_in *a, unsigned *len) { return u_syscall(SYS_accept, (u64)fd, U(a), U(len), 0, 0, 0); }
static inline long u_sendto(int fd, const void *buf, size_t n, int flags, const struct sockaddr_in *a, unsigned len) { return u_syscall(SYS_sendto, (u64)fd, U(buf), n, (u64)flags, U(a), len); }
static inline long u_recvfrom(int fd, void *buf, size_t n, int flags, struct sockaddr_in *a, unsigned *len) { return u_syscall(SYS_recvfrom, (u64)fd, U(buf), n, (u64)flags, U(a), U(len)); }
static inline long u_shutdown(int fd, int how) { return u_syscall(SYS_shutdown, (u64)fd, (u64)how, 0, 0, 0, 0); }
static inline long u_mkdir(const char *path, int mode) { return u_syscall(SYS_mkdir, U(path), (u64)mode, 0, 0, 0, 0); }
static inline long u_sysctl(const char *name, s64 *old, const s64 *new_value) { return u_syscall(SYS_sysctl, U(name), U(old), U(new_value), 0, 0, 0); }
static inline long u_jobq(void) { return u_syscall(SYS_jobq, 0, 0, 0, 0, 0, 0); }

#endif
