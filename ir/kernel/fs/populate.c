/*
 * @fileoverview Boot-time population of the file systems, and the path
 * lists the workloads draw from (workload.h: web_path, fs_path).
 *
 * Web docroot: /srv/www on tmpfs (about 200 pages, scripts, style sheets,
 * icons and blog posts in nested directories), except /srv/www/media, a
 * symlink to /data/www-media on the ext-like file system: a share of the
 * web requests follows a symlink and crosses a mount.  A few listed paths
 * do not resolve to a regular file and get a 404.
 *
 * fs workload: deep paths (6 to 10 components) on tmpfs (/tmp/fsbench) and
 * on ext (/data/fsbench), procfs files whose content is constant during a
 * run (version, mounts, comm of the tasks), and paths through symlinks:
 * absolute and relative, nested, climbing out of a mount through "..",
 * into procfs, and in the sticky /tmp/shared (owned by the directory's
 * owner, so fs.protected_symlinks checks them and lets them through).
 *
 * All content is generated from the path alone (a krand stream seeded with
 * its hash): the same bytes in every run and every mode, never written
 * again after boot.  The population runs as root before any task exists.
 * Also created, for the checks and not listed: a symlink in /tmp/shared
 * owned by another user (refused by fs.protected_symlinks), symlink loops
 * (ELOOP) and a private directory (EACCES for the workers).
 */
#include <kernel/workload.h>

#include "vfs.h"

#define WEB_MAX 256
#define FS_MAX 192
#define POOL_SIZE (48 * 1024)
#define CONTENT_MAX (16 * 1024)
#define OTHER_UID 2000 /* owns the link planted in /tmp/shared */

static const char *web_paths[WEB_MAX];
static u32 nweb;
static const char *fs_paths[FS_MAX];
static u32 nfs;
static char *pool;
static size_t pool_used;
static char *content; /* scratch buffer for file contents */

u32 web_npaths(void) { return nweb; }
const char *web_path(u32 i) { return web_paths[i % nweb]; }
u32 fs_npaths(void) { return nfs; }
const char *fs_path(u32 i) { return fs_paths[i % nfs]; }

static const char *intern(const char *s) {
  size_t n = strlen(s) + 1;
  if (pool_used + n > POOL_SIZE) panic("populate: path pool exhausted");
  char *p = pool + pool_used;
  memcpy(p, s, n);
  pool_used += n;
  return p;
}

static void add_web(const char *path) {
  if (nweb == WEB_MAX) panic("populate: too many web paths");
  web_paths[nweb++] = intern(path);
}

static void add_fs(const char *path) {
  if (nfs == FS_MAX) panic("populate: too many fs paths");
  fs_paths[nfs++] = intern(path);
}

static void check(int err, const char *what, const char *path) {
  if (err) panic("populate: %s %s: error %d", what, path, err);
}

/* ---- content --------------------------------------------------------------------- */

static const char *const words[] = {
    "kernel", "page",   "cache",    "dentry", "inode",    "mount",   "symlink", "block",   "bitmap", "journal",
    "task",   "socket", "packet",   "route",  "checksum", "hash",    "tree",    "lookup",  "compile", "profile",
    "branch", "inline", "register", "queue",  "latency",  "buffer",  "vector",  "table",   "sample", "version"};

struct gen {
  char *buf;
  size_t size, len;
  struct krand r;
};

static void gen_puts(struct gen *g, const char *s) {
  while (*s && g->len < g->size) g->buf[g->len++] = *s++;
}

/* Words, a line break every few, until `limit` bytes are used. */
static void gen_words(struct gen *g, size_t limit, const char *line_start, const char *line_end) {
  while (g->len + 16 + strlen(line_end) < limit) {
    gen_puts(g, line_start);
    u32 nwords = 6 + (u32)(krand_next(&g->r) % 10);
    for (u32 w = 0; w < nwords && g->len + 16 + strlen(line_end) < limit; w++) {
      if (w) gen_puts(g, " ");
      gen_puts(g, words[krand_next(&g->r) % ARRAY_SIZE(words)]);
    }
    gen_puts(g, line_end);
  }
}

static bool has_suffix(const char *s, const char *suffix) {
  size_t n = strlen(s), m = strlen(suffix);
  return n >= m && memcmp(s + n - m, suffix, m) == 0;
}

