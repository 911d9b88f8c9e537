/* Channels and resume (pushd/channel.c, pushd/resume.c) against a scripted
 * fake of the Redis side (fake_bus.c): the seam between history and live,
 * pages under a full queue, the subscriber link dropping, resets, unsubscribe
 * in flight, and the cost of thousands of waiting subscriptions (counted in
 * steps, never timed). The sockets are pipes the test drains by hand; the
 * layers above the bus are the daemon's own. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "channel.h"
#include "clients.h"
#include "fake_bus.h"
#include "resume.h"

/* ---- a client that records what it is sent ---- */

struct tlog {
  uint64_t *seq;
  char (*chan)[SORTIE_CHANNEL_MAX + 1];
  size_t n, cap;
  int subscribed;           /* PD_CTL_SUBSCRIBED seen */
  uint64_t published_at_sub; /* the store's last seq when it was */
  int caught_up;
  char caught_up_id[48];
  int resets;
  char reset_chan[SORTIE_CHANNEL_MAX + 1], reset_id[48];
  int rd;                   /* the pipe's read end */
};

static uint64_t last_published;

static void t_deliver(struct pd_client *c, struct pd_event *e)
{
  struct tlog *l = c->tp_state;
  if (l->n == l->cap) {
    l->cap = l->cap ? l->cap * 2 : 16;
    l->seq = realloc(l->seq, l->cap * sizeof *l->seq);
    l->chan = realloc(l->chan, l->cap * sizeof *l->chan);
  }
  l->seq[l->n] = e->id.seq;
  memcpy(l->chan[l->n], e->channel, sizeof l->chan[0]);
  l->n++;
  pd_conn_send(&c->conn, pd_event_sse(e));
}

static size_t t_cost(struct pd_event *e)
{
  return pd_event_sse(e)->len;
}

static void t_control(struct pd_client *c, const struct pd_control *m)
{
  struct tlog *l = c->tp_state;
  switch (m->kind) {
  case PD_CTL_SUBSCRIBED:
    if (!l->subscribed)
      l->published_at_sub = last_published;
    l->subscribed = 1;
    break;
  case PD_CTL_CAUGHT_UP:
    l->caught_up++;
    snprintf(l->caught_up_id, sizeof l->caught_up_id, "%s", m->id);
    break;
  case PD_CTL_RESET:
    l->resets++;
    snprintf(l->reset_chan, sizeof l->reset_chan, "%s", m->channels[0]);
    snprintf(l->reset_id, sizeof l->reset_id, "%s", m->id);
    break;
  default:
    break;
  }
}

static void t_destroy(struct pd_client *c)
{
  struct tlog *l = c->tp_state;
  close(l->rd);
  free(l->seq);
  free(l->chan);
  free(l);
}

static const struct pd_transport test_tp = {
    .name = "test",
    .kind = 0,
    .deliver = t_deliver,
    .cost = t_cost,
    .control = t_control,
    .destroy = t_destroy,
};

static struct sortie_loop *loop;
static struct sortie_cfg cfg;

/* Set-up checks that also run in the test's own child processes, where a
 * Criterion assertion would talk to the runner from the wrong process. */
#define MUST(x)                                                                                   \
  do {                                                                                            \
    if (!(x)) {                                                                                   \
      fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, #x);                                     \
      abort();                                                                                    \
    }                                                                                             \
  } while (0)

static void world(size_t outbuf_max)
{
  loop = sortie_loop_new();
  MUST(loop != NULL);
  memset(&cfg, 0, sizeof cfg);
  cfg.push_outbuf_max = (int)outbuf_max;
  cfg.push_max_conn_per_user = 1000000;
  fake_reset();
  last_published = 0;
  pd_clients_init(loop, &cfg, 0);
}

static uint64_t publish(const char *ch)
{
  last_published = fake_publish(ch);
  return last_published;
}

static struct pd_client *client(int pipe_size)
{
  int p[2];
  MUST(pipe2(p, O_NONBLOCK | O_CLOEXEC) == 0);
  if (pipe_size)
    fcntl(p[1], F_SETPIPE_SZ, pipe_size);
  struct pd_client *c = pd_client_new(&test_tp, p[1], NULL, 1, 0);
  struct tlog *l = calloc(1, sizeof *l);
  l->rd = p[0];
  c->tp_state = l;
  return c;
}

