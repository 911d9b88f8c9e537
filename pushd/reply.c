/* Short answers through libmicrohttpd (reply.h). */
#include "reply.h"
#include "buf.h"
#include "json.h"
#include "metrics.h"

#include <microhttpd.h>
#include <string.h>

static const char *problem_base = "";

void pd_reply_init(const char *base)
{
  problem_base = base;
}

int pd_reply(struct MHD_Connection *conn, unsigned status, const char *ctype, const char *body,
             size_t len, const char *origin)
{
  struct MHD_Response *rs =
      MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
  if (rs == NULL)
    return MHD_NO;
  MHD_add_response_header(rs, "Content-Type", ctype);
  MHD_add_response_header(rs, "Cache-Control", "no-store");
  MHD_add_response_header(rs, "X-Content-Type-Options", "nosniff");
  if (origin && *origin) {
    MHD_add_response_header(rs, "Access-Control-Allow-Origin", origin);
    MHD_add_response_header(rs, "Access-Control-Allow-Credentials", "true");
    MHD_add_response_header(rs, "Vary", "Origin");
  }
  if (status == 401)
    MHD_add_response_header(rs, "WWW-Authenticate", "Bearer realm=\"sortie\"");
  if (status == 405)
    MHD_add_response_header(rs, "Allow", "GET, HEAD");
  if (status == 426)
    MHD_add_response_header(rs, "Sec-WebSocket-Version", "13");
  if (status == 429 || status == 503)
    MHD_add_response_header(rs, "Retry-After", "5");
  enum MHD_Result ok = MHD_queue_response(conn, status, rs);
  MHD_destroy_response(rs);
  return ok;
}

int pd_reply_problem(struct MHD_Connection *conn, unsigned status, const char *slug,
                     const char *title, const char *detail, const char *origin)
{
  struct sortie_buf b = {0};
  sortie_buf_printf(&b, "{\"type\":\"%s%s\",\"title\":\"%s\",\"status\":%u,\"detail\":",
                    problem_base, slug, title, status);
  sortie_json_quote(&b, detail, strlen(detail));
  sortie_buf_putc(&b, '}');
  pd_stats_self()->refused++;
  int r = pd_reply(conn, status, "application/problem+json", b.base, b.len, origin);
  sortie_buf_free(&b);
  return r;
}
