/*
 * @fileoverview The worker: a user program serving every workload from one
 * poll() loop, like an event-driven server.  Worker t listens for HTTP on
 * TCP port 8000+t, answers key-value requests on UDP 9000+t, echoes the
 * firewall workload's datagrams on UDP 7000+t, and runs file-system jobs
 * from its job queue.  It uses only system calls and its own memory.
 */
#include <kernel/file.h>
#include <kernel/lib.h>
#include <kernel/ulib.h>
#include <kernel/uapi.h>
#include <kernel/workload.h>

void *u_alloc(size_t n);

#define REQ_MAX 2048
#define IO_CHUNK 4096
#define PATH_MAX_LEN 256
#define KV_SLOTS (KV_KEYS * 2)

struct kv_slot {
  char key[16];
  u8 used;
  u8 vlen;
  char value[KV_VALUE_MAX];
};

struct worker {
  u32 id;
  int lfd, kfd, ffd, jfd;
  struct pollfd *fds;
  char *req, *resp, *io, *path;
  struct sockaddr_in *addr;
  unsigned *alen;
  struct kstat *st;
  struct job *job;
  struct job_result *jr;
  struct kv_slot *kv;
};

static struct sockaddr_in *make_addr(u32 ip, u16 port) {
  struct sockaddr_in *a = u_alloc(sizeof(*a));
  a->sin_family = AF_INET;
  a->sin_port = htons(port);
  a->sin_addr = htonl(ip);
  return a;
}

static int open_socket(int type, u16 port) {
  long fd = u_socket(AF_INET, type, 0);
  if (fd < 0) panic("worker: socket: %ld", fd);
  long r = u_bind((int)fd, make_addr(SERVER_IP, port), sizeof(struct sockaddr_in));
  if (r < 0) panic("worker: bind port %u: %ld", port, r);
  if (type == SOCK_STREAM && (r = u_listen((int)fd, 128)) < 0) panic("worker: listen: %ld", r);
  return (int)fd;
}

/* ---- key-value store: open addressing in user memory ------------------------ */

static u32 kv_hash(const char *key, size_t len) {
  u32 h = 2166136261u; /* FNV-1a */
  for (size_t i = 0; i < len; i++) h = (h ^ (u8)key[i]) * 16777619u;
  return h;
}

static struct kv_slot *kv_find(struct worker *w, const char *key, size_t klen, bool insert) {
  u32 i = kv_hash(key, klen) % KV_SLOTS;
  for (u32 probe = 0; probe < KV_SLOTS; probe++, i = (i + 1) % KV_SLOTS) {
    struct kv_slot *s = &w->kv[i];
    if (!s->used) {
      if (!insert) return NULL;
      s->used = 1;
      for (size_t k = 0; k < klen; k++) s->key[k] = key[k];
      s->key[klen] = 0;
      s->vlen = 0;
      return s;
    }
    if (strnlen(s->key, sizeof(s->key)) == klen && memcmp(s->key, key, klen) == 0) return s;
  }
  return NULL;
}

static void kv_populate(struct worker *w) {
  char key[16], val[KV_VALUE_MAX];
  /* Half the keys exist from the start, with values derived from the key. */
  for (u32 k = 0; k < KV_KEYS; k += 2) {
    int klen = ksnprintf(key, sizeof(key), "k%u", k);
    int vlen = ksnprintf(val, sizeof(val), "value-%u-of-worker-%u", k * 7919u, w->id);
    struct kv_slot *s = kv_find(w, key, (size_t)klen, true);
    s->vlen = (u8)vlen;
    for (int i = 0; i < vlen; i++) s->value[i] = val[i];
  }
}

