/* Streaming clients: the outbound queue of shared chunks, written with one
 * writev per client per loop turn (so events queued in the same turn go out
 * together), the cut-off of a client whose queue outgrows push.outbuf_max, and
 * deferred teardown. */
#include "pushd.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/uio.h>
#include <unistd.h>

uint32_t pd_nclients[3];

static struct pd_client *all_head;     /* every live client */
static struct pd_client *dirty_head;   /* clients with bytes to write */
static struct pd_client *dead_head;    /* closed, to be freed at end of turn */
static uint64_t serial_next;

static void on_io(struct pd_io *io, uint32_t events);

void pd_conn_id(uint64_t serial, char *out, size_t n)
{
  static char host[64];
  if (host[0] == '\0' && gethostname(host, sizeof host - 1) < 0)
    snprintf(host, sizeof host, "host");
  snprintf(out, n, "%s.%d.%llu", host, (int)getpid(), (unsigned long long)serial);
}

static void refresh_one(struct pd_client *c)
{
  if (!c->counted)
    return;
  char id[96];
  pd_conn_id(c->serial, id, sizeof id);
  pd_redis_conns("refresh", c->who.sub, id, NULL, NULL);
}

void pd_clients_refresh_limits(void)
{
  pd_clients_each(PD_SSE, refresh_one);
  pd_clients_each(PD_WS, refresh_one);
}

struct pd_client *pd_client_new(const struct pd_transport *tp, int fd,
                                const struct sortie_identity *who)
{
  struct pd_client *c = sortie_xcalloc(1, sizeof *c);
  c->tp = tp;
  c->io.fd = fd;
  c->io.cb = on_io;
  if (who)
    c->who = *who;
  c->last_rx = pd_now();
  c->serial = ++serial_next;
  c->next = all_head;
  if (all_head)
    all_head->prev = c;
  all_head = c;
  pd_nclients[tp->kind]++;
  pd_stats_self()->conns[tp->kind] = pd_nclients[tp->kind];
  if (fd >= 0 && pd_io_add(&c->io, EPOLLIN | EPOLLRDHUP) < 0) {
    LOG_WARN("client", "epoll add fd %d: %s", fd, strerror(errno));
    pd_client_close(c, "epoll");
  }
  return c;
}

static void mark_dirty(struct pd_client *c)
{
  if (!c->dirty && !c->closing) {
    c->dirty = 1;
    c->dirty_next = dirty_head;
    dirty_head = c;
  }
}

void pd_client_send(struct pd_client *c, struct pd_chunk *ch)
{
  if (c->closing || c->close_after_flush)
    return;
  if (c->qbytes + ch->len > (size_t)pd_cfg->push_outbuf_max) {
    /* a client that cannot keep up is cut off; it resumes from history */
    pd_stats_self()->slow_disconnects++;
    pd_client_close(c, "slow consumer: outbound queue full");
    return;
  }
  if (c->qlen == c->qcap) {
    uint32_t ncap = c->qcap ? c->qcap * 2 : 4;
    struct pd_qent *nq = sortie_xmalloc(ncap * sizeof *nq);
    for (uint32_t i = 0; i < c->qlen; i++)
      nq[i] = c->q[(c->qhead + i) % c->qcap];
    free(c->q);
    c->q = nq;
    c->qcap = ncap;
    c->qhead = 0;
  }
  c->q[(c->qhead + c->qlen) % c->qcap] = (struct pd_qent){pd_chunk_ref(ch), 0};
  c->qlen++;
  c->qbytes += ch->len;
  mark_dirty(c);
}

void pd_client_send_copy(struct pd_client *c, const void *p, size_t len)
{
  struct pd_chunk *ch = pd_chunk_copy(p, len);
  pd_client_send(c, ch);
  pd_chunk_unref(ch);
}

static void queue_clear(struct pd_client *c)
{
  for (uint32_t i = 0; i < c->qlen; i++)
    pd_chunk_unref(c->q[(c->qhead + i) % c->qcap].c);
  free(c->q);
  c->q = NULL;
  c->qhead = c->qlen = c->qcap = 0;
  c->qbytes = 0;
}

