/* Memory and growable byte buffers shared by every Sortie program.
 *
 * Out-of-memory policy (the one for the whole project): allocation failure is not
 * recoverable in a request handler or an event loop, so the x* allocators log and
 * abort(), the way Redis's zmalloc does. Nothing else in Sortie checks for NULL from
 * them. */
#ifndef SORTIE_BUF_H
#define SORTIE_BUF_H

#include <stdarg.h>
#include <stddef.h>

/** malloc/realloc/strdup that never return NULL (abort on exhaustion). */
void *sortie_xmalloc(size_t n);
void *sortie_xcalloc(size_t n, size_t size);
void *sortie_xrealloc(void *p, size_t n);
char *sortie_xstrdup(const char *s);
char *sortie_xstrndup(const char *s, size_t n);

/** A byte slice: pointer + length, never NUL-terminated by contract. */
struct sortie_iovec {
  const char *base;
  size_t len;
};

/** A growable buffer. `base` is always NUL-terminated (at base[len]) so it can be
 * handed to C string APIs, but its length is `len`; bytes may contain NUL.
 * The buffer owns `base`; sortie_buf_free() releases it. A zeroed struct is an
 * empty, valid buffer. */
struct sortie_buf {
  char *base;
  size_t len;
  size_t cap;
};

/** Makes room for at least `n` more bytes; returns a pointer to base + len. */
char *sortie_buf_reserve(struct sortie_buf *b, size_t n);
/** Appends `n` bytes from `p` (copied; the caller keeps `p`). */
void sortie_buf_append(struct sortie_buf *b, const void *p, size_t n);
void sortie_buf_puts(struct sortie_buf *b, const char *s);
void sortie_buf_putc(struct sortie_buf *b, char c);
void sortie_buf_printf(struct sortie_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void sortie_buf_vprintf(struct sortie_buf *b, const char *fmt, va_list ap);
/** Empties the buffer and keeps its memory. */
void sortie_buf_reset(struct sortie_buf *b);
/** Releases the memory; the buffer is empty and valid afterwards. */
void sortie_buf_free(struct sortie_buf *b);
/** Hands `base` to the caller (who frees it) and leaves the buffer empty. */
char *sortie_buf_steal(struct sortie_buf *b, size_t *len);

#endif
