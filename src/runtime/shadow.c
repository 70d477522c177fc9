/* Shadow variables: data attached to (object address, id) pairs.
 *
 * A fixed hash table of chained nodes. The buckets are split into lock
 * stripes; an operation on one key locks only its key's stripe, so threads
 * working on unrelated objects rarely wait for each other. The table lives
 * in zero-initialized static storage: it needs no constructor, which matters
 * when graft injects the runtime into a process without running any code.
 *
 * Memory comes from the process's own malloc: shadow data is ordinary heap
 * data of the program, and outlives the patch that created it (a later
 * cumulative patch takes it over). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "graft/runtime.h"
#include "lock.h"

#define RT_EXPORT __attribute__((visibility("default")))

enum { kBucketBits = 14, kBuckets = 1 << kBucketBits, kStripes = 256 };

struct shadow {
  struct shadow *next;
  void *obj;
  unsigned long id;
  size_t size;
  _Alignas(16) unsigned char data[];
};

/* Each stripe on its own cache line: a contended lock does not slow its
 * neighbours. */
struct stripe {
  _Alignas(64) rt_lock lock;
};

static struct shadow *buckets[kBuckets];
static struct stripe stripes[kStripes];

static size_t bucket_of(const void *obj, unsigned long id) {
  /* 64-bit mix (splitmix64 finalizer): object addresses share low zero
   * bits and high bits, ids are small. */
  uint64_t h = (uint64_t)(uintptr_t)obj ^ (id * 0x9e3779b97f4a7c15ull);
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebull;
  h ^= h >> 31;
  return (size_t)(h & (kBuckets - 1));
}

/* Buckets b and b + kStripes share a stripe. */
static rt_lock *lock_of(size_t bucket) { return &stripes[bucket % kStripes].lock; }

static struct shadow *find(size_t bucket, const void *obj, unsigned long id) {
  for (struct shadow *s = buckets[bucket]; s; s = s->next)
    if (s->obj == obj && s->id == id) return s;
  return NULL;
}

static void *get(void *obj, unsigned long id) {
  size_t b = bucket_of(obj, id);
  rt_lock_acquire(lock_of(b));
  struct shadow *s = find(b, obj, id);
  rt_lock_release(lock_of(b));
  return s ? s->data : NULL;
}

RT_EXPORT void *graft_shadow_get(void *obj, unsigned long id) { return get(obj, id); }

static void *alloc(void *obj, unsigned long id, size_t size, graft_shadow_ctor_t ctor,
                   void *ctor_data, int existing_ok) {
  if (size > SIZE_MAX - sizeof(struct shadow)) return NULL;
  /* Allocated before locking: malloc may be slow, and may itself block. */
  struct shadow *fresh = malloc(sizeof(struct shadow) + size);
  if (!fresh) return NULL;
  memset(fresh, 0, sizeof(struct shadow) + size);
  fresh->obj = obj;
  fresh->id = id;
  fresh->size = size;

  size_t b = bucket_of(obj, id);
  rt_lock_acquire(lock_of(b));
  struct shadow *s = find(b, obj, id);
  if (s) {
    rt_lock_release(lock_of(b));
    free(fresh);
    return existing_ok ? s->data : NULL;
  }
  if (ctor && ctor(obj, fresh->data, ctor_data) != 0) {
    rt_lock_release(lock_of(b));
    free(fresh);
    return NULL;
  }
  fresh->next = buckets[b];
  buckets[b] = fresh;
  rt_lock_release(lock_of(b));
  return fresh->data;
}

RT_EXPORT void *graft_shadow_alloc(void *obj, unsigned long id, size_t size,
                                   graft_shadow_ctor_t ctor, void *ctor_data) {
  return alloc(obj, id, size, ctor, ctor_data, 0);
}

RT_EXPORT void *graft_shadow_get_or_alloc(void *obj, unsigned long id, size_t size,
                                          graft_shadow_ctor_t ctor, void *ctor_data) {
  void *existing = get(obj, id);
  return existing ? existing : alloc(obj, id, size, ctor, ctor_data, 1);
}

static void release(struct shadow *s, graft_shadow_dtor_t dtor) {
  if (dtor) dtor(s->obj, s->data);
  free(s);
}

RT_EXPORT void graft_shadow_free(void *obj, unsigned long id, graft_shadow_dtor_t dtor) {
  size_t b = bucket_of(obj, id);
  rt_lock_acquire(lock_of(b));
  struct shadow **link = &buckets[b];
  while (*link && !((*link)->obj == obj && (*link)->id == id)) link = &(*link)->next;
  struct shadow *s = *link;
  if (s) *link = s->next;
  rt_lock_release(lock_of(b));
  if (s) release(s, dtor);
}

RT_EXPORT void graft_shadow_free_all(unsigned long id, graft_shadow_dtor_t dtor) {
  for (size_t stripe = 0; stripe < kStripes; ++stripe) {
    /* Unlink under the stripe's lock, release after it: dtor may call the
     * shadow API. */
    struct shadow *doomed = NULL;
    rt_lock_acquire(&stripes[stripe].lock);
    for (size_t b = stripe; b < kBuckets; b += kStripes) {
      struct shadow **link = &buckets[b];
      while (*link) {
        struct shadow *s = *link;
        if (s->id == id) {
          *link = s->next;
          s->next = doomed;
          doomed = s;
        } else {
          link = &s->next;
        }
      }
    }
    rt_lock_release(&stripes[stripe].lock);
    while (doomed) {
      struct shadow *next = doomed->next;
      release(doomed, dtor);
      doomed = next;
    }
  }
}

RT_EXPORT unsigned graft_rt_abi_version(void) { return GRAFT_RT_ABI_VERSION; }
