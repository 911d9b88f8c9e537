/* Long-polling: GET /poll?channels=a,b&cursor=C&timeout=25 answers as soon as
 * there are events after C (at most 100), or with none at the timeout, and
 * always with the cursor to send next time. The request stays suspended in
 * libmicrohttpd meanwhile; its client is an ordinary subscriber with no
 * socket that collects events instead of writing them.
 *
 * A poll ends at its token's exp: it is answered then with what it has and
 * its cursor, plus "token_expired":true; an event published at or after exp
 * is left for the next poll (made with a fresh token).
 *
 * libmicrohttpd does not watch a suspended request's socket, so a client
 * that went away would hold its connection slot (and its place in
 * push.max_connections and /health) until the timeout. The poll watches the
 * socket for the peer's hangup itself (EPOLLRDHUP only: it never reads, so a
 * byte the client sent stays for libmicrohttpd) and answers at once; the
 * write fails and libmicrohttpd ends the request, which frees the slot. */
#include "channel.h"
#include "reply.h"
#include "resume.h"
#include "transport.h"

#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#define POLL_MAX_EVENTS 100

struct poll_state {
  struct pd_client *c;
  struct MHD_Connection *mhd;
  void (*wake)(struct MHD_Connection *mhd);
  struct sortie_buf items; /* envelopes and reset messages, comma-separated */
  uint32_t nitems;
  struct pd_evid at;       /* the cursor to answer with */
  int have_at;
  struct sortie_timer timeout;
  struct sortie_timer soon; /* answer at the next turn: events of one turn go together */
  struct sortie_io peer;    /* the request's socket, watched for the client's hangup */
  struct pd_client **slot; /* the request's pointer to c (pd_stream_req) */
  uint8_t answered;        /* resumed with a response to give */
  uint8_t finished;        /* libmicrohttpd is done with the request */
  uint8_t live;            /* history is behind us */
  uint8_t overdue;         /* the timeout passed while history was being read */
  uint8_t expired;         /* answered because the token expired */
};

/* How long past its timeout a poll waits for its history read (Redis slow or
 * away): then it is answered with what it has. */
#define POLL_HISTORY_GRACE_MS 2000

static void move_to(struct poll_state *st, struct pd_evid id)
{
  if (!st->have_at || pd_evid_cmp(id, st->at) > 0) {
    st->at = id;
    st->have_at = 1;
  }
}

static void move_to_str(struct poll_state *st, const char *id)
{
  struct pd_evid p;
  if (id && *id && pd_evid_parse(id, strlen(id), &p) == 0)
    move_to(st, p);
}

/* Once: the fd goes back to libmicrohttpd, which closes it, and the number
 * may come back as another client's socket in the same epoll set. */
static void unwatch(struct poll_state *st)
{
  sortie_io_del(pd_conns_loop(), &st->peer);
  st->peer.fd = -1;
}

static void answer(struct pd_client *c)
{
  struct poll_state *st = c->tp_state;
  if (st->answered || c->conn.closing)
    return;
  st->answered = 1;
  sortie_timer_stop(&st->timeout);
  sortie_timer_stop(&st->soon);
  unwatch(st);
  /* stop listening: the answer is fixed now */
  while (c->nsubs)
    pd_resume_unsubscribe(c->subs[c->nsubs - 1]);
  if (!st->finished)
    st->wake(st->mhd);
}

/* The timeout counts from when history has been read: a poll with
 * timeout=0 answers what is there, not an empty list before the read is
 * back. A read that does not come back in time is given up on. */
static void on_timeout(struct sortie_timer *t)
{
  struct poll_state *st = (struct poll_state *)((char *)t - offsetof(struct poll_state, timeout));
  if (!st->live && !st->overdue) {
    st->overdue = 1;
    sortie_timer_arm(&st->timeout, POLL_HISTORY_GRACE_MS);
    return;
  }
  answer(st->c);
}

/* The client closed its side (or reset): nobody waits for the answer. */
static void on_hangup(struct sortie_io *io, uint32_t events)
{
  (void)events;
  struct poll_state *st = (struct poll_state *)((char *)io - offsetof(struct poll_state, peer));
  answer(st->c);
}

static void on_soon(struct sortie_timer *t)
{
  struct poll_state *st = (struct poll_state *)((char *)t - offsetof(struct poll_state, soon));
  answer(st->c);
}

static void add_item(struct pd_client *c, const char *json, size_t len)
{
  struct poll_state *st = c->tp_state;
  if (st->answered || st->nitems >= POLL_MAX_EVENTS)
    return;
  if (st->nitems)
    sortie_buf_putc(&st->items, ',');
  sortie_buf_append(&st->items, json, len);
  st->nitems++;
  if (st->nitems >= POLL_MAX_EVENTS)
    answer(c);
  else if (st->live)
    sortie_timer_arm(&st->soon, 0);
}

static void poll_expire(struct pd_client *c)
{
  struct poll_state *st = c->tp_state;
  if (st->answered)
    return;
  st->expired = 1;
  answer(c);
}