static struct tlog *tlog(struct pd_client *c)
{
  return c->tp_state;
}

/* The client reads what it was sent; the loop turns once. */
static void drain(struct pd_client *c)
{
  char buf[65536];
  while (read(tlog(c)->rd, buf, sizeof buf) > 0)
    ;
  sortie_loop_turn(loop, 0);
}

static void subscribe(struct pd_client *c, const char *const *chans, uint32_t n,
                      const char *from)
{
  MUST(n <= 128);
  struct pd_sub *subs[128];
  for (uint32_t i = 0; i < n; i++)
    subs[i] = pd_sub_add(c, chans[i]);
  pd_resume_start(c, subs, n, from);
}

static char *id_of(uint64_t seq, char *buf)
{
  sprintf(buf, "1000-%llu", (unsigned long long)seq);
  return buf;
}

/* The log holds exactly the events of `chan` with seq in (after, upto], in
 * order, each once. */
static int log_is_exact(const struct tlog *l, const char *chan, uint64_t after, uint64_t upto,
                        const uint64_t *all, size_t nall, const char *const *allch)
{
  size_t k = 0;
  for (size_t i = 0; i < nall; i++) {
    if (all[i] <= after || all[i] > upto || (chan && strcmp(allch[i], chan) != 0))
      continue;
    size_t j = k;
    while (j < l->n && chan && strcmp(l->chan[j], chan) != 0)
      j++;
    if (j >= l->n || l->seq[j] != all[i])
      return 0;
    k = j + 1;
  }
  while (k < l->n && chan && strcmp(l->chan[k], chan) != 0)
    k++;
  return k == l->n;
}

static void settle(struct pd_client *c)
{
  for (int i = 0; i < 10000 && (fake_sub_queued() || fake_reads_queued()); i++) {
    fake_settle(1);
    drain(c);
  }
  drain(c);
}

/* ---- 1: the seam, in every order ----
 *
 * A client resumes "mission:a" (from seq 1, or from now) while four more
 * events are published. The test enumerates every order of: each publish,
 * each item arriving on the subscriber link (confirmations, messages), each
 * history read running and answering, and, in the variants with a drop, the
 * subscriber link lost once (what was on its wire with it) and back. In
 * every order the client must get each event after its position exactly
 * once, in order. */

enum { OP_PUB, OP_PUMP, OP_EXEC, OP_ANSWER, OP_DROP, OP_UP };

struct script {
  int choice[64];
  int nopts[64];
  int len, pos;
};

static int choose(struct script *s, int nopts)
{
  int c = s->pos < s->len ? s->choice[s->pos] : 0;
  s->nopts[s->pos] = nopts;
  s->choice[s->pos] = c;
  s->pos++;
  return c;
}

static void seam_path(struct script *s, int from_now, int drop, int wfd)
{
  world(1 << 20);
  uint64_t all[16];
  const char *allch[16];
  size_t nall = 0;
  for (int i = 0; i < 2; i++) {
    all[nall] = publish("mission:a");
    allch[nall++] = "mission:a";
  }
  struct pd_client *c = client(0);
  const char *ch = "mission:a";
  char id[48];
  subscribe(c, &ch, 1, from_now ? "" : id_of(1, id));
  /* fewer publishes where there are more steps: the orders multiply */
  int pubs = drop ? (from_now ? 1 : 2) : from_now ? 3 : 4, down = 0, dropped = 0;
  for (;;) {
    int ops[6], n = 0;
    if (pubs)
      ops[n++] = OP_PUB;
    if (fake_sub_queued())
      ops[n++] = OP_PUMP;
    if (drop && !down) /* once: drop is cleared when it happens */
      ops[n++] = OP_DROP;
    if (down)
      ops[n++] = OP_UP;
    if (fake_reads_queued()) {
      if (!fake_read_ran(0))
        ops[n++] = OP_EXEC;
      ops[n++] = OP_ANSWER;
    }
    if (n == 0)
      break;
    switch (ops[choose(s, n)]) {
    case OP_PUB:
      all[nall] = publish("mission:a");
      allch[nall++] = "mission:a";
      pubs--;
      break;
    case OP_PUMP:
      fake_pump_sub(1);
      break;
    case OP_EXEC:
      fake_exec_read(0);
      break;
    case OP_ANSWER:
      fake_answer_read(0);
      break;
    case OP_DROP:
      fake_sub_down();
      drop = 0;
      down = 1;
      dropped = 1;
      break;
    case OP_UP:
      fake_sub_up();
      down = 0;
      break;
    }
    drain(c);
  }
  struct tlog *l = tlog(c);
  /* caught up once, and once more after each drop that found it live */
  int ok = l->caught_up >= 1 && l->caught_up <= 1 + dropped && pd_resume_jobs() == 0;
  if (!from_now) {
    ok = ok && log_is_exact(l, "mission:a", 1, 1000, all, nall, allch);
  } else {
    /* from now: in order, once each, and every event published after the
     * client was told "subscribed" is there */
    for (size_t i = 1; i < l->n; i++)
      ok = ok && l->seq[i] > l->seq[i - 1];
    ok = ok && l->subscribed;
    for (size_t i = 0; i < nall; i++)
      if (all[i] > l->published_at_sub) {
        int found = 0;
        for (size_t j = 0; j < l->n; j++)
          found |= l->seq[j] == all[i];
        ok = ok && found;
      }
  }
  if (write(wfd, s, sizeof *s) != (ssize_t)sizeof *s)
    _exit(3);
  _exit(ok ? 0 : 1);
}

