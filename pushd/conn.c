/* The socket layer (conn.h): queue, writev, slow-consumer cut-off, and
 * close-then-reap. */
#include "conn.h"
#include "log.h"
#include "metrics.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/uio.h>
#include <unistd.h>

static struct sortie_loop *loop;
static size_t outbuf_max;
static const struct pd_conn_ops *ops;
/* connections with bytes to write, and closed ones to free: both are done
 * at the end of the turn, through one link */
static struct pd_conn *dirty_head;

static void end_of_turn(void *ud);

void pd_conns_init(struct sortie_loop *l, size_t max, const struct pd_conn_ops *o)
{
  loop = l;
  outbuf_max = max;
  ops = o;
  sortie_loop_on_turn_end(l, end_of_turn, NULL);
}

size_t pd_conns_max(void)
{
  return outbuf_max;
}

struct sortie_loop *pd_conns_loop(void)
{
  return loop;
}

static void flush(struct pd_conn *c);

static void on_io(struct sortie_io *io, uint32_t events)
{
  struct pd_conn *c = (struct pd_conn *)((char *)io - offsetof(struct pd_conn, io));
  if (c->closing)
    return;
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
    ops->readable(c);
    if (c->closing)
      return;
    if (events & (EPOLLHUP | EPOLLERR)) {
      pd_conn_close(c, "socket error");
      return;
    }
  }
  if (events & EPOLLOUT)
    flush(c);
}

void pd_conn_init(struct pd_conn *c, int fd)
{
  memset(c, 0, sizeof *c);
  c->io.fd = fd;
  c->io.cb = on_io;
  c->last_rx = sortie_loop_now(loop);
  if (fd >= 0 && sortie_io_add(loop, &c->io, EPOLLIN | EPOLLRDHUP) < 0) {
    LOG_WARN("conn", "epoll add fd %d: %s", fd, strerror(errno));
    pd_conn_close(c, "epoll");
  }
}

static void mark_dirty(struct pd_conn *c)
{
  if (!c->dirty && !c->closing) {
    c->dirty = 1;
    c->dirty_next = dirty_head;
    dirty_head = c;
  }
}

void pd_conn_send(struct pd_conn *c, struct pd_chunk *ch)
{
  if (c->closing || c->close_after_flush)
    return;
  /* bytes, and entries: many tiny chunks (a pong per ping) cost more than
   * their bytes, so a queue holds at most one entry per 64 bytes allowed */
  if (c->qbytes + ch->len > outbuf_max || c->qlen >= outbuf_max / 64) {
    /* a client that cannot keep up is cut off; it resumes from history */
    pd_stats_self()->slow_disconnects++;
    pd_conn_close(c, "slow consumer: outbound queue full");
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

void pd_conn_send_copy(struct pd_conn *c, const void *p, size_t len)
{
  if (c->closing || c->close_after_flush)
    return;
  struct pd_chunk *ch = pd_chunk_copy(p, len);
  pd_conn_send(c, ch);
  pd_chunk_unref(ch);
}

void pd_conn_send_final(struct pd_conn *c, const void *p, size_t len)
{
  uint8_t saved = c->close_after_flush;
  c->close_after_flush = 0;
  pd_conn_send_copy(c, p, len);
  c->close_after_flush = saved;
}

void pd_conn_want_drain(struct pd_conn *c)
{
  c->want_drain = 1;
  mark_dirty(c);
}

void pd_conn_close_after_flush(struct pd_conn *c)
{
  c->close_after_flush = 1;
  mark_dirty(c);
}

void pd_conn_heard(struct pd_conn *c)
{
  c->last_rx = sortie_loop_now(loop);
}

uint64_t pd_conn_silent_ms(const struct pd_conn *c)
{
  uint64_t now = sortie_loop_now(loop);
  return now > c->last_rx ? now - c->last_rx : 0;
}

static void queue_clear(struct pd_conn *c)
{
  for (uint32_t i = 0; i < c->qlen; i++)
    pd_chunk_unref(c->q[(c->qhead + i) % c->qcap].c);
  free(c->q);
  c->q = NULL;
  c->qhead = c->qlen = c->qcap = 0;
  c->qbytes = 0;
}

static void flush(struct pd_conn *c)
{
  if (c->closing)
    return;
  while (c->qlen && c->io.fd >= 0) {
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
        sortie_io_mod(loop, &c->io, EPOLLIN | EPOLLRDHUP | EPOLLOUT);
        return;
      }
      if (errno == EINTR)
        continue;
      pd_conn_close(c, "write failed");
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
  if (c->qlen)
    return; /* no socket to write to */
  /* drained: give the ring back (idle connections hold no queue memory) */
  free(c->q);
  c->q = NULL;
  c->qhead = c->qcap = 0;
  if (c->io.events & EPOLLOUT)
    sortie_io_mod(loop, &c->io, EPOLLIN | EPOLLRDHUP);
  if (c->close_after_flush) {
    pd_conn_close(c, "closed after flush");
    return;
  }
  if (c->want_drain) {
    c->want_drain = 0;
    ops->drained(c);
  }
}

void pd_conn_close(struct pd_conn *c, const char *why)
{
  if (c->closing)
    return;
  c->closing = 1;
  ops->closed(c, why);
  if (c->io.fd >= 0) {
    sortie_io_del(loop, &c->io);
    close(c->io.fd);
    c->io.fd = -1;
  }
  queue_clear(c);
  if (!c->dirty) { /* freed at the end of the turn */
    c->dirty = 1;
    c->dirty_next = dirty_head;
    dirty_head = c;
  }
}

static void end_of_turn(void *ud)
{
  (void)ud;
  struct pd_conn *dead = NULL;
  while (dirty_head) {
    struct pd_conn *c = dirty_head;
    dirty_head = c->dirty_next;
    c->dirty = 0;
    if (c->closing) {
      c->dirty_next = dead;
      dead = c;
      continue;
    }
    flush(c); /* may close c, which puts it back on the list */
  }
  while (dead) {
    struct pd_conn *c = dead;
    dead = c->dirty_next;
    ops->destroy(c);
  }
}