static void poll_deliver(struct pd_client *c, struct pd_event *e)
{
  struct poll_state *st = c->tp_state;
  if (st->answered || st->nitems >= POLL_MAX_EVENTS)
    return;
  if (c->who.exp > 0 && e->id.ms >= (uint64_t)c->who.exp * 1000) {
    poll_expire(c); /* the cursor stays before it */
    return;
  }
  move_to(st, e->id);
  add_item(c, e->env->data, e->env->len);
}

static size_t poll_cost(struct pd_event *e)
{
  return e->env->len;
}

static void poll_control(struct pd_client *c, const struct pd_control *m)
{
  struct poll_state *st = c->tp_state;
  if (m->kind == PD_CTL_CAUGHT_UP) {
    move_to_str(st, m->id);
    st->live = 1;
    if (st->nitems || st->overdue)
      answer(c);
    return;
  }
  if (m->kind != PD_CTL_RESET)
    return;
  move_to_str(st, m->id);
  struct sortie_buf json = {0};
  pd_control_json(m, &json);
  add_item(c, json.base, json.len);
  sortie_buf_free(&json);
}

/* The daemon stops: the poll is answered now, with what it has (libmicrohttpd
 * cannot stop with a request still suspended, and the client gets a cursor
 * to go on from instead of a reset connection). */
static void poll_shutdown(struct pd_client *c)
{
  answer(c);
}

static void poll_destroy(struct pd_client *c)
{
  struct poll_state *st = c->tp_state;
  if (st && !st->finished) {
    /* closed before libmicrohttpd was done with the request (too many
     * events waited while it resumed, say): the request must not keep a
     * pointer to it, and must not stay suspended for ever; woken, it finds
     * no client and answers 503 (ask again, same cursor) */
    if (st->slot)
      *st->slot = NULL;
    if (!st->answered)
      st->wake(st->mhd);
  }
  if (st) {
    sortie_timer_stop(&st->timeout);
    sortie_timer_stop(&st->soon);
    unwatch(st);
    sortie_buf_free(&st->items);
    free(st);
  }
  c->tp_state = NULL;
}

static struct pd_client *poll_start(const struct pd_stream_req *r)
{
  struct pd_client *c = pd_client_new(&pd_poll_transport, -1, r->who, r->serial, r->counted);
  struct poll_state *st = sortie_xcalloc(1, sizeof *st);
  st->slot = r->slot;
  st->c = c;
  st->mhd = r->mhd;
  st->wake = r->wake;
  sortie_timer_init(&st->timeout, pd_conns_loop(), on_timeout);
  sortie_timer_init(&st->soon, pd_conns_loop(), on_soon);
  c->tp_state = st;
  st->peer.fd = r->peer_fd;
  st->peer.cb = on_hangup;
  if (r->peer_fd >= 0 && sortie_io_add(pd_conns_loop(), &st->peer, EPOLLRDHUP) < 0)
    st->peer.fd = -1; /* unwatched: it waits for its timeout, as before */
  move_to_str(st, r->cursor);
  sortie_timer_arm(&st->timeout, (uint64_t)r->timeout_s * 1000);
  struct pd_sub **subs = sortie_xmalloc((r->nchannels ? r->nchannels : 1) * sizeof *subs);
  for (uint32_t i = 0; i < r->nchannels; i++)
    subs[i] = pd_sub_add(c, r->channels[i]);
  pd_resume_start(c, subs, r->nchannels, r->cursor);
  free(subs);
  return c;
}

const struct pd_transport pd_poll_transport = {
    .name = "poll",
    .kind = 2,
    .start = poll_start,
    .deliver = poll_deliver,
    .cost = poll_cost,
    .control = poll_control,
    .readable = NULL,
    .heartbeat = NULL,
    .shutdown = poll_shutdown,
    .destroy = poll_destroy,
    .expire = poll_expire,
};

int pd_poll_respond(struct pd_client *c, struct MHD_Connection *conn, const char *origin)
{
  struct poll_state *st = c ? c->tp_state : NULL;
  if (st == NULL || !st->answered)
    return MHD_YES; /* not yet */
  struct sortie_buf b = {0};
  char cur[SORTIE_EVENT_ID_MAX + 1] = "";
  if (st->have_at)
    pd_evid_format(st->at, cur);
  sortie_buf_puts(&b, "{\"events\":[");
  if (st->items.len)
    sortie_buf_append(&b, st->items.base, st->items.len);
  sortie_buf_printf(&b, "],\"cursor\":\"%s\"%s}", cur,
                    st->expired ? ",\"token_expired\":true" : "");
  int ok = pd_reply(conn, 200, "application/json", b.base, b.len, origin);
  sortie_buf_free(&b);
  return ok;
}

void pd_poll_finished(struct pd_client *c)
{
  struct poll_state *st = c->tp_state;
  if (st)
    st->finished = 1;
  pd_client_close(c, "poll finished");
}
