/* lib/cfg.c: the config file, defaults, environment overrides and secret files. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cfg.h"

/* Files made by a test, removed after it (Criterion runs each test in its own
 * process, so these are per test). */
static char files[8][512];
static int nfiles;

static void clean_env(void)
{
  unsetenv("SORTIE_CONF");
  unsetenv("SORTIE_REDIS_PORT");
  unsetenv("SORTIE_REDIS_HOST");
}

static void remove_files(void)
{
  for (int i = 0; i < nfiles; i++)
    unlink(files[i]);
  nfiles = 0;
}

TestSuite(cfg, .init = clean_env, .fini = remove_files);

/* Writes `len` bytes to a new temp file; returns its path. */
static const char *write_file(const void *data, size_t len)
{
  cr_assert_lt(nfiles, 8);
  const char *dir = getenv("SORTIE_TEST_TMP");
  if (dir == NULL || *dir == '\0')
    dir = getenv("TMPDIR");
  if (dir == NULL || *dir == '\0')
    dir = "/tmp";
  char *path = files[nfiles];
  snprintf(path, sizeof files[0], "%s/sortie-cfg-XXXXXX", dir);
  int fd = mkstemp(path);
  cr_assert_geq(fd, 0, "mkstemp %s", path);
  nfiles++;
  cr_assert_eq(write(fd, data, len), (ssize_t)len);
  close(fd);
  return path;
}

static const char *conf(const char *text)
{
  return write_file(text, strlen(text));
}

static struct sortie_cfg c;
static char err[512];

static int load(const char *text)
{
  err[0] = '\0';
  return sortie_cfg_load(&c, conf(text), err, sizeof err);
}

Test(cfg, empty_file_gives_the_defaults)
{
  const char *path = conf("");
  cr_assert_eq(sortie_cfg_load(&c, path, err, sizeof err), 0, "%s", err);
  cr_expect_str_eq(c.redis_host, "127.0.0.1");
  cr_expect_eq(c.redis_port, 6379);
  cr_expect_str_eq(c.redis_prefix, "sortie:");
  cr_expect_str_eq(c.jwt_alg, "HS256");
  cr_expect_str_eq(c.jwt_secret_file, "/etc/sortie/jwt.secret");
  cr_expect_eq(c.jwt_leeway_s, 30);
  cr_expect_eq(c.api_body_max, 16384);
  cr_expect_eq(c.history_maxlen, 1000);
  cr_expect_eq(c.push_heartbeat_s, 15);
  cr_expect_eq(c.push_ping_s, 30);
  cr_expect_eq(c.push_max_channels, 64);
  cr_expect_eq(c.push_max_conn_per_user, 10);
  cr_expect_eq(c.push_max_message, 65536);
  cr_expect_str_eq(c.path, path);
  cr_expect_null(c.jwt_key);
}

Test(cfg, key_equals_value)
{
  cr_assert_eq(load("redis.port = 7000\nredis.host=10.0.0.5\n  log.level =   debug  \n"), 0, "%s",
               err);
  cr_expect_eq(c.redis_port, 7000);
  cr_expect_str_eq(c.redis_host, "10.0.0.5");
  cr_expect_str_eq(c.log_level, "debug");
}

Test(cfg, last_line_without_newline_counts)
{
  cr_assert_eq(load("redis.port = 7002"), 0, "%s", err);
  cr_expect_eq(c.redis_port, 7002);
}

Test(cfg, comments_and_blank_lines_are_ignored)
{
  cr_assert_eq(load("# a comment\n\n   \n\t# indented comment\nredis.port = 7001 # trailing\n"), 0,
               "%s", err);
  cr_expect_eq(c.redis_port, 7001);
}

Test(cfg, unknown_key_is_an_error_naming_the_line)
{
  cr_assert_eq(load("redis.port = 1\n\nredis.nope = 2\n"), -1);
  cr_expect(strstr(err, ":3:") != NULL, "err: %s", err);
  cr_expect(strstr(err, "redis.nope") != NULL, "err: %s", err);
}

Test(cfg, line_without_equals_is_an_error_naming_the_line)
{
  cr_assert_eq(load("redis.port 7000\n"), -1);
  cr_expect(strstr(err, ":1:") != NULL, "err: %s", err);
}

