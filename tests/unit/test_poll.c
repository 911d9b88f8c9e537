/* Long-poll clients (pushd/poll.c) against the scripted fake of the Redis
 * side (fake_bus.c): a poll whose client is closed before libmicrohttpd is
 * done with its request must wake the request and take itself out of it, so
 * the request is answered (503, ask again) instead of staying suspended with
 * a pointer to a freed client. No libmicrohttpd runs here: the request is a
 * dummy pointer and the wake is recorded.
 * A waiting poll whose client hangs up is answered at once (its socket is a
 * socketpair end here), and one whose client sends a byte is not. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "channel.h"
#include "clients.h"
#include "fake_bus.h"
#include "resume.h"
#include "transport.h"

static struct sortie_loop *loop;
static struct sortie_cfg cfg;
static int wakes;
static struct MHD_Connection *woken;

static void fake_wake(struct MHD_Connection *mhd)
{
  wakes++;
  woken = mhd;
}

static void world(size_t outbuf_max)
{
  loop = sortie_loop_new();
  cr_assert_not_null(loop);
  memset(&cfg, 0, sizeof cfg);
  cfg.push_outbuf_max = (int)outbuf_max;
  cfg.push_max_conn_per_user = 1000000;
  fake_reset();
  pd_clients_init(loop, &cfg, 0);
  pd_resume_init(0);
  wakes = 0;
  woken = NULL;
}

static struct pd_client *poll_peer(const char *channel, const char *cursor,
                                   struct pd_client **slot, int peer_fd)
{
  static char ch[64];
  snprintf(ch, sizeof ch, "%s", channel);
  char *chans[] = {ch};
  struct pd_stream_req r = {.fd = -1,
                            .channels = chans,
                            .nchannels = 1,
                            .cursor = cursor,
                            .serial = 1,
                            .mhd = (struct MHD_Connection *)&wakes, /* any non-NULL */
                            .peer_fd = peer_fd,
                            .timeout_s = 30,
                            .wake = fake_wake,
                            .slot = slot};
  *slot = pd_poll_transport.start(&r);
  return *slot;
}

static struct pd_client *poll_on(const char *channel, const char *cursor,
                                 struct pd_client **slot)
{
  return poll_peer(channel, cursor, slot, -1);
}

Test(poll, closed_before_its_request_is_done_it_wakes_the_request_and_leaves_it)
{
  world(1 << 20);
  struct pd_client *slot;
  cr_assert_not_null(poll_on("mission:a", "", &slot));
  fake_settle(100);
  sortie_loop_turn(loop, 0);
  cr_assert_eq(wakes, 0, "woken with nothing to say");
  pd_client_close(slot, "test");
  sortie_loop_turn(loop, 0);
  cr_assert_eq(wakes, 1, "the request was not woken");
  cr_assert_eq(woken, (struct MHD_Connection *)&wakes);
  cr_assert_null(slot, "the request still points at the freed client");
}

/* The way it happens: a poll resuming from a cursor, its history read still
 * out, while live events pile up past push.outbuf_max: the daemon cuts the
 * client off as a slow consumer. */
Test(poll, cut_off_while_resuming_it_wakes_the_request_and_leaves_it)
{
  world(4096);
  uint64_t first = fake_publish("mission:b");
  char cur[48];
  snprintf(cur, sizeof cur, "1000-%llu", (unsigned long long)first);
  struct pd_client *slot;
  cr_assert_not_null(poll_on("mission:b", cur, &slot));
  /* the channel is subscribed; the history read goes out and stays out */
  for (int i = 0; i < 10 && fake_reads_queued() == 0; i++) {
    fake_pump_sub(0);
    sortie_loop_turn(loop, 0);
  }
  cr_assert_eq(fake_reads_queued(), 1, "no history read went out");
  for (int i = 0; i < 200 && slot; i++) {
    fake_publish("mission:b");
    fake_pump_sub(0);
    sortie_loop_turn(loop, 0);
  }
  cr_assert_null(slot, "the poll was never cut off (or the request kept it)");
  cr_assert_eq(wakes, 1, "the request was woken %d times", wakes);
}

Test(poll, a_hangup_of_its_client_answers_it_at_once_a_byte_does_not)
{
  world(1 << 20);
  int sv[2];
  cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
  struct pd_client *slot;
  cr_assert_not_null(poll_peer("mission:h", "", &slot, sv[0]));
  fake_settle(100);
  sortie_loop_turn(loop, 0);
  cr_assert_eq(wakes, 0, "woken with nothing to say");
  /* a pipelined byte is not a hangup, and stays unread for libmicrohttpd */
  cr_assert_eq(write(sv[1], "G", 1), 1);
  sortie_loop_turn(loop, 0);
  cr_assert_eq(wakes, 0, "a byte from the client answered the poll");
  close(sv[1]);
  sortie_loop_turn(loop, 0);
  cr_assert_eq(wakes, 1, "the client hung up and the poll still waits");
  char b;
  cr_assert_eq(read(sv[0], &b, 1), 1, "the poll read the client's byte");
  /* the request is done: libmicrohttpd ends it, the client goes */
  pd_poll_finished(slot);
  sortie_loop_turn(loop, 0);
  close(sv[0]);
}