void pd_client_flush(struct pd_client *c)
{
  if (c->closing || c->io.fd < 0)
    return;
  while (c->qlen) {
    struct iovec iov[64];
    int n = 0;
    for (uint32_t i = 0; i < c->qlen && n < 64; i++, n++) {
      struct pd_qent *e = &c->q[(c->qhead + i) % c->qcap];
      iov[n].iov_base = e->c->data + e->off;
      iov[n].iov_len = e->c->len - e->off;
    }
    ssize_t w = writev(c->io.fd, iov, n);
    if (w < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        pd_io_mod(&c->io, EPOLLIN | EPOLLRDHUP | EPOLLOUT);
        return;
      }
      if (errno == EINTR)
        continue;
      pd_client_close(c, "write failed");
      return;
    }
    size_t left = (size_t)w;
    c->qbytes -= left;
    while (left && c->qlen) {
      struct pd_qent *e = &c->q[c->qhead];
      size_t avail = e->c->len - e->off;
      if (left < avail) {
        e->off += (uint32_t)left;
        left = 0;
        break;
      }
      left -= avail;
      pd_chunk_unref(e->c);
      c->qhead = (c->qhead + 1) % c->qcap;
      c->qlen--;
    }
  }
  /* drained: give the ring back (idle clients hold no queue memory) */
  free(c->q);
  c->q = NULL;
  c->qhead = c->qcap = 0;
  if (c->io.events & EPOLLOUT)
    pd_io_mod(&c->io, EPOLLIN | EPOLLRDHUP);
  if (c->close_after_flush) {
    pd_client_close(c, "closed after flush");
    return;
  }
  if (c->throttled) {
    c->throttled = 0;
    pd_jobs_on_drain(c);
  }
}

static void conn_released(void *ud, int allowed, int failed)
{
  (void)ud;
  (void)allowed;
  (void)failed;
}

void pd_client_close(struct pd_client *c, const char *why)
{
  if (c->closing)
    return;
  c->closing = 1;
  LOG_DEBUG("client", "%s #%llu user=%s closed: %s", c->tp->name, (unsigned long long)c->serial,
            c->who.sub, why);
  while (c->nsubs)
    pd_sub_remove(c->subs[c->nsubs - 1]);
  if (c->counted) {
    char id[96];
    pd_conn_id(c->serial, id, sizeof id);
    pd_redis_conns("close", c->who.sub, id, conn_released, NULL);
  }
  if (c->io.fd >= 0) {
    pd_io_del(&c->io);
    close(c->io.fd);
    c->io.fd = -1;
  }
  queue_clear(c);
  /* off the live list, onto the dead one */
  if (c->prev)
    c->prev->next = c->next;
  else
    all_head = c->next;
  if (c->next)
    c->next->prev = c->prev;
  c->next = dead_head;
  c->prev = NULL;
  dead_head = c;
  pd_nclients[c->tp->kind]--;
  pd_stats_self()->conns[c->tp->kind] = pd_nclients[c->tp->kind];
}

void pd_clients_end_of_turn(void)
{
  while (dirty_head) {
    struct pd_client *c = dirty_head;
    dirty_head = c->dirty_next;
    c->dirty = 0;
    pd_client_flush(c);
  }
  while (dead_head) {
    struct pd_client *c = dead_head;
    dead_head = c->next;
    c->tp->destroy(c);
    free(c->subs);
    free(c);
  }
}

void pd_clients_each(enum pd_kind kind, void (*fn)(struct pd_client *c))
{
  for (struct pd_client *c = all_head, *next; c; c = next) {
    next = c->next;
    if (c->tp->kind == kind && !c->closing)
      fn(c);
  }
}

static void on_io(struct pd_io *io, uint32_t events)
{
  struct pd_client *c = (struct pd_client *)((char *)io - offsetof(struct pd_client, io));
  if (c->closing)
    return;
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
    c->tp->readable(c);
    if (c->closing)
      return;
    if (events & (EPOLLHUP | EPOLLERR)) {
      pd_client_close(c, "socket error");
      return;
    }
  }
  if (events & EPOLLOUT)
    pd_client_flush(c);
}
