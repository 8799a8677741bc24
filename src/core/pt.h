/* Project-wide basics: the return-code vocabulary, likely/unlikely, small helpers.
 * Every module includes this first; it depends on nothing but libc. */
#ifndef PT_H
#define PT_H

#include <stddef.h>
#include <stdint.h>

/* Return codes. Functions returning int answer PT_OK (0), a positive count, or one of these. */
#define PT_OK     0
#define PT_ERR    (-1) /* generic failure; details logged by the caller that knows context */
#define PT_EAGAIN (-2) /* would block / need more input */
#define PT_EDONE  (-3) /* the stream or message ended */
#define PT_ENOMEM (-4)

#define PT_LIKELY(x)    __builtin_expect(!!(x), 1)
#define PT_UNLIKELY(x)  __builtin_expect(!!(x), 0)
#define PT_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
/* Intrusive doubly linked lists: <head> is the list's first-node pointer, <n> a node linked
 * through its fields <prev> and <next> (arguments are evaluated more than once: plain lvalues
 * only). PT_DLIST_PUSH puts <n> first; PT_DLIST_UNLINK takes it out and clears its links. */
#define PT_DLIST_PUSH(head, n, prev, next)                                                         \
    do {                                                                                           \
        (n)->prev = NULL;                                                                          \
        (n)->next = (head);                                                                        \
        if (head)                                                                                  \
            (head)->prev = (n);                                                                    \
        (head) = (n);                                                                              \
    } while (0)
#define PT_DLIST_UNLINK(head, n, prev, next)                                                       \
    do {                                                                                           \
        if ((n)->prev)                                                                             \
            (n)->prev->next = (n)->next;                                                           \
        else                                                                                       \
            (head) = (n)->next;                                                                    \
        if ((n)->next)                                                                             \
            (n)->next->prev = (n)->prev;                                                           \
        (n)->prev = (n)->next = NULL;                                                              \
    } while (0)
/* The same with a last-node pointer <tail> too (a queue): PT_DQUEUE_PUSH puts <n> first,
 * PT_DQUEUE_APPEND last, PT_DQUEUE_UNLINK takes it out. */
#define PT_DQUEUE_PUSH(head, tail, n, prev, next)                                                  \
    do {                                                                                           \
        if (!(head))                                                                               \
            (tail) = (n);                                                                          \
        PT_DLIST_PUSH(head, n, prev, next);                                                        \
    } while (0)
#define PT_DQUEUE_APPEND(head, tail, n, prev, next)                                                \
    do {                                                                                           \
        (n)->next = NULL;                                                                          \
        (n)->prev = (tail);                                                                        \
        if (tail)                                                                                  \
            (tail)->next = (n);                                                                    \
        else                                                                                       \
            (head) = (n);                                                                          \
        (tail) = (n);                                                                              \
    } while (0)
#define PT_DQUEUE_UNLINK(head, tail, n, prev, next)                                                \
    do {                                                                                           \
        if ((tail) == (n))                                                                         \
            (tail) = (n)->prev;                                                                    \
        PT_DLIST_UNLINK(head, n, prev, next);                                                      \
    } while (0)
#define PT_MIN(a, b)                       ((a) < (b) ? (a) : (b))
#define PT_MAX(a, b)                       ((a) > (b) ? (a) : (b))
#define PT_CONTAINER_OF(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* Half of <n>, rounded up: what a trim that goes in steps frees of an unused surplus. */
static inline uint32_t
pt_half_up(uint32_t n)
{
    return n - n / 2;
}

/* Allocation that aborts on failure: a proxy that cannot get a few hundred bytes is done. */
void *pt_malloc(size_t n);
void *pt_calloc(size_t n, size_t sz);
void *pt_realloc(void *p, size_t n);
char *pt_strdup(const char *s);
char *pt_strndup(const char *s, size_t n);

/* Formats a message into err[0..errlen) (nothing when err is NULL or errlen 0): the error
 * contract of functions that take (char *err, size_t errlen). */
void pt_seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
