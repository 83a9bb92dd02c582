/*
 * @fileoverview The page cache: file data in page-sized pages keyed by
 * (inode, page index) in a global hash table, as Linux's page cache was
 * before the per-file radix tree.  Reads and writes of regular files go
 * through it with kmemcpy; a miss asks the file system's address-space
 * operations to fill the page (the ext-like file system copies the block
 * from its device; tmpfs has no backing store, its data lives here only).
 * Writes go through to the file system at once (->writepage), so there is
 * no write-back to schedule and nothing is ever evicted under pressure:
 * tmpfs pages must stay anyway.
 */
#include "vfs.h"

#define PC_HASH_BITS 12

struct pcpage {
  struct hlist_node hash; /* page hash chain */
  struct list_head list;  /* the inode's pages */
  struct inode *inode;
  u64 index;
  u8 *data;
};

static struct hlist_head *page_hashtable;
static struct kmem_cache *pcpage_cache;
static u64 nr_pages, nr_hits, nr_misses;

void pagecache_init(void) {
  pcpage_cache = kmem_cache_create("pagecache", sizeof(struct pcpage), 8);
  page_hashtable = kzalloc(sizeof(struct hlist_head) << PC_HASH_BITS);
  if (!pcpage_cache || !page_hashtable) panic("pagecache_init: out of memory");
}

void pagecache_stats(u64 *pages, u64 *hits, u64 *misses) {
  *pages = nr_pages;
  *hits = nr_hits;
  *misses = nr_misses;
}

static struct hlist_head *page_bucket(const struct inode *inode, u64 index) {
  u64 key = hash64((u64)(uintptr_t)inode + index);
  return &page_hashtable[key & ((1u << PC_HASH_BITS) - 1)];
}

static struct pcpage *find_page(struct inode *inode, u64 index) {
  struct hlist_node *n;
  for (n = page_bucket(inode, index)->first; n; n = n->next) {
    struct pcpage *p = hlist_entry(n, struct pcpage, hash);
    if (p->inode == inode && p->index == index) return p;
  }
  return NULL;
}

static struct pcpage *add_page(struct inode *inode, u64 index) {
  struct pcpage *p = kmem_cache_alloc(pcpage_cache);
  if (!p) return NULL;
  p->data = alloc_page();
  if (!p->data) {
    kmem_cache_free(pcpage_cache, p);
    return NULL;
  }
  p->inode = inode;
  p->index = index;
  hlist_add_head(&p->hash, page_bucket(inode, index));
  list_add_tail(&p->list, &inode->i_pages);
  inode->i_nrpages++;
  nr_pages++;
  return p;
}

static void delete_page(struct pcpage *p) {
  hlist_del(&p->hash);
  list_del(&p->list);
  p->inode->i_nrpages--;
  nr_pages--;
  free_page(p->data);
  kmem_cache_free(pcpage_cache, p);
}

/* The page, read from the file system on a miss. */
static struct pcpage *read_cache_page(struct inode *inode, u64 index) {
  struct pcpage *p = find_page(inode, index);
  if (likely(p)) {
    nr_hits++;
    return p;
  }
  nr_misses++;
  p = add_page(inode, index);
  if (!p) return ERR_PTR(-ENOMEM);
  int err = inode->i_aops->readpage(inode, index, p->data);
  if (err) {
    delete_page(p);
    return ERR_PTR(err);
  }
  return p;
}

/* The page a write of [off, off+n) will modify: its old contents matter only
 * if the write covers part of it and the page holds file data. */
static struct pcpage *grab_write_page(struct inode *inode, u64 index, size_t off, size_t n) {
  struct pcpage *p = find_page(inode, index);
  if (p) return p;
  bool partial = off != 0 || n != PAGE_SIZE;
  if (partial && (index << PAGE_SHIFT) < inode->i_size) return read_cache_page(inode, index);
  p = add_page(inode, index);
  if (!p) return ERR_PTR(-ENOMEM);
  if (partial) memset(p->data, 0, PAGE_SIZE);
  return p;
}

long pagecache_read(struct inode *inode, void *buf, size_t len, u64 *pos) {
  u64 size = inode->i_size;
  if (*pos >= size) return 0;
  len = (size_t)MIN((u64)len, size - *pos);
  size_t done = 0;
  while (done < len) {
    u64 index = *pos >> PAGE_SHIFT;
    size_t off = (size_t)(*pos & (PAGE_SIZE - 1));
    size_t n = MIN(PAGE_SIZE - off, len - done);
    struct pcpage *p = read_cache_page(inode, index);
    if (IS_ERR(p)) return done ? (long)done : PTR_ERR(p);
    kmemcpy((u8 *)buf + done, p->data + off, n);
    done += n;
    *pos += n;
  }
  return (long)done;
}

long pagecache_write(struct inode *inode, const void *buf, size_t len, u64 *pos) {
  if (!inode->i_aops) return -EINVAL;
  size_t done = 0;
  while (done < len) {
    u64 index = *pos >> PAGE_SHIFT;
    size_t off = (size_t)(*pos & (PAGE_SIZE - 1));
    size_t n = MIN(PAGE_SIZE - off, len - done);
    struct pcpage *p = grab_write_page(inode, index, off, n);
    if (IS_ERR(p)) return done ? (long)done : PTR_ERR(p);
    kmemcpy(p->data + off, (const u8 *)buf + done, n);
    if (*pos + n > inode->i_size) inode->i_size = *pos + n;
    int err = inode->i_aops->writepage(inode, index, p->data);
    if (err) return done ? (long)done : err;
    done += n;
    *pos += n;
  }
  return (long)done;
}

void pagecache_truncate(struct inode *inode, u64 size) {
  u64 first = (size + PAGE_SIZE - 1) >> PAGE_SHIFT;
  struct list_head *pos, *next;
  list_for_each_safe(pos, next, &inode->i_pages) {
    struct pcpage *p = list_entry(pos, struct pcpage, list);
    if (p->index >= first) delete_page(p);
  }
  size_t tail = (size_t)(size & (PAGE_SIZE - 1));
  if (tail) {
    struct pcpage *p = find_page(inode, size >> PAGE_SHIFT);
    if (p) memset(p->data + tail, 0, PAGE_SIZE - tail);
  }
}
