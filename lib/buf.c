/* Allocation with the abort-on-OOM policy, and the growable buffer. */
#include "buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void oom(size_t n)
{
  fprintf(stderr, "sortie: out of memory allocating %zu bytes\n", n);
  abort();
}

void *sortie_xmalloc(size_t n)
{
  void *p = malloc(n ? n : 1);
  if (p == NULL)
    oom(n);
  return p;
}

void *sortie_xcalloc(size_t n, size_t size)
{
  void *p = calloc(n ? n : 1, size ? size : 1);
  if (p == NULL)
    oom(n * size);
  return p;
}

void *sortie_xrealloc(void *p, size_t n)
{
  void *q = realloc(p, n ? n : 1);
  if (q == NULL)
    oom(n);
  return q;
}

char *sortie_xstrdup(const char *s)
{
  return sortie_xstrndup(s, strlen(s));
}

char *sortie_xstrndup(const char *s, size_t n)
{
  char *p = sortie_xmalloc(n + 1);
  memcpy(p, s, n);
  p[n] = '\0';
  return p;
}

char *sortie_buf_reserve(struct sortie_buf *b, size_t n)
{
  if (b->cap - b->len <= n || b->base == NULL) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len <= n)
      cap *= 2;
    b->base = sortie_xrealloc(b->base, cap);
    b->cap = cap;
    b->base[b->len] = '\0';
  }
  return b->base + b->len;
}

void sortie_buf_append(struct sortie_buf *b, const void *p, size_t n)
{
  char *dst = sortie_buf_reserve(b, n);
  if (n)
    memcpy(dst, p, n);
  b->len += n;
  b->base[b->len] = '\0';
}

void sortie_buf_puts(struct sortie_buf *b, const char *s)
{
  sortie_buf_append(b, s, strlen(s));
}

void sortie_buf_putc(struct sortie_buf *b, char c)
{
  sortie_buf_append(b, &c, 1);
}

void sortie_buf_vprintf(struct sortie_buf *b, const char *fmt, va_list ap)
{
  va_list ap2;
  va_copy(ap2, ap);
  char *dst = sortie_buf_reserve(b, 128);
  int n = vsnprintf(dst, b->cap - b->len, fmt, ap);
  if (n >= 0 && (size_t)n >= b->cap - b->len) {
    dst = sortie_buf_reserve(b, (size_t)n + 1);
    n = vsnprintf(dst, b->cap - b->len, fmt, ap2);
  }
  va_end(ap2);
  if (n > 0)
    b->len += (size_t)n;
  b->base[b->len] = '\0';
}

void sortie_buf_printf(struct sortie_buf *b, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  sortie_buf_vprintf(b, fmt, ap);
  va_end(ap);
}

void sortie_buf_reset(struct sortie_buf *b)
{
  b->len = 0;
  if (b->base)
    b->base[0] = '\0';
}

void sortie_buf_free(struct sortie_buf *b)
{
  free(b->base);
  b->base = NULL;
  b->len = b->cap = 0;
}

char *sortie_buf_steal(struct sortie_buf *b, size_t *len)
{
  char *p = b->base;
  if (p == NULL)
    p = sortie_xstrdup("");
  if (len)
    *len = b->len;
  b->base = NULL;
  b->len = b->cap = 0;
  return p;
}
