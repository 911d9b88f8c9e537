/* One of the daemon's two Redis links lost in the middle of resumes: 40 SSE
 * clients come back with a cursor 1,200 events behind, through small socket
 * buffers, so their resumes go page by page. While they are at it the
 * subscriber link is killed (CLIENT KILL TYPE pubsub), later the command
 * link alone (found by the daemon's own sockets), and events keep being
 * published throughout. Every client must end with every acknowledged
 * event once, in order. One line on stderr, "COUNTS links: ...", carries
 * the figures. */
#include <dirent.h>
#include <sys/types.h>
#include <unistd.h>

#include "../integration/test_pushd_util.h"

SORTIE_WORLD_CONF("push.workers = 1\n"
                  "push.outbuf_max = 1048576\n"
                  "history.maxlen = 5000\n");

#define NCL 40
#define BACKLOG 1200
#define LIVE 20 /* events per live batch; three batches */

/* The Redis client ids of the daemon's connections: its sockets (by inode)
 * matched to /proc/net/tcp for their local ports, then to CLIENT LIST by
 * address. pubsub: 1 for the subscriber link, 0 for the command link.
 * Returns how many were found (at most max). */
static int daemon_links(int pubsub, long long *ids, int max)
{
  long pid = pushd_worker_pid();
  char path[512];
  snprintf(path, sizeof path, "/proc/%ld/fd", pid);
  unsigned long inodes[4096];
  int ni = 0;
  DIR *d = opendir(path);
  for (struct dirent *e; d && (e = readdir(d)) && ni < 4096;) {
    char l[1024], t[128];
    snprintf(l, sizeof l, "%s/%s", path, e->d_name);
    ssize_t n = readlink(l, t, sizeof t - 1);
    if (n <= 0)
      continue;
    t[n] = '\0';
    unsigned long ino;
    if (sscanf(t, "socket:[%lu]", &ino) == 1)
      inodes[ni++] = ino;
  }
  if (d)
    closedir(d);
  int ports[64], np = 0;
  FILE *f = fopen("/proc/net/tcp", "r");
  char line[512];
  while (f && fgets(line, sizeof line, f) && np < 64) {
    unsigned lport, rport;
    unsigned long ino;
    if (sscanf(line, " %*d: %*8X:%X %*8X:%X %*X %*X:%*X %*X:%*X %*X %*d %*d %lu", &lport,
               &rport, &ino) != 3)
      continue;
    if ((int)rport != world_redis_port())
      continue;
    for (int i = 0; i < ni; i++)
      if (inodes[i] == ino)
        ports[np++] = (int)lport;
  }
  if (f)
    fclose(f);
  const char *av[] = {"CLIENT", "LIST"};
  char *list = rstr(2, av);
  int n = 0;
  for (char *p = list ? strtok(list, "\n") : NULL; p && n < max; p = strtok(NULL, "\n")) {
    const char *a = strstr(p, " addr=127.0.0.1:");
    const char *fl = strstr(p, " flags=");
    if (a == NULL || fl == NULL)
      continue;
    int port = atoi(a + 16);
    int is_sub = strchr(fl + 7, 'P') && strchr(fl + 7, 'P') < strchr(fl + 7, ' ');
    for (int i = 0; i < np; i++)
      if (ports[i] == port && is_sub == pubsub)
        ids[n++] = atoll(p + 3); /* "id=..." */
  }
  free(list);
  return n;
}

static int kill_id(long long id)
{
  char s[32];
  snprintf(s, sizeof s, "%lld", id);
  const char *av[] = {"CLIENT", "KILL", "ID", s};
  return (int)rinteger(4, av);
}

struct rec {
  int seq[BACKLOG + 4 * LIVE];
  size_t n;
  char last_id[64]; /* for Last-Event-ID when the stream must be opened again */
  char *path, *token;
  int reopened;
};