Test(cfg, int_out_of_range_is_an_error)
{
  cr_assert_eq(load("# ports\nredis.port = 70000\n"), -1);
  cr_expect(strstr(err, ":2:") != NULL, "err: %s", err);
  cr_expect(strstr(err, "redis.port") != NULL, "err: %s", err);
}

Test(cfg, int_bounds_are_inclusive)
{
  cr_assert_eq(load("redis.port = 65535\njwt.leeway_s = 0\n"), 0, "%s", err);
  cr_expect_eq(c.redis_port, 65535);
  cr_expect_eq(c.jwt_leeway_s, 0);
  cr_expect_eq(load("redis.port = 0\n"), -1);
  cr_expect_eq(load("redis.port = -1\n"), -1);
}

Test(cfg, int_that_is_not_a_number_is_an_error)
{
  const char *bad[] = {"redis.port = 12abc\n", "redis.port = \n", "redis.port = 1.5\n",
                       "redis.port = 99999999999999999999\n", "redis.port = 0x10\n"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    cr_expect_eq(load(bad[i]), -1, "accepted: %s", bad[i]);
}

Test(cfg, string_longer_than_its_field_is_an_error)
{
  char text[200] = "redis.prefix = ";
  memset(text + strlen(text), 'p', 64); /* the field holds 63 */
  cr_assert_eq(load(text), -1);
  cr_expect(strstr(err, "redis.prefix") != NULL, "err: %s", err);
}

Test(cfg, jwt_alg_must_be_hs256_or_rs256)
{
  cr_expect_eq(load("jwt.alg = none\n"), -1);
  cr_expect_eq(load("jwt.alg = hs256\n"), -1);
  cr_expect_eq(load("jwt.alg = RS256\n"), 0, "%s", err);
}

Test(cfg, missing_file_is_an_error_naming_it)
{
  cr_assert_eq(sortie_cfg_load(&c, "/nonexistent/sortie.conf", err, sizeof err), -1);
  cr_expect(strstr(err, "/nonexistent/sortie.conf") != NULL, "err: %s", err);
}

Test(cfg, environment_overrides_the_file)
{
  setenv("SORTIE_REDIS_PORT", "7100", 1);
  cr_assert_eq(load("redis.port = 7000\nredis.db = 3\n"), 0, "%s", err);
  cr_expect_eq(c.redis_port, 7100);
  cr_expect_eq(c.redis_db, 3);
}

Test(cfg, bad_environment_value_is_an_error_naming_the_variable)
{
  setenv("SORTIE_REDIS_PORT", "many", 1);
  cr_assert_eq(load(""), -1);
  cr_expect(strstr(err, "SORTIE_REDIS_PORT") != NULL, "err: %s", err);
}

Test(cfg, sortie_conf_selects_the_file)
{
  const char *a = conf("redis.port = 7201\n");
  setenv("SORTIE_CONF", a, 1);
  cr_assert_eq(sortie_cfg_load(&c, NULL, err, sizeof err), 0, "%s", err);
  cr_expect_eq(c.redis_port, 7201);
  cr_expect_str_eq(c.path, a);
}

/* A program's -c names its file even when SORTIE_CONF is set (cron's -c wins). */
Test(cfg, an_explicit_path_wins_over_sortie_conf)
{
  const char *a = conf("redis.port = 7201\n");
  const char *b = conf("redis.port = 7202\n");
  setenv("SORTIE_CONF", a, 1);
  cr_assert_eq(sortie_cfg_load(&c, b, err, sizeof err), 0, "%s", err);
  cr_expect_eq(c.redis_port, 7202);
  cr_expect_str_eq(c.path, b);
}

Test(cfg, set_one_key_as_the_file_would)
{
  cr_assert_eq(load(""), 0, "%s", err);
  cr_expect_eq(sortie_cfg_set(&c, "push.workers", "8", err, sizeof err), 0);
  cr_expect_eq(c.push_workers, 8);
  cr_expect_eq(sortie_cfg_set(&c, "push.workers", "65", err, sizeof err), -1);
  cr_expect_eq(c.push_workers, 8);
  cr_expect_eq(sortie_cfg_set(&c, "no.such", "1", err, sizeof err), -1);
}

/* A comment line is a comment whatever its length. */
Test(cfg, long_comment_line_is_ignored)
{
  size_t n = 3000;
  char *text = malloc(n + 64);
  cr_assert_not_null(text);
  memset(text, 'x', n);
  text[0] = '#';
  strcpy(text + n, "\nredis.port = 7003\n");
  int rc = load(text);
  free(text);
  cr_assert_eq(rc, 0, "err: %s", err);
  cr_expect_eq(c.redis_port, 7003);
}

/* ---- secrets ---- */

static int secrets_from(const void *data, size_t len)
{
  cr_assert_eq(load(""), 0, "%s", err);
  const char *path = write_file(data, len);
  cr_assert_eq(sortie_cfg_set(&c, "jwt.secret_file", path, err, sizeof err), 0);
  err[0] = '\0';
  return sortie_cfg_load_secrets(&c, err, sizeof err);
}

Test(cfg, secret_of_40_bytes_is_loaded)
{
  const char *s = "0123456789abcdef0123456789abcdef01234567";
  cr_assert_eq(secrets_from(s, 40), 0, "%s", err);
  cr_assert_eq(c.jwt_key_len, 40);
  cr_assert_eq(memcmp(c.jwt_key, s, 40), 0);
  sortie_cfg_free(&c);
  cr_expect_null(c.jwt_key);
  cr_expect_eq(c.jwt_key_len, 0);
}

Test(cfg, secret_shorter_than_32_bytes_is_refused)
{
  cr_assert_eq(secrets_from("0123456789abcdef0123456789abcde", 31), -1);
  cr_expect(strstr(err, "32") != NULL, "err: %s", err);
  cr_expect_null(c.jwt_key);
}

Test(cfg, secret_of_exactly_32_bytes_is_enough)
{
  cr_assert_eq(secrets_from("0123456789abcdef0123456789abcdef", 32), 0, "%s", err);
  cr_expect_eq(c.jwt_key_len, 32);
  sortie_cfg_free(&c);
}

Test(cfg, trailing_newline_is_stripped_from_the_secret)
{
  cr_assert_eq(secrets_from("0123456789abcdef0123456789abcdef0123\r\n", 38), 0, "%s", err);
  cr_expect_eq(c.jwt_key_len, 36);
  cr_expect_eq(c.jwt_key[35], '3');
  sortie_cfg_free(&c);
}

Test(cfg, newline_does_not_count_towards_32_bytes)
{
  cr_assert_eq(secrets_from("0123456789abcdef0123456789abcde\n", 32), -1);
}

Test(cfg, missing_secret_file_is_an_error)
{
  cr_assert_eq(load(""), 0, "%s", err);
  cr_assert_eq(sortie_cfg_set(&c, "jwt.secret_file", "/nonexistent/jwt.secret", err, sizeof err),
               0);
  cr_assert_eq(sortie_cfg_load_secrets(&c, err, sizeof err), -1);
  cr_expect(strstr(err, "/nonexistent/jwt.secret") != NULL, "err: %s", err);
}

Test(cfg, rs256_without_a_public_key_file_is_an_error)
{
  cr_assert_eq(load("jwt.alg = RS256\n"), 0, "%s", err);
  cr_assert_eq(sortie_cfg_load_secrets(&c, err, sizeof err), -1);
  cr_expect(strstr(err, "public_key_file") != NULL, "err: %s", err);
}

Test(cfg, redis_password_file_is_read_without_its_newline)
{
  const char *pw = write_file("s3cret\n", 7);
  cr_assert_eq(secrets_from("0123456789abcdef0123456789abcdef", 32), 0, "%s", err);
  cr_assert_eq(sortie_cfg_set(&c, "redis.password_file", pw, err, sizeof err), 0);
  cr_assert_eq(sortie_cfg_load_secrets(&c, err, sizeof err), 0, "%s", err);
  cr_assert_str_eq(c.redis_password, "s3cret");
  sortie_cfg_free(&c);
}