/* Exactly `size` bytes of text shaped after the file's type. */
static void fill_content(char *buf, size_t size, const char *path) {
  struct gen g = {buf, size, 0, {0}};
  krand_seed(&g.r, jhash(path, strlen(path), 0x5eed));
  const char *footer;
  if (has_suffix(path, ".html")) {
    gen_puts(&g, "<!DOCTYPE html>\n<html><head><title>");
    gen_puts(&g, path);
    gen_puts(&g, "</title></head>\n<body>\n");
    footer = "</body></html>\n";
    gen_words(&g, size - strlen(footer), "<p>", "</p>\n");
  } else if (has_suffix(path, ".css")) {
    footer = "/* end */\n";
    gen_words(&g, size - strlen(footer), ".c { content: \"", "\"; }\n");
  } else if (has_suffix(path, ".js")) {
    footer = "export {};\n";
    gen_words(&g, size - strlen(footer), "console.log(\"", "\");\n");
  } else if (has_suffix(path, ".svg")) {
    gen_puts(&g, "<svg xmlns=\"http://www.w3.org/2000/svg\">\n");
    footer = "</svg>\n";
    gen_words(&g, size - strlen(footer), "<desc>", "</desc>\n");
  } else {
    footer = "# eof\n";
    gen_words(&g, size - strlen(footer), "", "\n");
  }
  size_t flen = strlen(footer);
  while (g.len + flen < size) g.buf[g.len++] = '\n';
  gen_puts(&g, footer);
  while (g.len < size) g.buf[g.len++] = '\n';
}

/* ---- creating things ------------------------------------------------------------------ */

/* mkdir -p of the directory part of path (up to its last '/'). */
static void mkdir_parents(const char *path, u32 mode) {
  char buf[FS_PATH_MAX];
  strlcpy(buf, path, sizeof(buf));
  for (char *p = buf + 1; *p; p++) {
    if (*p != '/') continue;
    *p = 0;
    int err = do_mkdirat(AT_FDCWD, buf, mode);
    if (err && err != -EEXIST) check(err, "mkdir", buf);
    *p = '/';
  }
}

static void create_file(const char *path, size_t size, u32 mode) {
  mkdir_parents(path, 0755);
  fill_content(content, size, path);
  struct file *f = filp_open(AT_FDCWD, path, O_CREAT | O_WRONLY | O_TRUNC, mode);
  if (IS_ERR(f)) check((int)PTR_ERR(f), "create", path);
  long n = kernel_write(f, content, size);
  if (n != (long)size) check(n < 0 ? (int)n : -EIO, "write", path);
  file_put(f);
}

static void chown_nofollow(const char *path, u32 uid, u32 gid) {
  struct dentry *dentry;
  check(filename_lookup(AT_FDCWD, path, 0, &dentry), "lookup", path);
  struct iattr attr = {.valid = ATTR_UID | ATTR_GID, .uid = uid, .gid = gid};
  check(vfs_setattr(dentry, &attr), "chown", path);
}

static void make_symlink(const char *target, const char *path) {
  mkdir_parents(path, 0755);
  check(do_symlinkat(target, AT_FDCWD, path), "symlink", path);
}

/* A size in [lo, hi] that depends on the path only. */
static size_t size_for(const char *path, size_t lo, size_t hi) {
  return lo + jhash(path, strlen(path), 0x517e) % (hi - lo + 1);
}

/* ---- the web docroot -------------------------------------------------------------------------- */

static void web_file(const char *path) {
  create_file(path, size_for(path, 300, 12 * 1024), 0644);
  add_web(path);
}

static void populate_web(void) {
  static const char *const pages[] = {"index.html", "about.html", "contact.html", "pricing.html"};
  static const char *const not_found[] = {
      "/srv/www/missing.html",          "/srv/www/blog/2019/01/post-1.html",
      "/srv/www/static/css/site-99.css", "/srv/www/static/css",
      "/srv/www/index.html/extra",      "/srv/www/media/gallery/album-99/thumb-0.svg",
  };
  char path[FS_PATH_MAX];
  u32 missing = 0;

  check(do_mkdirat(AT_FDCWD, "/srv/www", 0755), "mkdir", "/srv/www");
  for (u32 i = 0; i < ARRAY_SIZE(pages); i++) {
    ksnprintf(path, sizeof(path), "/srv/www/%s", pages[i]);
    web_file(path);
  }
  for (u32 i = 0; i < 16; i++) {
    ksnprintf(path, sizeof(path), "/srv/www/static/css/site-%u.css", i);
    web_file(path);
    ksnprintf(path, sizeof(path), "/srv/www/static/js/app-%u.js", i);
    web_file(path);
    ksnprintf(path, sizeof(path), "/srv/www/static/img/icons/icon-%u.svg", i);
    web_file(path);
  }
  add_web(not_found[missing++]);
  /* Three years of blog, two posts a month. */
  for (u32 k = 0; k < 72; k++) {
    ksnprintf(path, sizeof(path), "/srv/www/blog/%u/%02u/post-%u.html", 2021 + k / 24, 1 + (k / 2) % 12, k);
    web_file(path);
    if (k % 24 == 23 && missing < 4) add_web(not_found[missing++]);
  }
  for (u32 i = 0; i < 16; i++) {
    ksnprintf(path, sizeof(path), "/srv/www/docs/v1/guide/chapter-%u.html", i);
    web_file(path);
    ksnprintf(path, sizeof(path), "/srv/www/docs/v2/api/reference/ref-%u.html", i);
    web_file(path);
  }
  for (u32 i = 0; i < 12; i++) {
    ksnprintf(path, sizeof(path), "/srv/www/feeds/feed-%u.txt", i);
    web_file(path);
  }
  add_web(not_found[missing++]);
  /* Media on the ext file system, reached through /srv/www/media. */
  make_symlink("/data/www-media", "/srv/www/media");
  for (u32 a = 0; a < 8; a++) {
    for (u32 t = 0; t < 4; t++) {
      ksnprintf(path, sizeof(path), "/data/www-media/gallery/album-%u/thumb-%u.svg", a, t);
      create_file(path, size_for(path, 300, 12 * 1024), 0644);
      ksnprintf(path, sizeof(path), "/srv/www/media/gallery/album-%u/thumb-%u.svg", a, t);
      add_web(path);
    }
  }
  add_web(not_found[missing++]);
}

