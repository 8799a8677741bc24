/* TLS to upstream servers: one client context per pool with https:// servers, shared by all
 * workers. Verification (CA bundle or the system store, host name or IP address), SNI, ALPN
 * http/1.1, an optional client certificate, and session resumption through a callback that hands
 * each new session to the caller (the worker keeps the last one per server). */
#include "tls/tls.h"
#include "core/log.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct tls_client {
    SSL_CTX *ctx;
    bool verify;
};

static tls_session_cb *session_cb;

static int
on_new_session(SSL *ssl, SSL_SESSION *sess)
{
    if (!session_cb)
        return 0;
    session_cb(ssl, sess);
    return 1; /* the callback owns it now */
}

struct tls_client *
tls_client_new(const struct config_upstream_tls *cfg, tls_session_cb *cb, char *err, size_t errlen)
{
    char why[256];
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        snprintf(err, errlen, "TLS client context: %s", tls_error_string(why, sizeof(why)));
        return NULL;
    }
    session_cb = cb;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_ciphersuites(ctx, TLS_DEFAULT_SUITES); /* a backend that honours our order */
    SSL_CTX_set_read_ahead(ctx, 1);                    /* see tls_sock_drained */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    static const unsigned char alpn[] = "\x08http/1.1";
    SSL_CTX_set_alpn_protos(ctx, alpn, sizeof(alpn) - 1);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, on_new_session);
    if (cfg->verify) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        int ok = cfg->ca ? SSL_CTX_load_verify_locations(ctx, cfg->ca, NULL)
                         : SSL_CTX_set_default_verify_paths(ctx);
        if (ok != 1) {
            snprintf(err, errlen, "%s: %s", cfg->ca ? cfg->ca : "system CA store",
                     tls_error_string(why, sizeof(why)));
            SSL_CTX_free(ctx);
            return NULL;
        }
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    }
    if (cfg->cert) {
        if (SSL_CTX_use_certificate_chain_file(ctx, cfg->cert) != 1) {
            snprintf(err, errlen, "%s: %s", cfg->cert, tls_error_string(why, sizeof(why)));
            SSL_CTX_free(ctx);
            return NULL;
        }
        if (SSL_CTX_use_PrivateKey_file(ctx, cfg->key, SSL_FILETYPE_PEM) != 1 ||
            SSL_CTX_check_private_key(ctx) != 1) {
            snprintf(err, errlen, "%s: %s", cfg->key, tls_error_string(why, sizeof(why)));
            SSL_CTX_free(ctx);
            return NULL;
        }
    }
    struct tls_client *t = calloc(1, sizeof(*t));
    if (!t)
        abort();
    t->ctx = ctx;
    t->verify = cfg->verify;
    return t;
}

void
tls_client_free(struct tls_client *t)
{
    if (!t)
        return;
    SSL_CTX_free(t->ctx);
    free(t);
}

SSL *
tls_client_ssl(struct tls_client *t, int fd, const char *name, SSL_SESSION *resume, void *app)
{
    SSL *ssl = SSL_new(t->ctx);
    if (!ssl)
        return NULL;
    unsigned char ip[16];
    bool is_ip = inet_pton(AF_INET, name, ip) == 1 || inet_pton(AF_INET6, name, ip) == 1;
    bool ok = tls_sock_attach(ssl, fd);
    if (ok && !is_ip)
        ok = SSL_set_tlsext_host_name(ssl, name) == 1; /* SNI carries names only */
    if (ok && t->verify) {
        if (is_ip)
            ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name) == 1;
        else
            ok = SSL_set1_host(ssl, name) == 1;
    }
    if (ok && resume)
        SSL_set_session(ssl, resume);
    if (!ok) {
        SSL_free(ssl);
        ERR_clear_error();
        return NULL;
    }
    SSL_set_app_data(ssl, app);
    SSL_set_connect_state(ssl);
    return ssl;
}
