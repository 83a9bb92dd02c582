/*
 * @fileoverview Sockets as files: the socket system calls (socket, bind,
 * listen, accept, sendto, recvfrom, shutdown) and the file operations
 * that let read, write, poll and close work on a socket descriptor.
 */
#include <kernel/file.h>
#include <kernel/lib.h>
#include <kernel/sched.h>
#include <kernel/syscall.h>
#include <kernel/uapi.h>

#include "net_priv.h"

#define SOCK_TYPE_MASK 0xf
#define EPHEMERAL_LO 32768
#define EPHEMERAL_HI 60999

/* ---- copying through a user or kernel buffer ------------------------------ */

long sk_iter_copy_from(struct sk_iter *it, void *dst, size_t n) {
  if (it->user) {
    if (copy_from_user(dst, it->ptr, n)) return -EFAULT;
  } else {
    kmemcpy(dst, it->ptr, n);
  }
  it->ptr += n;
  return 0;
}

long sk_iter_copy_to(struct sk_iter *it, const void *src, size_t n) {
  if (it->user) {
    if (copy_to_user(it->ptr, src, n)) return -EFAULT;
  } else {
    kmemcpy(it->ptr, src, n);
  }
  it->ptr += n;
  return 0;
}

/* ---- protocol dispatch ------------------------------------------------------ */

static bool sk_is_stream(const struct sock *sk) { return sk->type == SOCK_STREAM; }

static long sock_send(struct sock *sk, struct sk_iter *it, size_t len, bool nonblock, be32 daddr, be16 dport);
static long sock_recv(struct sock *sk, struct sk_iter *it, size_t len, bool nonblock, be32 *saddr, be16 *sport);

/* ---- file operations ---------------------------------------------------------- */

static long sock_read(struct file *f, void *buf, size_t len, u64 *pos) {
  struct sk_iter it = {buf, false};
  be32 a;
  be16 p;
  return sock_recv(f->private_data, &it, len, f->flags & O_NONBLOCK, &a, &p);
}

static long sock_write(struct file *f, const void *buf, size_t len, u64 *pos) {
  struct sk_iter it = {(u8 *)buf, false};
  return sock_send(f->private_data, &it, len, f->flags & O_NONBLOCK, 0, 0);
}

static unsigned sock_poll(struct file *f, struct poll_table *pt) {
  struct sock *sk = f->private_data;
  if (pt) poll_wait(&sk->wq, pt);
  return sk_is_stream(sk) ? tcp_poll(sk) : udp_poll(sk);
}

static int sock_fstat(struct file *f, struct kstat *st) {
  memset(st, 0, sizeof(*st));
  st->st_mode = S_IFSOCK | 0777;
  st->st_nlink = 1;
  return 0;
}

static void sock_release(struct file *f) {
  struct sock *sk = f->private_data;
  if (sk_is_stream(sk))
    tcp_close(sk);
  else
    udp_close(sk);
}

static const struct file_operations socket_file_ops = {
    .read = sock_read,
    .write = sock_write,
    .poll = sock_poll,
    .fstat = sock_fstat,
    .release = sock_release,
};

/* ---- helpers of the system calls ---------------------------------------------- */

static struct sock *sockfd_lookup(u64 fd, long *err, struct file **filep) {
  struct file *f = fd_lookup((int)fd);
  if (!f) {
    *err = -EBADF;
    return NULL;
  }
  if (f->f_op != &socket_file_ops) {
    *err = -ENOTSOCK;
    return NULL;
  }
  if (filep) *filep = f;
  return f->private_data;
}

/* A new descriptor for sk.  On failure the file's release closes sk. */
static long sock_map_fd(struct sock *sk, u32 flags) {
  struct file *f = file_alloc(&socket_file_ops, sk, O_RDWR | flags);
  if (!f) {
    sock_release_orphan(sk);
    return -ENFILE;
  }
  int fd = fd_install(f);
  if (fd < 0) file_put(f);
  return fd;
}

void sock_release_orphan(struct sock *sk) {
  if (sk_is_stream(sk))
    tcp_close(sk);
  else
    udp_close(sk);
}