/* ---- the fs workload's trees ------------------------------------------------------------------ */

static const char *const levels[] = {"proj", "src", "module", "pkg", "part", "unit", "leaf"};

#define DEEP_PATHS 48

/* prefix / 3..7 directories / stem-i.ext: 6 to 10 components for a
 * two-component prefix.  Neighbouring i share directory prefixes. */
static void deep_path(char *buf, size_t size, const char *prefix, const char *stem, u32 i) {
  size_t n = (size_t)ksnprintf(buf, size, "%s", prefix);
  u32 ndirs = 3 + i % 5;
  for (u32 k = 0; k < ndirs && n < size; k++)
    n += (size_t)ksnprintf(buf + n, size - n, "/%s-%u", levels[k], (i / (k + 2)) % 3);
  if (n < size) ksnprintf(buf + n, size - n, "/%s-%u.dat", stem, i);
}

static void populate_deep(const char *prefix, const char *stem, char (*out)[160]) {
  for (u32 i = 0; i < DEEP_PATHS; i++) {
    deep_path(out[i], sizeof(out[i]), prefix, stem, i);
    create_file(out[i], size_for(out[i], 64, CONTENT_MAX), 0644);
    add_fs(out[i]);
  }
}

/* The same files reached through a symlinked prefix. */
static void add_aliases(char (*paths)[160], const char *from, const char *to, u32 step, u32 max) {
  char path[FS_PATH_MAX];
  size_t flen = strlen(from);
  for (u32 i = 0, added = 0; i < DEEP_PATHS && added < max; i += step) {
    if (strncmp(paths[i], from, flen) != 0) continue;
    ksnprintf(path, sizeof(path), "%s%s", to, paths[i] + flen);
    add_fs(path);
    added++;
  }
}

static void populate_proc_paths(void) {
  char path[64];
  add_fs("/proc/version");
  add_fs("/proc/mounts");
  add_fs("/proc/self/comm");
  /* Workers are pids 1 .. NWORKERS, init is the next one (core/init.c);
   * their names never change. */
  for (u32 pid = 1; pid <= NWORKERS + 1; pid++) {
    ksnprintf(path, sizeof(path), "/proc/%u/comm", pid);
    add_fs(path);
  }
  make_symlink("/proc/version", "/tmp/fsbench/links/kernel/version");
  add_fs("/tmp/fsbench/links/kernel/version");
  make_symlink("/proc/self", "/data/fsbench/links/proc/self");
  add_fs("/data/fsbench/links/proc/self/comm");
  /* Relative, out of tmpfs's /tmp/fsbench/links/kernel up to / and down. */
  make_symlink("../../../../proc/mounts", "/tmp/fsbench/links/kernel/mounts");
  add_fs("/tmp/fsbench/links/kernel/mounts");
}

/* Split a path after its first `n` components: the head is copied out,
 * the rest ("/...") returned. */
static const char *split_path(const char *path, u32 n, char *head, size_t size) {
  const char *p = path;
  for (u32 slashes = 0; *p; p++)
    if (*p == '/' && slashes++ == n) break;
  size_t len = (size_t)(p - path);
  strlcpy(head, path, MIN(len + 1, size));
  return p;
}

/* A link to a directory high in a deep tree, and the path through it to a
 * file deep below: as deep as the original path. */