/* Runs every path of the script tree, each in a child process of its own;
 * returns how many paths ran, and how many failed in *failed. */
static int seam_all_orders(int from_now, int drop, int *failed)
{
  struct script s;
  memset(&s, 0, sizeof s);
  int paths = 0;
  *failed = 0;
  for (;;) {
    int p[2];
    cr_assert(pipe(p) == 0);
    s.pos = 0;
    pid_t pid = fork();
    if (pid == 0) {
      close(p[0]);
      seam_path(&s, from_now, drop, p[1]);
    }
    close(p[1]);
    struct script got;
    ssize_t r = read(p[0], &got, sizeof got);
    close(p[0]);
    int st;
    waitpid(pid, &st, 0);
    paths++;
    if (r != (ssize_t)sizeof got || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
      (*failed)++;
      if (r != (ssize_t)sizeof got)
        return paths;
    }
    /* the next path: the last choice that has an untried option */
    int k = got.pos - 1;
    while (k >= 0 && got.choice[k] + 1 >= got.nopts[k])
      k--;
    if (k < 0)
      return paths;
    s = got;
    s.choice[k]++;
    s.len = k + 1;
  }
}

Test(seam, resume_with_an_id_in_every_order_delivers_each_event_once_in_order)
{
  int failed;
  int paths = seam_all_orders(0, 0, &failed);
  cr_expect(paths > 1000, "only %d orders were tried", paths);
  cr_expect_eq(failed, 0, "%d of %d orders lost, doubled or reordered an event", failed, paths);
}

Test(seam, resume_from_now_in_every_order_misses_nothing_after_subscribed)
{
  int failed;
  int paths = seam_all_orders(1, 0, &failed);
  cr_expect(paths > 1000, "only %d orders were tried", paths);
  cr_expect_eq(failed, 0, "%d of %d orders lost, doubled or reordered an event", failed, paths);
}

Test(seam, resume_with_an_id_and_a_subscriber_link_drop_in_every_order)
{
  int failed;
  int paths = seam_all_orders(0, 1, &failed);
  cr_expect(paths > 1000, "only %d orders were tried", paths);
  cr_expect_eq(failed, 0, "%d of %d orders lost, doubled or reordered an event", failed, paths);
}

Test(seam, resume_from_now_and_a_subscriber_link_drop_in_every_order)
{
  int failed;
  int paths = seam_all_orders(1, 1, &failed);
  cr_expect(paths > 1000, "only %d orders were tried", paths);
  cr_expect_eq(failed, 0, "%d of %d orders lost, doubled or reordered an event", failed, paths);
}

/* ---- 2: a backlog of several pages through a queue that is always full ----
 *
 * 1,300 events wait in history; the client's queue holds 16 KiB and its
 * socket 4 KiB, and 60 live events are published while it catches up. It
 * must get all 1,360 once, in order, without being cut off as a slow
 * consumer, and the daemon must have read again where it stopped for room. */