static void serve_kv(struct worker *w) {
  for (;;) {
    *w->alen = sizeof(struct sockaddr_in);
    long n = u_recvfrom(w->kfd, w->req, REQ_MAX - 1, MSG_DONTWAIT, w->addr, w->alen);
    if (n < 0) return; /* -EAGAIN: drained */
    w->req[n] = 0;
    char *line = w->req;
    size_t len;
    if ((line[0] == 'G' || line[0] == 'S') && line[1] == ' ') {
      char *key = line + 2, *end = key;
      while (*end && *end != ' ' && *end != '\n') end++;
      size_t klen = (size_t)(end - key);
      if (klen == 0 || klen >= 16) {
        len = (size_t)ksnprintf(w->resp, 64, "E bad key\n");
      } else if (line[0] == 'G') {
        struct kv_slot *s = kv_find(w, key, klen, false);
        if (s && s->vlen) {
          w->resp[0] = 'V';
          w->resp[1] = ' ';
          for (u32 i = 0; i < s->vlen; i++) w->resp[2 + i] = s->value[i];
          w->resp[2 + s->vlen] = '\n';
          len = 3u + s->vlen;
        } else {
          len = (size_t)ksnprintf(w->resp, 64, "N\n");
        }
      } else {
        char *val = *end == ' ' ? end + 1 : end, *vend = val;
        while (*vend && *vend != '\n') vend++;
        size_t vlen = (size_t)(vend - val);
        struct kv_slot *s = kv_find(w, key, klen, true);
        if (!s || vlen > KV_VALUE_MAX) {
          len = (size_t)ksnprintf(w->resp, 64, "E full\n");
        } else {
          s->vlen = (u8)vlen;
          for (size_t i = 0; i < vlen; i++) s->value[i] = val[i];
          len = (size_t)ksnprintf(w->resp, 64, "OK\n");
        }
      }
    } else {
      len = (size_t)ksnprintf(w->resp, 64, "E bad request\n");
    }
    u_sendto(w->kfd, w->resp, len, 0, w->addr, *w->alen);
  }
}

/* ---- firewall echo --------------------------------------------------------- */

static void serve_echo(struct worker *w) {
  for (;;) {
    *w->alen = sizeof(struct sockaddr_in);
    long n = u_recvfrom(w->ffd, w->req, REQ_MAX, MSG_DONTWAIT, w->addr, w->alen);
    if (n < 0) return;
    u_sendto(w->ffd, w->req, (size_t)n, 0, w->addr, *w->alen);
  }
}

/* ---- web ------------------------------------------------------------------- */

static bool request_complete(const char *req, size_t n) {
  for (size_t i = 3; i < n; i++)
    if (req[i - 3] == '\r' && req[i - 2] == '\n' && req[i - 1] == '\r' && req[i] == '\n') return true;
  return false;
}

static void send_all(int fd, const char *buf, size_t len) {
  while (len) {
    long n = u_sendto(fd, buf, len, 0, NULL, 0);
    if (n <= 0) return;
    buf += n;
    len -= (size_t)n;
  }
}

static void serve_http_connection(struct worker *w, int cfd) {
  size_t got = 0;
  while (got < REQ_MAX - 1) {
    long n = u_recvfrom(cfd, w->req + got, REQ_MAX - 1 - got, 0, NULL, NULL);
    if (n <= 0) break;
    got += (size_t)n;
    if (request_complete(w->req, got)) break;
  }
  w->req[got] = 0;
  /* "GET <path> HTTP/1.0" */
  size_t plen = 0;
  if (got > 4 && memcmp(w->req, "GET ", 4) == 0) {
    const char *p = w->req + 4;
    while (p[plen] && p[plen] != ' ' && plen < PATH_MAX_LEN - 1) {
      w->path[plen] = p[plen];
      plen++;
    }
  }
  w->path[plen] = 0;
  long fd = plen ? u_open(w->path, O_RDONLY, 0) : -ENOENT;
  if (fd < 0 || u_fstat((int)fd, w->st) < 0 || !S_ISREG(w->st->st_mode)) {
    if (fd >= 0) u_close((int)fd);
    size_t n = (size_t)ksnprintf(w->resp, 128, "HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n");
    send_all(cfd, w->resp, n);
    return;
  }
  size_t n = (size_t)ksnprintf(w->resp, 128, "HTTP/1.0 200 OK\r\nContent-Length: %lu\r\n\r\n",
                               (unsigned long)w->st->st_size);
  send_all(cfd, w->resp, n);
  for (;;) {
    long r = u_read((int)fd, w->io, IO_CHUNK);
    if (r <= 0) break;
    send_all(cfd, w->io, (size_t)r);
  }
  u_close((int)fd);
}

