/*
 * @fileoverview The dentry cache: the tree of names the path walk moves
 * through, and the global hash table that finds the child of a directory by
 * name without asking the file system.  A chain is selected by the parent
 * pointer and the component's name hash; entries on a chain are compared by
 * parent, hash, length and finally memcmp of the bytes, as in Linux's
 * __d_lookup.  Negative dentries (names known not to exist) are cached too,
 * so a repeated miss (a 404) costs the same as a hit.
 */
#include "vfs.h"

#define D_HASH_BITS 12 /* 4096 chains */

static struct hlist_head *dentry_hashtable;
static struct kmem_cache *dentry_cache;
static u64 nr_dentries, nr_lookups, nr_hits;

void dcache_init(void) {
  dentry_cache = kmem_cache_create("dentry", sizeof(struct dentry), 8);
  dentry_hashtable = kzalloc(sizeof(struct hlist_head) << D_HASH_BITS);
  if (!dentry_cache || !dentry_hashtable) panic("dcache_init: out of memory");
}

/* Mix the parent pointer into the name hash so that the same name in
 * different directories lands on different chains. */
static struct hlist_head *d_hash(const struct dentry *parent, u32 hash) {
  u32 salt = (u32)((uintptr_t)parent >> 6);
  return &dentry_hashtable[hash_32(hash + salt, D_HASH_BITS)];
}

/* ---- allocation ------------------------------------------------------------------ */

static bool d_set_name(struct dentry *d, const struct qstr *name) {
  char *dst = d->d_iname;
  if (name->len >= DNAME_INLINE_LEN) {
    dst = kmalloc(name->len + 1);
    if (!dst) return false;
  }
  memcpy(dst, name->name, name->len);
  dst[name->len] = 0;
  d->d_name.name = dst;
  d->d_name.len = name->len;
  d->d_name.hash = name->hash;
  return true;
}

static struct dentry *__d_alloc(struct super_block *sb, const struct qstr *name) {
  struct dentry *d = kmem_cache_zalloc(dentry_cache);
  if (!d) return NULL;
  if (!d_set_name(d, name)) {
    kmem_cache_free(dentry_cache, d);
    return NULL;
  }
  d->d_sb = sb;
  d->d_parent = d;
  INIT_LIST_HEAD(&d->d_child);
  INIT_LIST_HEAD(&d->d_subdirs);
  nr_dentries++;
  return d;
}

/* A new, unattached child of parent: the file system's lookup fills it in
 * and d_attach() makes it visible. */
struct dentry *d_alloc(struct dentry *parent, const struct qstr *name) {
  struct dentry *d = __d_alloc(parent->d_sb, name);
  if (d) d->d_parent = parent;
  return d;
}

struct dentry *d_alloc_root(struct inode *root) {
  static const struct qstr slash = {"/", 1, 0};
  struct dentry *d = __d_alloc(root->i_sb, &slash);
  if (d) {
    d->d_inode = root;
    d->d_flags |= DCACHE_ATTACHED;
  }
  return d;
}

void d_free(struct dentry *d) {
  BUG_ON(d->d_flags & (DCACHE_HASHED | DCACHE_ATTACHED));
  if (d->d_inode) iput(d->d_inode);
  if (d->d_name.name != d->d_iname) kfree((void *)d->d_name.name);
  kmem_cache_free(dentry_cache, d);
  nr_dentries--;
}

/* The dentry takes over the caller's reference to inode. */
void d_instantiate(struct dentry *dentry, struct inode *inode) {
  BUG_ON(dentry->d_inode);
  dentry->d_inode = inode;
}

void d_attach(struct dentry *d) {
  hlist_add_head(&d->d_hash, d_hash(d->d_parent, d->d_name.hash));
  list_add(&d->d_child, &d->d_parent->d_subdirs);
  d->d_flags |= DCACHE_HASHED | DCACHE_ATTACHED;
}

/* ---- lookup ---------------------------------------------------------------------------- */

static bool d_name_eq(const struct dentry *d, const struct qstr *name) {
  return d->d_name.len == name->len && memcmp(d->d_name.name, name->name, name->len) == 0;
}

/* The hashed child `name` of parent, positive or negative, or NULL. */
struct dentry *d_lookup(const struct dentry *parent, const struct qstr *name) {
  struct hlist_node *n;
  nr_lookups++;
  for (n = d_hash(parent, name->hash)->first; n; n = n->next) {
    struct dentry *d = hlist_entry(n, struct dentry, d_hash);
    if (d->d_name.hash != name->hash || d->d_parent != parent) continue;
    if (!d_name_eq(d, name)) continue;
    nr_hits++;
    return d;
  }
  return NULL;
}

/* The same question answered from the parent's child list: what the walk
 * uses to find an existing alias when the hash is switched off (fs.dcache=0),
 * so that the tree never holds two dentries for one name. */
struct dentry *d_lookup_child(const struct dentry *parent, const struct qstr *name) {
  struct list_head *pos;
  list_for_each(pos, &parent->d_subdirs) {
    struct dentry *d = list_entry(pos, struct dentry, d_child);
    if (d_name_eq(d, name)) return d;
  }
  return NULL;
}

/* The name was unlinked: keep the dentry as a negative entry (the name is
 * still known not to exist) and drop its reference to the inode, which is
 * evicted once no open file uses it. */
void d_delete(struct dentry *dentry) {
  struct inode *inode = dentry->d_inode;
  dentry->d_inode = NULL;
  iput(inode);
}

void dcache_stats(u64 *lookups, u64 *hits, u64 *dentries) {
  *lookups = nr_lookups;
  *hits = nr_hits;
  *dentries = nr_dentries;
}