Test(pages, a_backlog_of_several_pages_through_a_full_queue_arrives_whole)
{
  world(16384);
  static uint64_t all[1400];
  static const char *allch[1400];
  size_t nall = 0;
  for (int i = 0; i < 1300; i++) {
    all[nall] = publish("user:u1");
    allch[nall++] = "user:u1";
  }
  struct pd_client *c = client(4096);
  const char *ch = "user:u1";
  subscribe(c, &ch, 1, "1000-0");
  int live = 60;
  for (int i = 0; i < 100000 && (live || fake_sub_queued() || fake_reads_queued() ||
                                  pd_resume_jobs()); i++) {
    if (live && i % 7 == 0) {
      all[nall] = publish("user:u1");
      allch[nall++] = "user:u1";
      live--;
    }
    fake_settle(1);
    drain(c);
  }
  struct tlog *l = tlog(c);
  cr_assert(!c->conn.closing, "the client was cut off");
  cr_expect_eq(l->n, 1360, "%zu events arrived", l->n);
  cr_expect(log_is_exact(l, "user:u1", 0, 100000, all, nall, allch), "lost, doubled or reordered");
  cr_expect(fake_reads_done() > 3, "%llu reads: pages were not cut for room",
            (unsigned long long)fake_reads_done());
  cr_expect_eq(l->caught_up, 1);
}

/* ---- 3: the subscriber link drops before, during and after a read ---- */

/* What was published, in order, to check a client's log against. */
struct book {
  uint64_t seq[256];
  const char *ch[256];
  size_t n;
};

static void book_pub(struct book *b, const char *ch)
{
  b->seq[b->n] = publish(ch);
  b->ch[b->n++] = ch;
}

/* A client resuming mission:a from seq 2, five events in history. */
static struct pd_client *resume_one(struct book *b)
{
  world(1 << 20);
  for (int i = 0; i < 5; i++)
    book_pub(b, "mission:a");
  struct pd_client *c = client(0);
  const char *ch = "mission:a";
  char id[48];
  subscribe(c, &ch, 1, id_of(2, id));
  return c;
}

static void expect_all_after_2(struct pd_client *c, const struct book *b)
{
  cr_expect(log_is_exact(tlog(c), "mission:a", 2, 1000, b->seq, b->n, b->ch),
            "lost, doubled or reordered (%zu events)", tlog(c)->n);
  cr_expect_eq(pd_resume_jobs(), 0, "a job was left over");
}

Test(link, dropped_before_the_channel_is_confirmed)
{
  struct book b = {.n = 0};
  struct pd_client *c = resume_one(&b);
  fake_sub_down(); /* the SUBSCRIBE's confirmation is lost */
  book_pub(&b, "mission:a"); /* nobody is subscribed in Redis */
  fake_sub_up();
  book_pub(&b, "mission:a");
  settle(c);
  book_pub(&b, "mission:a");
  settle(c);
  expect_all_after_2(c, &b);
}

Test(link, dropped_while_a_read_is_in_flight)
{
  struct book b = {.n = 0};
  struct pd_client *c = resume_one(&b);
  fake_pump_sub(0);        /* confirmed: the read goes out */
  cr_assert_eq(fake_reads_queued(), 1);
  fake_exec_read(0);       /* Redis runs it now ... */
  book_pub(&b, "mission:a"); /* ... this one is on the wire, live */
  fake_sub_down();         /* and is lost with the link */
  book_pub(&b, "mission:a"); /* not subscribed: not sent at all */
  fake_sub_up();
  fake_answer_read(0);     /* the answer of the read that ran before both */
  settle(c);
  book_pub(&b, "mission:a");
  settle(c);
  expect_all_after_2(c, &b);
}

Test(link, dropped_after_the_read_while_live)
{
  struct book b = {.n = 0};
  struct pd_client *c = resume_one(&b);
  settle(c);
  cr_assert_eq(tlog(c)->caught_up, 1);
  book_pub(&b, "mission:a");
  settle(c);
  fake_sub_down();
  book_pub(&b, "mission:a"); /* missed live: must come from history */
  book_pub(&b, "mission:a");
  fake_sub_up();
  settle(c);
  book_pub(&b, "mission:a");
  settle(c);
  expect_all_after_2(c, &b);
}

Test(link, command_link_dropped_while_a_read_is_in_flight)
{
  struct book b = {.n = 0};
  struct pd_client *c = resume_one(&b);
  fake_pump_sub(0);
  cr_assert_eq(fake_reads_queued(), 1);
  fake_cmd_down(); /* the read's answer is lost */
  book_pub(&b, "mission:a");
  fake_pump_sub(0);
  fake_cmd_up();
  settle(c);
  expect_all_after_2(c, &b);
}