static void take(struct sse_client *c, struct rec *r, int *foreign)
{
  for (size_t i = 0; i < c->nmsgs; i++) {
    const char *d = c->msgs[i].data;
    if (c->msgs[i].id)
      snprintf(r->last_id, sizeof r->last_id, "%s", c->msgs[i].id);
    if (d == NULL)
      continue;
    const char *p = strstr(d, "\"data\":{\"k\":");
    if (p == NULL || r->n >= sizeof r->seq / sizeof r->seq[0]) {
      static int shown;
      if (!shown++)
        fprintf(stderr, "links: not a probe: %s\n", d);
      (*foreign)++;
      continue;
    }
    r->seq[r->n++] = atoi(p + 12);
  }
  sse_forget(c);
}

/* reads every client for ms milliseconds, round robin, slowly: one read of
 * at most the socket's 4 KiB buffer per client every 5 ms, so that a resume
 * of the backlog takes seconds */
static void read_all(struct sse_client **c, struct rec *r, int *foreign, int ms)
{
  long long end = pc_now() + ms;
  while (pc_now() < end) {
    for (int i = 0; i < NCL; i++) {
      sse_read_now(c[i]);
      take(c[i], &r[i], foreign);
      if (c[i]->closed) {
        /* as a browser does: open again from the last id it got */
        sse_close(c[i]);
        c[i] = sse_open(world_push_base(), r[i].path, r[i].token, r[i].last_id, NULL, 4096,
                        T_LONG);
        r[i].reopened++;
        if (c[i] == NULL) /* counted as lost at the end */
          c[i] = sse_open(world_push_base(), r[i].path, r[i].token, r[i].last_id, NULL, 4096,
                          T_LONG);
      }
    }
    pc_sleep_ms(5);
  }
}

/* an event of about 2 KiB: the backlog is far more than socket buffers hold */
static int publish_k(const char *ch, int k)
{
  char d[2200];
  snprintf(d, sizeof d, "{\"k\":%d,\"pad\":\"%02000d\"}", k, 0);
  char *id = publish_id(ch, "fault_probe", d);
  free(id);
  return id != NULL;
}

