/* Logging that never blocks a worker. The error log and the access log are written by one
 * writer thread; workers append formatted lines to their own lock-free ring (single producer,
 * single consumer) and drop (and count) a line when the ring is full rather than wait. */
#ifndef PT_LOG_H
#define PT_LOG_H

#include "core/pt.h"

#include <stdbool.h>
#include <stdint.h>

enum log_level { LOG_ERROR = 0, LOG_WARN, LOG_INFO, LOG_DEBUG };

/* One finished request, as the access log records it. Strings are not NUL-terminated. */
struct log_access {
    const char *client; /* "127.0.0.1" or "::1" */
    uint32_t client_len;
    const char *method;
    uint32_t method_len;
    const char *target;
    uint32_t target_len;
    uint8_t version_minor;
    bool h2; /* HTTP/2: logged as HTTP/2.0 */
    int status;
    uint64_t bytes_sent; /* response bytes written to the client, head included */
    const char *host;
    uint32_t host_len;
    const char *referer;
    uint32_t referer_len;
    const char *user_agent;
    uint32_t user_agent_len;
    const char *upstream; /* "127.0.0.1:9000", or NULL when no upstream was used */
    uint32_t upstream_len;
    int64_t upstream_us; /* request sent to response complete, -1 when none */
    int64_t total_us;    /* first request byte to response complete */
    const char *request_id;
    uint32_t request_id_len;
    const char *route;    /* route name, or NULL */
    int64_t time_unix_us; /* when the request started */
};

struct log_ring; /* one per worker thread */

/* Starts the writer thread. <error_path> is "stderr", "stdout" or a file; <access_path>
 * "stdout", "stderr", "off" or a file; <json> selects the JSON access format instead of
 * combined. Returns PT_OK, or PT_ERR with a message in err when a file cannot be opened. */
int log_start(const char *error_path, int level, const char *access_path, bool json, char *err,
              size_t errlen);

/* Reopens the files (after rotation, SIGUSR1) or switches to new paths (reload). */
int log_reconfigure(const char *error_path, int level, const char *access_path, bool json,
                    char *err, size_t errlen);

/* Flushes everything queued so far and stops the writer thread. */
void log_stop(void);

/* A ring for the calling worker thread, registered with the writer; freed by log_stop. */
struct log_ring *log_ring_new(void);

/* Binds <r> to the calling thread: log_msg and log_access from this thread use it.
 * Threads without a ring (main) write through a mutex-protected shared ring. */
void log_ring_bind(struct log_ring *r);

/* Messages above this level are skipped without formatting. Atomic because log_reconfigure
 * changes it while workers read it; a load is a plain mov on x86. */
extern _Atomic int log_level;

#define log_enabled(lvl) ((lvl) <= log_level)

/* Error log line: "2026-11-26T15:24:32.123Z [warn] <message>". */
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...)                                                                              \
    do {                                                                                           \
        if (log_enabled(LOG_WARN))                                                                 \
            log_msg(LOG_WARN, __VA_ARGS__);                                                        \
    } while (0)
#define log_info(...)                                                                              \
    do {                                                                                           \
        if (log_enabled(LOG_INFO))                                                                 \
            log_msg(LOG_INFO, __VA_ARGS__);                                                        \
    } while (0)
#define log_debug(...)                                                                             \
    do {                                                                                           \
        if (log_enabled(LOG_DEBUG))                                                                \
            log_msg(LOG_DEBUG, __VA_ARGS__);                                                       \
    } while (0)

/* Appends one access log line for <a>, in the configured format; no-op when access logging
 * is off. */
void log_access(const struct log_access *a);

/* Whether access logging is on (log_access would write a line). */
bool log_access_enabled(void);

/* Formats one access line for <a> into out[0..cap) with a trailing newline; returns its length,
 * truncated to cap (exposed for tests). */
size_t log_format_access(char *out, size_t cap, const struct log_access *a, bool json);

/* Lines dropped because a ring was full, since start. */
uint64_t log_dropped(void);

/* Parses "error", "warn", "info", "debug"; returns -1 when unknown. */
int log_level_parse(const char *s);

#endif