static void add_link_alias(const char *deep, const char *link, u32 head_components) {
  char head[FS_PATH_MAX], path[FS_PATH_MAX];
  const char *rest = split_path(deep, head_components, head, sizeof(head));
  make_symlink(head, link);
  ksnprintf(path, sizeof(path), "%s%s", link, rest);
  add_fs(path);
}

static void populate_shared(char (*tmp_paths)[160], char (*ext_paths)[160]) {
  char path[FS_PATH_MAX];
  /* /tmp/shared: sticky and world-writable, like /tmp itself. */
  check(do_mkdirat(AT_FDCWD, "/tmp/shared", 01777), "mkdir", "/tmp/shared");
  for (u32 i = 0; i < 6; i++) {
    /* Owned by root, the directory's owner: always followed. */
    ksnprintf(path, sizeof(path), "/tmp/shared/ok-link-%u", i);
    add_link_alias(i & 1 ? ext_paths[i * 7] : tmp_paths[i * 7], path, 3);
  }
  /* Planted by another user: fs.protected_symlinks refuses it to everyone
   * else (EACCES); not listed. */
  make_symlink(ext_paths[0], "/tmp/shared/planted-link");
  chown_nofollow("/tmp/shared/planted-link", OTHER_UID, OTHER_UID);
  make_symlink(tmp_paths[0], "/tmp/shared/worker0-link");
  chown_nofollow("/tmp/shared/worker0-link", 1000, 1000);
}

static void populate_links(char (*tmp_paths)[160], char (*ext_paths)[160]) {
  char path[FS_PATH_MAX], target[16];
  /* An absolute link from tmpfs into ext: the ext files again. */
  make_symlink("/data/fsbench", "/tmp/bench-link");
  add_aliases(ext_paths, "/data/fsbench", "/tmp/bench-link", 4, 12);
  /* A relative link inside ext that climbs out of the mount through "..". */
  make_symlink("../../../../tmp/fsbench", "/data/fsbench/proj-0/src-0/to-tmp");
  add_aliases(tmp_paths, "/tmp/fsbench", "/data/fsbench/proj-0/src-0/to-tmp", 5, 10);
  /* A relative directory link within ext. */
  make_symlink("proj-1/src-0", "/data/fsbench/latest");
  add_aliases(ext_paths, "/data/fsbench/proj-1/src-0", "/data/fsbench/latest", 1, 6);
  /* A chain of six links to a directory (nesting stays under the limit of
   * 8), entered from its first and from its fourth link. */
  char head[FS_PATH_MAX];
  const char *rest = split_path(ext_paths[9], 3, head, sizeof(head));
  make_symlink(head, "/tmp/chain/l5");
  for (int i = 4; i >= 0; i--) {
    ksnprintf(path, sizeof(path), "/tmp/chain/l%d", i);
    ksnprintf(target, sizeof(target), "l%d", i + 1);
    make_symlink(target, path);
  }
  ksnprintf(path, sizeof(path), "/tmp/chain/l0%s", rest);
  add_fs(path);
  ksnprintf(path, sizeof(path), "/tmp/chain/l3%s", rest);
  add_fs(path);
  /* Not listed: a loop and a chain of nine (both ELOOP). */
  make_symlink("b", "/tmp/loop/a");
  make_symlink("a", "/tmp/loop/b");
  make_symlink(tmp_paths[1], "/tmp/chain9/l8");
  for (int i = 7; i >= 0; i--) {
    ksnprintf(path, sizeof(path), "/tmp/chain9/l%d", i);
    ksnprintf(target, sizeof(target), "l%d", i + 1);
    make_symlink(target, path);
  }
}

/* Not listed: a directory the workers may not search. */
static void populate_private(void) {
  check(do_mkdirat(AT_FDCWD, "/data/private", 0700), "mkdir", "/data/private");
  create_file("/data/private/secret.txt", 512, 0600);
}

void fs_populate(void) {
  pool = kmalloc(POOL_SIZE);
  content = kmalloc(CONTENT_MAX);
  char (*tmp_paths)[160] = kmalloc(sizeof(char[160]) * DEEP_PATHS);
  char (*ext_paths)[160] = kmalloc(sizeof(char[160]) * DEEP_PATHS);
  if (!pool || !content || !tmp_paths || !ext_paths) panic("populate: out of memory");

  populate_web();
  populate_deep("/tmp/fsbench", "file", tmp_paths);
  populate_deep("/data/fsbench", "blob", ext_paths);
  populate_proc_paths();
  populate_shared(tmp_paths, ext_paths);
  populate_links(tmp_paths, ext_paths);
  populate_private();

  kfree(ext_paths);
  kfree(tmp_paths);
  kfree(content);
  content = NULL;
  printk("populate: %u web paths, %u fs paths", nweb, nfs);
}