static long sock_get_addr(u64 uaddr, u64 alen, be32 *addr, be16 *port) {
  struct sockaddr_in sin;
  if (alen < sizeof(sin)) return -EINVAL;
  if (copy_from_user(&sin, (const void *)(uintptr_t)uaddr, sizeof(sin))) return -EFAULT;
  if (sin.sin_family != AF_INET) return -EINVAL;
  *addr = sin.sin_addr;
  *port = sin.sin_port;
  return 0;
}

/* Store an address for the caller: at most *ulen bytes, then the full size. */
static long sock_put_addr(u64 uaddr, u64 ulen, be32 addr, be16 port) {
  if (!uaddr || !ulen) return 0;
  unsigned len;
  if (copy_from_user(&len, (const void *)(uintptr_t)ulen, sizeof(len))) return -EFAULT;
  struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = port, .sin_addr = addr};
  if (copy_to_user((void *)(uintptr_t)uaddr, &sin, MIN((size_t)len, sizeof(sin)))) return -EFAULT;
  len = sizeof(sin);
  return copy_to_user((void *)(uintptr_t)ulen, &len, sizeof(len));
}

static int sock_bind_port(struct sock *sk, be32 addr, be16 port) {
  if (addr) {
    const struct fib_entry *fe = fib_lookup(addr);
    if (!fe || fe->type != RTN_LOCAL) return -EADDRNOTAVAIL;
  }
  if (!port) {
    static u16 next_ephemeral = EPHEMERAL_LO;
    for (u32 tries = 0; tries <= EPHEMERAL_HI - EPHEMERAL_LO; tries++) {
      u16 p = next_ephemeral;
      next_ephemeral = p == EPHEMERAL_HI ? EPHEMERAL_LO : p + 1;
      if (!inet_port_in_use(sk->protocol, htons(p))) {
        port = htons(p);
        break;
      }
    }
    if (!port) return -EADDRINUSE;
  } else if (inet_port_in_use(sk->protocol, port)) {
    return -EADDRINUSE;
  } else if (ntohs(port) < 1024 && current->uid != 0) {
    return -EACCES;
  }
  sk->laddr = addr;
  sk->lport = port;
  sk->bound = true;
  inet_bhash_insert(sk);
  return 0;
}

static long sock_send(struct sock *sk, struct sk_iter *it, size_t len, bool nonblock, be32 daddr, be16 dport) {
  if (sk_is_stream(sk)) return tcp_sendmsg(sk, it, len, nonblock);
  if (!daddr) {
    daddr = sk->faddr;
    dport = sk->fport;
  }
  if (!sk->bound) {
    int err = sock_bind_port(sk, 0, 0);
    if (err) return err;
  }
  return udp_sendmsg(sk, it, len, daddr, dport);
}

static long sock_recv(struct sock *sk, struct sk_iter *it, size_t len, bool nonblock, be32 *saddr, be16 *sport) {
  if (sk_is_stream(sk)) {
    *saddr = sk->faddr;
    *sport = sk->fport;
    return tcp_recvmsg(sk, it, len, nonblock);
  }
  return udp_recvmsg(sk, it, len, nonblock, saddr, sport);
}

/* ---- the system calls ------------------------------------------------------------ */

static long sys_socket(u64 domain, u64 type, u64 protocol, u64 d, u64 e, u64 f) {
  if (domain != AF_INET) return -EPROTONOSUPPORT;
  u32 kind = (u32)type & SOCK_TYPE_MASK;
  u8 proto;
  if (kind == SOCK_STREAM && (protocol == 0 || protocol == IPPROTO_TCP))
    proto = IPPROTO_TCP;
  else if (kind == SOCK_DGRAM && (protocol == 0 || protocol == IPPROTO_UDP))
    proto = IPPROTO_UDP;
  else
    return -EPROTONOSUPPORT;
  struct sock *sk = sk_alloc((u8)kind, proto);
  if (!sk) return -ENOMEM;
  return sock_map_fd(sk, (u32)type & O_NONBLOCK); /* SOCK_NONBLOCK == O_NONBLOCK */
}

