/* The event loop object of lib/loop.h. */
#include "loop.h"
#include "buf.h"
#include "log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

struct hook {
  sortie_turn_cb *fn;
  void *ud;
};

struct sortie_loop {
  int epfd;
  uint64_t now;
  struct sortie_timer **heap; /* 1-based: heap[1] fires first */
  uint32_t heap_len, heap_cap;
  struct hook *hooks;
  uint32_t nhooks;
};

static uint64_t mono_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t sortie_wall_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

struct sortie_loop *sortie_loop_new(void)
{
  int fd = epoll_create1(EPOLL_CLOEXEC);
  if (fd < 0)
    return NULL;
  struct sortie_loop *l = sortie_xcalloc(1, sizeof *l);
  l->epfd = fd;
  l->now = mono_ms();
  return l;
}

void sortie_loop_free(struct sortie_loop *l)
{
  if (l == NULL)
    return;
  close(l->epfd);
  free(l->heap);
  free(l->hooks);
  free(l);
}

uint64_t sortie_loop_now(const struct sortie_loop *l)
{
  return l->now;
}

int sortie_io_add(struct sortie_loop *l, struct sortie_io *io, uint32_t events)
{
  struct epoll_event ev = {.events = events, .data.ptr = io};
  io->events = events;
  return epoll_ctl(l->epfd, EPOLL_CTL_ADD, io->fd, &ev);
}

int sortie_io_mod(struct sortie_loop *l, struct sortie_io *io, uint32_t events)
{
  if (io->events == events)
    return 0;
  struct epoll_event ev = {.events = events, .data.ptr = io};
  io->events = events;
  return epoll_ctl(l->epfd, EPOLL_CTL_MOD, io->fd, &ev);
}

void sortie_io_del(struct sortie_loop *l, struct sortie_io *io)
{
  if (io->fd >= 0)
    epoll_ctl(l->epfd, EPOLL_CTL_DEL, io->fd, NULL);
  io->events = 0;
}

/* ---- timers: a min-heap keyed on `at`; each timer knows its slot ---- */

static void heap_set(struct sortie_loop *l, uint32_t i, struct sortie_timer *t)
{
  l->heap[i] = t;
  t->slot = i;
}

static void sift_up(struct sortie_loop *l, uint32_t i)
{
  struct sortie_timer *t = l->heap[i];
  while (i > 1 && l->heap[i / 2]->at > t->at) {
    heap_set(l, i, l->heap[i / 2]);
    i /= 2;
  }
  heap_set(l, i, t);
}

static void sift_down(struct sortie_loop *l, uint32_t i)
{
  struct sortie_timer *t = l->heap[i];
  for (;;) {
    uint32_t c = 2 * i;
    if (c > l->heap_len)
      break;
    if (c + 1 <= l->heap_len && l->heap[c + 1]->at < l->heap[c]->at)
      c++;
    if (l->heap[c]->at >= t->at)
      break;
    heap_set(l, i, l->heap[c]);
    i = c;
  }
  heap_set(l, i, t);
}

void sortie_timer_init(struct sortie_timer *t, struct sortie_loop *l, sortie_timer_cb *cb)
{
  t->at = 0;
  t->slot = 0;
  t->cb = cb;
  t->loop = l;
}

void sortie_timer_stop(struct sortie_timer *t)
{
  uint32_t i = t->slot;
  if (i == 0)
    return;
  struct sortie_loop *l = t->loop;
  t->slot = 0;
  struct sortie_timer *last = l->heap[l->heap_len--];
  if (i <= l->heap_len && last != t) {
    heap_set(l, i, last);
    sift_up(l, i);
    sift_down(l, last->slot);
  }
}

void sortie_timer_arm(struct sortie_timer *t, uint64_t delay_ms)
{
  struct sortie_loop *l = t->loop;
  sortie_timer_stop(t);
  t->at = l->now + delay_ms;
  if (l->heap_len + 1 >= l->heap_cap) {
    l->heap_cap = l->heap_cap ? l->heap_cap * 2 : 64;
    l->heap = sortie_xrealloc(l->heap, l->heap_cap * sizeof *l->heap);
  }
  l->heap[++l->heap_len] = t;
  t->slot = l->heap_len;
  sift_up(l, l->heap_len);
}

void sortie_loop_on_turn_end(struct sortie_loop *l, sortie_turn_cb *fn, void *ud)
{
  l->hooks = sortie_xrealloc(l->hooks, (l->nhooks + 1) * sizeof *l->hooks);
  l->hooks[l->nhooks++] = (struct hook){fn, ud};
}

void sortie_loop_off_turn_end(struct sortie_loop *l, sortie_turn_cb *fn, void *ud)
{
  for (uint32_t i = 0; i < l->nhooks; i++)
    if (l->hooks[i].fn == fn && l->hooks[i].ud == ud) {
      memmove(&l->hooks[i], &l->hooks[i + 1], (l->nhooks - i - 1) * sizeof *l->hooks);
      l->nhooks--;
      return;
    }
}

void sortie_loop_end_turn(struct sortie_loop *l)
{
  for (uint32_t i = 0; i < l->nhooks; i++)
    l->hooks[i].fn(l->hooks[i].ud);
}

int sortie_loop_turn(struct sortie_loop *l, int max_wait_ms)
{
  enum { MAXEV = 256 };
  struct epoll_event evs[MAXEV];
  l->now = mono_ms();
  int timeout = max_wait_ms;
  if (l->heap_len) {
    uint64_t at = l->heap[1]->at;
    uint64_t d = at <= l->now ? 0 : at - l->now;
    if (d > 60000)
      d = 60000;
    if (timeout < 0 || (uint64_t)timeout > d)
      timeout = (int)d;
  }
  int n = epoll_wait(l->epfd, evs, MAXEV, timeout);
  if (n < 0 && errno != EINTR) {
    LOG_ERROR("loop", "epoll_wait: %s", strerror(errno));
    return -1;
  }
  l->now = mono_ms();
  for (int i = 0; i < n; i++) {
    struct sortie_io *io = evs[i].data.ptr;
    io->cb(io, evs[i].events);
  }
  while (l->heap_len && l->heap[1]->at <= l->now) {
    struct sortie_timer *t = l->heap[1];
    sortie_timer_stop(t);
    t->cb(t);
  }
  sortie_loop_end_turn(l);
  return 0;
}

void sortie_loop_run(struct sortie_loop *l, volatile sig_atomic_t *stop)
{
  while (!*stop)
    if (sortie_loop_turn(l, -1) < 0)
      break;
}