static void serve_web(struct worker *w) {
  *w->alen = sizeof(struct sockaddr_in);
  long cfd = u_accept(w->lfd, w->addr, w->alen);
  if (cfd < 0) return;
  serve_http_connection(w, (int)cfd);
  u_close((int)cfd);
}

/* ---- file-system jobs ------------------------------------------------------ */

static u64 fold(u64 h, u64 v) { return hash64(h ^ v) + 0x9e3779b97f4a7c15ull; }

static void serve_job(struct worker *w) {
  if (u_read(w->jfd, w->job, sizeof(struct job)) != sizeof(struct job)) return;
  const char *path = fs_path((u32)(w->job->arg % fs_npaths()));
  strlcpy(w->path, path, PATH_MAX_LEN);
  u64 h = 0;
  long r = u_stat(w->path, w->st);
  h = fold(h, (u64)r);
  if (r == 0) h = fold(fold(h, w->st->st_size), w->st->st_mode);
  long fd = u_open(w->path, O_RDONLY, 0);
  h = fold(h, fd < 0 ? (u64)fd : 0);
  if (fd >= 0) {
    for (;;) {
      long n = u_read((int)fd, w->io, IO_CHUNK);
      if (n <= 0) {
        h = fold(h, (u64)n);
        break;
      }
      h = fold(h, jhash(w->io, (size_t)n, (u32)h));
    }
    if (u_fstat((int)fd, w->st) == 0) h = fold(h, w->st->st_size);
    u_close((int)fd);
  }
  w->jr->op = w->job->op;
  w->jr->arrival_ns = w->job->arrival_ns;
  w->jr->result = h;
  u_write(w->jfd, w->jr, sizeof(struct job_result));
}

/* ---- main loop ------------------------------------------------------------- */

void worker_main(void *arg) {
  struct worker *w = u_alloc(sizeof(*w));
  w->id = (u32)(uintptr_t)arg;
  w->req = u_alloc(REQ_MAX);
  w->resp = u_alloc(256 + KV_VALUE_MAX);
  w->io = u_alloc(IO_CHUNK);
  w->path = u_alloc(PATH_MAX_LEN);
  w->addr = u_alloc(sizeof(struct sockaddr_in));
  w->alen = u_alloc(sizeof(unsigned));
  w->st = u_alloc(sizeof(struct kstat));
  w->job = u_alloc(sizeof(struct job));
  w->jr = u_alloc(sizeof(struct job_result));
  w->kv = u_alloc(sizeof(struct kv_slot) * KV_SLOTS);
  w->fds = u_alloc(sizeof(struct pollfd) * 4);
  kv_populate(w);

  w->lfd = open_socket(SOCK_STREAM, (u16)(WEB_PORT_BASE + w->id));
  w->kfd = open_socket(SOCK_DGRAM, (u16)(KV_PORT_BASE + w->id));
  w->ffd = open_socket(SOCK_DGRAM, (u16)(FW_PORT_BASE + w->id));
  w->jfd = (int)u_jobq();
  if (w->jfd < 0) panic("worker: jobq: %d", w->jfd);

  for (;;) {
    const int fds[4] = {w->lfd, w->kfd, w->ffd, w->jfd};
    for (int i = 0; i < 4; i++) w->fds[i] = (struct pollfd){fds[i], POLLIN, 0};
    long n = u_poll(w->fds, 4, -1);
    if (n == -EINTR) break; /* the kernel is shutting down */
    if (n < 0) panic("worker: poll: %ld", n);
    if (w->fds[0].revents & POLLIN) serve_web(w);
    if (w->fds[1].revents & POLLIN) serve_kv(w);
    if (w->fds[2].revents & POLLIN) serve_echo(w);
    if (w->fds[3].revents & POLLIN) serve_job(w);
  }
  u_close(w->lfd);
  u_close(w->kfd);
  u_close(w->ffd);
  u_close(w->jfd);
}
