/* The worker's event loop: one epoll set, a binary heap of timers, and the
 * end-of-turn hook where deferred work (flushes, frees, MHD) happens. */
#include "pushd.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

static int epfd = -1;
static uint64_t now_cached;
static struct pd_timer **heap; /* 1-based: heap[1] is the earliest */
static uint32_t heap_len, heap_cap;

static uint64_t mono_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t pd_now(void)
{
  return now_cached ? now_cached : mono_ms();
}

uint64_t pd_wall_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int pd_loop_init(void)
{
  epfd = epoll_create1(EPOLL_CLOEXEC);
  now_cached = mono_ms();
  return epfd < 0 ? -1 : 0;
}

int pd_io_add(struct pd_io *io, uint32_t events)
{
  struct epoll_event ev = {.events = events, .data.ptr = io};
  io->events = events;
  return epoll_ctl(epfd, EPOLL_CTL_ADD, io->fd, &ev);
}

int pd_io_mod(struct pd_io *io, uint32_t events)
{
  if (io->events == events)
    return 0;
  struct epoll_event ev = {.events = events, .data.ptr = io};
  io->events = events;
  return epoll_ctl(epfd, EPOLL_CTL_MOD, io->fd, &ev);
}

void pd_io_del(struct pd_io *io)
{
  if (io->fd >= 0)
    epoll_ctl(epfd, EPOLL_CTL_DEL, io->fd, NULL);
  io->events = 0;
}

/* ---- timers: a min-heap keyed on `at`; each timer knows its slot ---- */

static void heap_set(uint32_t i, struct pd_timer *t)
{
  heap[i] = t;
  t->slot = i;
}

static void sift_up(uint32_t i)
{
  struct pd_timer *t = heap[i];
  while (i > 1 && heap[i / 2]->at > t->at) {
    heap_set(i, heap[i / 2]);
    i /= 2;
  }
  heap_set(i, t);
}

static void sift_down(uint32_t i)
{
  struct pd_timer *t = heap[i];
  for (;;) {
    uint32_t c = 2 * i;
    if (c > heap_len)
      break;
    if (c + 1 <= heap_len && heap[c + 1]->at < heap[c]->at)
      c++;
    if (heap[c]->at >= t->at)
      break;
    heap_set(i, heap[c]);
    i = c;
  }
  heap_set(i, t);
}

void pd_timer_stop(struct pd_timer *t)
{
  uint32_t i = t->slot;
  if (i == 0)
    return;
  t->slot = 0;
  struct pd_timer *last = heap[heap_len--];
  if (i <= heap_len && last != t) {
    heap_set(i, last);
    sift_up(i);
    sift_down(last->slot);
  }
}

void pd_timer_arm(struct pd_timer *t, uint64_t delay_ms)
{
  pd_timer_stop(t);
  t->at = pd_now() + delay_ms;
  if (heap_len + 1 >= heap_cap) {
    heap_cap = heap_cap ? heap_cap * 2 : 64;
    heap = sortie_xrealloc(heap, heap_cap * sizeof *heap);
  }
  heap[++heap_len] = t;
  t->slot = heap_len;
  sift_up(heap_len);
}

static void run_timers(void)
{
  while (heap_len && heap[1]->at <= now_cached) {
    struct pd_timer *t = heap[1];
    pd_timer_stop(t);
    t->cb(t);
  }
}

void pd_loop_run(volatile sig_atomic_t *stop)
{
  enum { MAXEV = 256 };
  struct epoll_event evs[MAXEV];
  while (!*stop) {
    now_cached = mono_ms();
    int timeout = -1;
    if (heap_len) {
      uint64_t at = heap[1]->at;
      timeout = at <= now_cached ? 0 : (int)(at - now_cached > 60000 ? 60000 : at - now_cached);
    }
    int n = epoll_wait(epfd, evs, MAXEV, timeout);
    if (n < 0 && errno != EINTR) {
      LOG_ERROR("loop", "epoll_wait: %s", strerror(errno));
      break;
    }
    now_cached = mono_ms();
    for (int i = 0; i < n; i++) {
      struct pd_io *io = evs[i].data.ptr;
      io->cb(io, evs[i].events);
    }
    run_timers();
    pd_end_of_turn();
  }
}
