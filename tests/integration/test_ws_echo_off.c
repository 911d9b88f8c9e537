/* GET /echo (the WebSocket echo for conformance suites) is off unless
 * push.ws_echo = 1: this world leaves it at its default, and the path is a
 * 404 like any unknown one. test_ws_conformance.c runs with it on. */
#include "test_pushd_util.h"

Test(echo_off, echo_is_404_when_push_ws_echo_is_unset)
{
  struct ws_client *c = ws_open(world_push_base(), "/echo", NULL, NULL, 0, T_SHORT);
  cr_assert_not_null(c, "no answer on /echo");
  cr_assert_eq(c->status, 404, "/echo answered %d with push.ws_echo unset", c->status);
  ws_close(c);
  /* with a token too, and as a plain GET */
  char *tok = token_for(uniq("u"), "user");
  c = ws_open(world_push_base(), "/echo", tok, NULL, 0, T_SHORT);
  cr_assert(c && c->status == 404, "/echo with a token answered %d", c ? c->status : 0);
  ws_close(c);
  struct pc_resp r;
  cr_assert_eq(pd_get("/echo", NULL, NULL, &r, T_SHORT), 0);
  cr_assert_eq(r.status, 404);
  pc_resp_free(&r);
  free(tok);
}