/* ---- 4: a reset on one channel of several ----
 *
 * A client resumes mission:a and mission:b from seq 3. mission:a's history
 * was trimmed past that point; mission:b has 150 events to deliver. The
 * reset tells the client to refetch mission:a, and the position it hands
 * out must not pass mission:b's events still to come. */
Test(reset, on_one_channel_keeps_the_others_events)
{
  world(1 << 20);
  struct book b = {.n = 0};
  for (int i = 0; i < 3; i++)
    book_pub(&b, i % 2 ? "mission:a" : "mission:b");
  for (int i = 0; i < 150; i++)
    book_pub(&b, "mission:b");
  for (int i = 0; i < 10; i++)
    book_pub(&b, "mission:a");
  fake_trim("mission:a", 100);
  struct pd_client *c = client(0);
  const char *chans[] = {"mission:a", "mission:b"};
  char id[48];
  subscribe(c, chans, 2, id_of(3, id));
  settle(c);
  struct tlog *l = tlog(c);
  cr_assert_eq(l->resets, 1);
  cr_expect_str_eq(l->reset_chan, "mission:a");
  cr_expect_str_eq(l->reset_id, "1000-3", "the reset handed out %s, past mission:b's events",
                   l->reset_id);
  cr_expect(log_is_exact(l, "mission:b", 3, 1000, b.seq, b.n, b.ch), "mission:b lost events");
  for (size_t i = 0; i < l->n; i++)
    cr_expect(strcmp(l->chan[i], "mission:a") != 0, "history of a reset channel was sent");
  book_pub(&b, "mission:a");
  settle(c);
  cr_expect_eq(l->seq[l->n - 1], b.seq[b.n - 1], "the reset channel is not live afterwards");
}

/* ---- 5: unsubscribe while a read is in flight ---- */
Test(unsubscribe, while_a_read_is_in_flight)
{
  world(1 << 20);
  struct book b = {.n = 0};
  for (int i = 0; i < 20; i++)
    book_pub(&b, i % 2 ? "mission:a" : "mission:b");
  struct pd_client *c = client(0);
  const char *chans[] = {"mission:a", "mission:b"};
  subscribe(c, chans, 2, "1000-0");
  fake_pump_sub(0);
  cr_assert_eq(fake_reads_queued(), 1);
  struct pd_sub *a = pd_sub_find(c, "mission:a");
  pd_resume_unsubscribe(a); /* as the WebSocket unsubscribe does */
  settle(c);
  struct tlog *l = tlog(c);
  for (size_t i = 0; i < l->n; i++)
    cr_expect(strcmp(l->chan[i], "mission:a") != 0, "an unsubscribed channel got events");
  cr_expect(log_is_exact(l, "mission:b", 0, 1000, b.seq, b.n, b.ch), "mission:b lost events");
  cr_expect_eq(l->caught_up, 1);
  /* the last subscription of a job leaves while its read is out */
  const char *ch = "mission:a";
  subscribe(c, &ch, 1, "1000-0");
  fake_pump_sub(0);
  cr_assert_eq(fake_reads_queued(), 1);
  a = pd_sub_find(c, "mission:a");
  pd_resume_unsubscribe(a);
  cr_expect_eq(pd_resume_jobs(), 1, "freed while its read was out");
  size_t before = l->n;
  settle(c);
  cr_expect_eq(l->n, before, "events went to a job whose subscriptions left");
  cr_expect_eq(pd_resume_jobs(), 0, "the cancelled job was not freed");
}

/* ---- 6: thousands of subscriptions waiting at once ----
 *
 * n clients each resume their own channel and one shared channel; the
 * confirmations then arrive one by one. The steps taken must grow like n,
 * not n * channels: 4x the clients, at most ~4x the steps. The same for the
 * subscriber link dropping and coming back under all of them. */