static long sys_bind(u64 fd, u64 uaddr, u64 alen, u64 d, u64 e, u64 f) {
  long err;
  struct sock *sk = sockfd_lookup(fd, &err, NULL);
  if (!sk) return err;
  be32 addr;
  be16 port;
  if ((err = sock_get_addr(uaddr, alen, &addr, &port))) return err;
  if (sk->bound) return -EINVAL;
  return sock_bind_port(sk, addr, port);
}

static long sys_listen(u64 fd, u64 backlog, u64 c, u64 d, u64 e, u64 f) {
  long err;
  struct sock *sk = sockfd_lookup(fd, &err, NULL);
  if (!sk) return err;
  if (!sk_is_stream(sk)) return -EOPNOTSUPP;
  return tcp_listen(sk, (int)backlog);
}

static long sys_accept(u64 fd, u64 uaddr, u64 ulen, u64 d, u64 e, u64 f) {
  long err;
  struct file *file;
  struct sock *lsk = sockfd_lookup(fd, &err, &file);
  if (!lsk) return err;
  if (!sk_is_stream(lsk)) return -EOPNOTSUPP;
  if (uaddr && !access_ok((void *)(uintptr_t)ulen, sizeof(unsigned))) return -EFAULT;
  struct sock *sk = tcp_accept(lsk, file->flags & O_NONBLOCK, &err);
  if (!sk) return err;
  be32 peer = sk->faddr;
  be16 port = sk->fport;
  long newfd = sock_map_fd(sk, 0);
  if (newfd < 0) return newfd;
  if ((err = sock_put_addr(uaddr, ulen, peer, port))) {
    fd_close((int)newfd); /* the caller never learns the descriptor: do not leak it */
    return err;
  }
  return newfd;
}

static long sys_sendto(u64 fd, u64 ubuf, u64 len, u64 flags, u64 uaddr, u64 alen) {
  long err;
  struct file *file;
  struct sock *sk = sockfd_lookup(fd, &err, &file);
  if (!sk) return err;
  if (!access_ok((void *)(uintptr_t)ubuf, len)) return -EFAULT;
  be32 daddr = 0;
  be16 dport = 0;
  if (uaddr && !sk_is_stream(sk) && (err = sock_get_addr(uaddr, alen, &daddr, &dport))) return err;
  struct sk_iter it = {(u8 *)(uintptr_t)ubuf, true};
  bool nonblock = (flags & MSG_DONTWAIT) || (file->flags & O_NONBLOCK);
  return sock_send(sk, &it, len, nonblock, daddr, dport);
}

static long sys_recvfrom(u64 fd, u64 ubuf, u64 len, u64 flags, u64 uaddr, u64 ulen) {
  long err;
  struct file *file;
  struct sock *sk = sockfd_lookup(fd, &err, &file);
  if (!sk) return err;
  if (!access_ok((void *)(uintptr_t)ubuf, len)) return -EFAULT;
  struct sk_iter it = {(u8 *)(uintptr_t)ubuf, true};
  bool nonblock = (flags & MSG_DONTWAIT) || (file->flags & O_NONBLOCK);
  be32 saddr = 0;
  be16 sport = 0;
  long n = sock_recv(sk, &it, len, nonblock, &saddr, &sport);
  if (n >= 0 && (err = sock_put_addr(uaddr, ulen, saddr, sport))) return err;
  return n;
}

static long sys_shutdown(u64 fd, u64 how, u64 c, u64 d, u64 e, u64 f) {
  long err;
  struct sock *sk = sockfd_lookup(fd, &err, NULL);
  if (!sk) return err;
  if (!sk_is_stream(sk)) return -ENOTCONN;
  return tcp_shutdown(sk, (int)how);
}

void socket_init(void) {
  syscall_register(SYS_socket, sys_socket, "socket");
  syscall_register(SYS_bind, sys_bind, "bind");
  syscall_register(SYS_listen, sys_listen, "listen");
  syscall_register(SYS_accept, sys_accept, "accept");
  syscall_register(SYS_sendto, sys_sendto, "sendto");
  syscall_register(SYS_recvfrom, sys_recvfrom, "recvfrom");
  syscall_register(SYS_shutdown, sys_shutdown, "shutdown");
}
