/* Socket helpers: listening sockets (one per worker with SO_REUSEPORT), non-blocking connects,
 * and address formatting. */
#ifndef PT_SOCK_H
#define PT_SOCK_H

#include "core/pt.h"

#include <sys/socket.h>

/* Opens a non-blocking listening socket bound to <sa> with SO_REUSEADDR, SO_REUSEPORT and, for
 * IPv6, IPV6_V6ONLY. Returns the fd or -1 (errno set). */
int sock_listen(const struct sockaddr *sa, socklen_t len, int backlog);

/* Starts a non-blocking connect to <sa>. Returns the fd (connect may still be in progress) or
 * -1 (errno set). TCP_NODELAY is set. */
int sock_connect(const struct sockaddr *sa, socklen_t len);

/* Formats the address only ("127.0.0.1", "::1") into out; returns its length. */
size_t sock_ntop(const struct sockaddr *sa, char *out, size_t cap);

/* Formats "127.0.0.1:80" or "[::1]:80"; returns its length. */
size_t sock_ntop_port(const struct sockaddr *sa, char *out, size_t cap);

#endif