static void many(int n, uint64_t *confirm_steps, uint64_t *blip_steps)
{
  pid_t pid;
  int p[2];
  cr_assert(pipe(p) == 0);
  if ((pid = fork()) == 0) {
    world(1 << 20);
    for (int i = 0; i < n; i++) {
      struct pd_client *c = pd_client_new(&test_tp, -1, NULL, (uint64_t)i, 0);
      c->tp_state = calloc(1, sizeof(struct tlog));
      tlog(c)->rd = -1;
      char own[32];
      snprintf(own, sizeof own, "user:u%d", i);
      const char *chans[] = {own, "mission:shared"};
      subscribe(c, chans, 2, "1000-0");
    }
    uint64_t s0 = pd_resume_steps();
    fake_pump_sub(0);
    uint64_t s1 = pd_resume_steps();
    /* at most push.history_reads are out at once; each job gets its read */
    MUST(fake_reads_queued() <= PD_RESUME_READS);
    uint64_t r0 = fake_reads_done();
    while (fake_reads_queued())
      fake_answer_read(0);
    int reads = (int)(fake_reads_done() - r0);
    fake_pump_sub(0);
    uint64_t s2 = pd_resume_steps();
    fake_sub_down();
    fake_sub_up();
    fake_pump_sub(0);
    while (fake_reads_queued())
      fake_answer_read(0);
    fake_pump_sub(0);
    uint64_t out[3] = {s1 - s0, pd_resume_steps() - s2, (uint64_t)reads};
    if (write(p[1], out, sizeof out) != (ssize_t)sizeof out)
      _exit(2);
    _exit(pd_resume_jobs() == 0 ? 0 : 1);
  }
  close(p[1]);
  uint64_t out[3] = {0, 0, 0};
  cr_assert_eq(read(p[0], out, sizeof out), (ssize_t)sizeof out);
  close(p[0]);
  int st;
  waitpid(pid, &st, 0);
  cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "jobs left over with %d clients", n);
  cr_assert_eq(out[2], (uint64_t)n, "%llu reads for %d jobs", (unsigned long long)out[2], n);
  *confirm_steps = out[0];
  *blip_steps = out[1];
}

Test(scale, thousands_of_waiting_subscriptions_cost_linear_steps, .timeout = 120)
{
  uint64_t c1, b1, c4, b4;
  many(1000, &c1, &b1);
  many(4000, &c4, &b4);
  cr_expect(c4 <= c1 * 5, "confirmations: %llu steps for 1,000 clients, %llu for 4,000",
            (unsigned long long)c1, (unsigned long long)c4);
  cr_expect(b4 <= b1 * 5, "link blip: %llu steps for 1,000 clients, %llu for 4,000",
            (unsigned long long)b1, (unsigned long long)b4);
}

/* ---- the cost of one read ----
 *
 * A read looks at up to page + 1 entries of each channel it covers, so a
 * client on 64 channels asks for small pages: every read costs Redis about
 * the same whatever a client asks for. The 640 events of its backlog still
 * arrive, once each, in order, over several reads. */
Test(cost, a_read_over_many_channels_asks_for_a_small_page_and_misses_nothing)
{
  world(1 << 20);
  enum { NCH = 64, PER = 10 };
  static char names[NCH][32];
  const char *chans[NCH];
  static uint64_t all[NCH * PER];
  static const char *allch[NCH * PER];
  size_t nall = 0;
  for (int i = 0; i < NCH; i++) {
    snprintf(names[i], sizeof names[i], "market:M%d", i);
    chans[i] = names[i];
  }
  for (int k = 0; k < PER; k++)
    for (int i = 0; i < NCH; i++) {
      all[nall] = publish(chans[i]);
      allch[nall++] = chans[i];
    }
  struct pd_client *c = client(0);
  char id[48];
  subscribe(c, chans, NCH, id_of(0, id));
  uint32_t most = 0;
  int reads = 0;
  for (int i = 0; i < 10000 && (fake_sub_queued() || fake_reads_queued()); i++) {
    if (fake_reads_queued()) {
      cr_assert_eq(fake_read_nchannels(0), NCH);
      most = fake_read_limit(0) > most ? fake_read_limit(0) : most;
      reads++;
    }
    fake_settle(1);
    drain(c);
  }
  cr_assert_leq(most, 2000 / NCH, "a 64-channel read asked for pages of %u", most);
  cr_assert_geq(reads, (int)(NCH * PER / (2000 / NCH)), "only %d reads", reads);
  cr_assert(log_is_exact(tlog(c), NULL, 0, 1000000, all, nall, allch),
            "the backlog did not arrive whole, once, in order");
}

