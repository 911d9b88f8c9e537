/* Long-polling: GET /poll?channels=a,b&cursor=C&timeout=25 answers as soon as
 * there are events after C (at most 100), or with none at the timeout, and
 * always with the cursor to send next time. The request stays suspended in
 * libmicrohttpd meanwhile; its client is an ordinary subscriber (fd -1) that
 * collects events instead of writing them. */
#include "pushd.h"

#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define POLL_MAX_EVENTS 100

struct poll_state {
  struct pd_client *c;
  struct MHD_Connection *conn;
  struct sortie_buf items; /* envelopes and reset messages, comma-separated */
  uint32_t nitems;
  struct pd_pos at;        /* the cursor to answer with */
  int have_at;
  struct pd_timer timeout;
  struct pd_timer soon;    /* answer at the next turn: events of one turn go together */
  uint8_t answered;        /* resumed with a response to give */
  uint8_t finished;        /* libmicrohttpd is done with the request */
  uint8_t live;            /* history is behind us */
};

static void move_to(struct poll_state *st, struct pd_pos p)
{
  if (!st->have_at || pd_pos_cmp(p, st->at) > 0) {
    st->at = p;
    st->have_at = 1;
  }
}

static void answer(struct pd_client *c)
{
  struct poll_state *st = c->tp_state;
  if (st->answered || c->closing)
    return;
  st->answered = 1;
  pd_timer_stop(&st->timeout);
  pd_timer_stop(&st->soon);
  /* stop listening: the answer is fixed now */
  while (c->nsubs)
    pd_sub_remove(c->subs[c->nsubs - 1]);
  if (!st->finished) {
    MHD_resume_connection(st->conn);
    pd_http_kick();
  }
}

static void on_timeout(struct pd_timer *t)
{
  struct poll_state *st = (struct poll_state *)((char *)t - offsetof(struct poll_state, timeout));
  answer(st->c);
}

static void on_soon(struct pd_timer *t)
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
    pd_timer_arm(&st->soon, 0);
}

static void poll_deliver(struct pd_client *c, struct pd_event *e)
{
  struct poll_state *st = c->tp_state;
  if (st->answered || st->nitems >= POLL_MAX_EVENTS)
    return;
  move_to(st, e->pos);
  add_item(c, e->env->data, e->env->len);
}

static void poll_control(struct pd_client *c, const char *json, size_t len, const char *cursor)
{
  struct poll_state *st = c->tp_state;
  struct pd_pos p;
  if (cursor && pd_pos_parse(cursor, strlen(cursor), &p) == 0)
    move_to(st, p);
  add_item(c, json, len);
}

static void poll_caught_up(struct pd_client *c, struct pd_job *j, const char *cursor)
{
  (void)j;
  struct poll_state *st = c->tp_state;
  struct pd_pos p;
  if (cursor && *cursor && pd_pos_parse(cursor, strlen(cursor), &p) == 0)
    move_to(st, p);
  st->live = 1;
  if (st->nitems)
    answer(c);
}

static void poll_ready(struct pd_client *c, struct pd_job *j)
{
  (void)c;
  (void)j;
}

static void poll_readable(struct pd_client *c)
{
  (void)c;
}

static void poll_destroy(struct pd_client *c)
{
  struct poll_state *st = c->tp_state;
  if (st) {
    pd_timer_stop(&st->timeout);
    pd_timer_stop(&st->soon);
    sortie_buf_free(&st->items);
    free(st);
  }
  c->tp_state = NULL;
}

const struct pd_transport pd_poll_transport = {
    .name = "poll",
    .kind = PD_POLL,
    .deliver = poll_deliver,
    .control = poll_control,
    .ready = poll_ready,
    .caught_up = poll_caught_up,
    .readable = poll_readable,
    .destroy = poll_destroy,
};

struct pd_client *pd_poll_start(struct MHD_Connection *conn, const struct sortie_identity *who,
                                char **channels, uint32_t n, const char *cursor,
                                uint32_t timeout_s)
{
  struct pd_client *c = pd_client_new(&pd_poll_transport, -1, who);
  struct poll_state *st = sortie_xcalloc(1, sizeof *st);
  st->c = c;
  st->conn = conn;
  st->timeout.cb = on_timeout;
  st->soon.cb = on_soon;
  c->tp_state = st;
  struct pd_pos p;
  if (cursor && *cursor && pd_pos_parse(cursor, strlen(cursor), &p) == 0)
    move_to(st, p);
  pd_timer_arm(&st->timeout, (uint64_t)timeout_s * 1000);
  struct pd_sub *subs[4096];
  uint32_t k = 0;
  for (uint32_t i = 0; i < n && k < 4096; i++)
    subs[k++] = pd_sub_add(c, channels[i]);
  pd_job_start(c, subs, k, cursor);
  return c;
}

int pd_poll_respond(struct pd_client *c, struct MHD_Connection *conn, const char *origin)
{
  struct poll_state *st = c ? c->tp_state : NULL;
  if (st == NULL || !st->answered)
    return MHD_YES; /* not yet */
  struct sortie_buf b = {0};
  char cur[SORTIE_STREAM_ID_MAX + 1] = "";
  if (st->have_at)
    pd_pos_format(st->at, cur);
  sortie_buf_puts(&b, "{\"events\":[");
  if (st->items.len)
    sortie_buf_append(&b, st->items.base, st->items.len);
  sortie_buf_printf(&b, "],\"cursor\":\"%s\"}", cur);
  int ok = pd_http_reply(conn, 200, "application/json", b.base, b.len, origin);
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