Test(links, one_link_lost_in_the_middle_of_resumes_loses_nothing, .timeout = 180)
{
  char ch[128];
  snprintf(ch, sizeof ch, "mission:%s", uniq("LINKS"));
  char *cur = cursor_now(ch);
  static uint8_t acked[BACKLOG + 4 * LIVE];
  int k = 0, nacked = 0;
  for (; k < BACKLOG; k++)
    nacked += acked[k] = (uint8_t)publish_k(ch, k);
  cr_assert_eq(nacked, BACKLOG, "the backlog could not be published");

  static struct rec r[NCL];
  struct sse_client *c[NCL];
  int foreign = 0;
  for (int i = 0; i < NCL; i++) {
    char *user = strf("links-user-%d", i);
    r[i].token = token_for(user, "user");
    r[i].path = strf("/events?channels=%s&cursor=%s", ch, cur);
    c[i] = sse_open(world_push_base(), r[i].path, r[i].token, NULL, NULL, 4096, T_LONG);
    free(user);
    cr_assert(c[i] && c[i]->status == 200, "stream %d refused", i);
  }
  /* the resumes are under way, held back by clients that do not read yet */
  pc_sleep_ms(300);
  for (int j = 0; j < LIVE; j++, k++)
    nacked += acked[k] = (uint8_t)publish_k(ch, k);

  long long sub_id[4], cmd_id[4];
  int nsub = daemon_links(1, sub_id, 4);
  int ncmd = daemon_links(0, cmd_id, 4);
  cr_assert_eq(nsub, 1, "found %d subscriber links of the daemon", nsub);
  cr_assert_eq(ncmd, 1, "found %d command links of the daemon", ncmd);

  size_t least = r[0].n, most = r[0].n;
  for (int i = 1; i < NCL; i++) {
    least = r[i].n < least ? r[i].n : least;
    most = r[i].n > most ? r[i].n : most;
  }
  /* 1: the subscriber link, while live events keep coming */
  cr_assert_eq(kill_id(sub_id[0]), 1);
  size_t at_sub_kill = least;
  for (int j = 0; j < LIVE; j++, k++)
    nacked += acked[k] = (uint8_t)publish_k(ch, k);
  read_all(c, r, &foreign, 600);

  /* 2: the command link alone, while history pages are being read */
  size_t at_cmd_kill = r[0].n;
  for (int i = 1; i < NCL; i++)
    at_cmd_kill = r[i].n < at_cmd_kill ? r[i].n : at_cmd_kill;
  ncmd = daemon_links(0, cmd_id, 4);
  cr_assert_eq(ncmd, 1, "found %d command links of the daemon", ncmd);
  cr_assert_eq(kill_id(cmd_id[0]), 1);
  for (int j = 0; j < LIVE; j++, k++)
    nacked += acked[k] = (uint8_t)publish_k(ch, k);

  /* everything arrives: read until every client has every acked event */
  long long deadline = pc_now() + 30000;
  for (;;) {
    read_all(c, r, &foreign, 200);
    int done = 1;
    for (int i = 0; i < NCL && done; i++)
      done = r[i].n >= (size_t)nacked;
    if (done || pc_now() > deadline)
      break;
  }
  /* and nothing more: a marker event (one more k) published now, read up to
   * it by every client; a duplicate or a stray before it is counted below
   * however late it came (no quiet window). 30 s: a bound against a hang */
  int marker = k;
  nacked += acked[k] = (uint8_t)publish_k(ch, k);
  k++;
  deadline = pc_now() + 30000;
  for (;;) {
    read_all(c, r, &foreign, 200);
    int done = 1;
    for (int i = 0; i < NCL && done; i++)
      done = r[i].n > 0 && r[i].seq[r[i].n - 1] == marker;
    if (done || pc_now() > deadline)
      break;
  }

  long lost = 0, dup = 0, disorder = 0;
  int complete = 0, closed = 0, reopened = 0;
  for (int i = 0; i < NCL; i++) {
    closed += c[i]->closed;
    reopened += r[i].reopened;
    if (r[i].n < (size_t)nacked)
      fprintf(stderr, "links: client %d has %zu of %d%s\n", i, r[i].n, nacked,
              c[i]->closed ? " (stream ended)" : "");
  }
  for (int i = 0; i < NCL; i++) {
    static uint8_t got[BACKLOG + 4 * LIVE];
    memset(got, 0, sizeof got);
    int last = -1, l = 0;
    for (size_t j = 0; j < r[i].n; j++) {
      int s = r[i].seq[j];
      if (s < 0 || s >= k) {
        foreign++;
        continue;
      }
      if (got[s])
        dup++;
      else if (s < last)
        disorder++;
      got[s] = 1;
      last = s > last ? s : last;
    }
    for (int s = 0; s < k; s++)
      l += acked[s] && !got[s];
    lost += l;
    complete += l == 0;
  }
  fprintf(stderr,
          "COUNTS links: clients=%d published=%d acked=%d backlog=%d clients_complete=%d "
          "lost=%ld dup=%ld disorder=%ld foreign=%d closed=%d reopened=%d received_before_sub_kill=%zu..%zu "
          "received_before_cmd_kill>=%zu\n",
          NCL, k, nacked, BACKLOG, complete, lost, dup, disorder, foreign, closed, reopened, at_sub_kill, most,
          at_cmd_kill);
  /* the faults came in the middle: no client had everything at either kill */
  cr_expect_lt(most, (size_t)BACKLOG, "a resume had finished before the subscriber link died");
  cr_expect_lt(at_cmd_kill, (size_t)BACKLOG, "every resume had finished before the command link died");
  cr_expect_eq(lost, 0);
  cr_expect_eq(dup, 0);
  cr_expect_eq(disorder, 0);
  cr_expect_eq(foreign, 0);
  cr_expect_eq(closed, 0, "%d streams ended", closed);
  for (int i = 0; i < NCL; i++) {
    sse_close(c[i]);
    free(r[i].path);
    free(r[i].token);
  }
  free(cur);
}