/* ---- 8: the read queue ----
 *
 * A user's history reads must not crowd Redis: at most PD_RESUME_READS are
 * out at once in a worker, one per client, and a job that read a page goes
 * to the back of the queue. A job cancelled while it waits there never
 * reaches Redis. */
Test(reads, one_client_reads_one_at_a_time_and_a_cancelled_wait_never_reaches_redis)
{
  world(1 << 20);
  const char *chans[] = {"mission:r1", "mission:r2", "mission:r3"};
  for (int k = 0; k < 3; k++)
    for (int i = 0; i < 3; i++)
      publish(chans[i]);
  struct pd_client *c = client(0);
  char id[48];
  for (int i = 0; i < 3; i++)
    subscribe(c, &chans[i], 1, id_of(0, id)); /* three jobs, as three WS subscribes */
  fake_pump_sub(0);
  cr_assert_eq(fake_reads_queued(), 1, "%zu reads of one client out at once",
               fake_reads_queued());
  cr_assert_eq(pd_resume_reads_queued(), 2);
  /* the other two leave before their turn: nothing of theirs is read */
  pd_resume_unsubscribe(pd_sub_find(c, chans[1]));
  pd_resume_unsubscribe(pd_sub_find(c, chans[2]));
  cr_assert_eq(pd_resume_reads_queued(), 0);
  uint64_t r0 = fake_reads_done();
  settle(c);
  cr_expect_eq(fake_reads_done() - r0, 1, "%llu reads for one job of one page",
               (unsigned long long)(fake_reads_done() - r0));
  cr_expect_eq(tlog(c)->n, 3, "%zu events for the one channel left", tlog(c)->n);
  cr_expect_eq(pd_resume_jobs(), 0);
  cr_expect_eq(pd_resume_reads_out(), 0);
}

Test(reads, a_many_page_backlog_takes_turns_with_everyone_else)
{
  world(1 << 20);
  enum { NCH = 64, PER = 40, NOTHERS = 8 };
  static char names[NCH][32];
  const char *big[NCH];
  for (int i = 0; i < NCH; i++) {
    snprintf(names[i], sizeof names[i], "market:B%d", i);
    big[i] = names[i];
  }
  for (int k = 0; k < PER; k++)
    for (int i = 0; i < NCH; i++)
      publish(big[i]);
  struct pd_client *abuser = client(0);
  char id[48];
  subscribe(abuser, big, NCH, id_of(0, id)); /* pages of 31: about 83 reads */
  fake_pump_sub(0);
  struct pd_client *others[NOTHERS];
  static char onames[NOTHERS][32];
  for (int i = 0; i < NOTHERS; i++) {
    snprintf(onames[i], sizeof onames[i], "user:o%d", i);
    const char *ch = onames[i];
    publish(ch);
    others[i] = client(0);
    subscribe(others[i], &ch, 1, id_of(0, id));
  }
  fake_pump_sub(0); /* their channels are in place: they wait for reads only */
  int abuser_reads = 0, most_out = 0, others_done_at = -1;
  for (int step = 0; step < 10000 && (fake_sub_queued() || fake_reads_queued()); step++) {
    int out = (int)fake_reads_queued(), big_out = 0;
    for (int i = 0; i < out; i++)
      big_out += fake_read_nchannels((size_t)i) == NCH;
    cr_assert_leq(big_out, 1, "%d reads of one client out at once", big_out);
    most_out = out > most_out ? out : most_out;
    if (fake_reads_queued() && fake_read_nchannels(0) == NCH)
      abuser_reads++;
    fake_settle(1);
    drain(abuser);
    int done = 0;
    for (int i = 0; i < NOTHERS; i++) {
      drain(others[i]);
      done += tlog(others[i])->caught_up;
    }
    if (done == NOTHERS && others_done_at < 0)
      others_done_at = abuser_reads;
  }
  cr_expect_leq(most_out, PD_RESUME_READS, "%d reads out at once", most_out);
  cr_expect_eq(tlog(abuser)->n, (size_t)(NCH * PER), "the big backlog arrived short: %zu",
               tlog(abuser)->n);
  /* everyone else was served while the big backlog had pages to go: within
   * a few of its reads, not after all of them */
  cr_expect(others_done_at >= 0 && others_done_at <= 3,
            "the others caught up after %d of the big client's %d reads", others_done_at,
            abuser_reads);
}
